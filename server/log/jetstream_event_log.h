// JetStreamEventLog: the distributed EventLog backend, a NATS JetStream
// stream shared by every Sidestream instance that points at it.
//
// Append publishes the event with `Nats-Msg-Id` = the Stripe event id; the
// stream's duplicate window does the dedup and the PubAck's stream sequence
// is the event's sequence, so sequences, cursors and the epoch are the same
// on every instance. The listener is fed by an ordered consumer that follows
// the stream from its head at open time, so appends made by other instances
// reach this instance's hub too, in stream order, each once. Reads are
// direct message gets by sequence (the stream is dense: the only deletions
// are retention at the front). The layout, the subjects and the failure
// behaviour are described in jetstream_event_log.cc and docs/distributed.md.
#ifndef SIDESTREAM_SERVER_LOG_JETSTREAM_EVENT_LOG_H_
#define SIDESTREAM_SERVER_LOG_JETSTREAM_EVENT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "server/log/event_log.h"

namespace sidestream {

struct JetStreamEventLogOptions {
  // NATS server URLs ("nats://127.0.0.1:4222"); several for a cluster (the
  // client also learns the other members from the servers). Required.
  std::vector<std::string> servers;
  // The stream. Created when missing; when it exists its configuration must
  // match these options (Open says what differs). Default SIDESTREAM_EVENTS.
  std::string stream = "SIDESTREAM_EVENTS";
  // Subjects are "<subject_prefix>.<live|test>.<account|_platform>.<event
  // id>.<type tokens...>"; the stream takes "<subject_prefix>.>". Two
  // streams on one NATS system need different prefixes. Default
  // "sidestream.events".
  std::string subject_prefix = "sidestream.events";
  // Copies of each message kept by the cluster (1, 3 or 5 in practice).
  // Default 1; use 3 on a three-node cluster so a node can fail.
  int replicas = 1;
  // Stream MaxAge. Default 7 days; at least `dedup_window` unless
  // `allow_short_retention` (then the dedup window shrinks to it: JetStream
  // refuses a duplicate window longer than MaxAge).
  absl::Duration retention = absl::Hours(24 * 7);
  bool allow_short_retention = false;
  // Stream MaxBytes; 0 = no size limit. Default 0. JetStream keeps the dedup
  // entries of messages removed by this limit for the whole window.
  uint64_t max_bytes = 0;
  // Stream duplicate window (min(dedup_window, retention)). Default 72 h:
  // Stripe retries for up to 3 days; JetStream's own default is 2 minutes.
  absl::Duration dedup_window = absl::Hours(72);
  // Connect timeout, JetStream API request timeout and PubAck timeout.
  // An append not acknowledged within it fails with UNAVAILABLE. Default 5s.
  absl::Duration timeout = absl::Seconds(5);
  // Appends waiting for their PubAck at most; beyond it Append fails at once
  // with UNAVAILABLE (bounded memory when NATS is slow). Default 8192.
  size_t max_pending_appends = 8192;
  // How often the stream state (first sequence, bytes) is refreshed and, while
  // not writable, how often the log checks whether NATS works again.
  absl::Duration refresh_interval = absl::Seconds(1);
  // Credentials (a .creds file with JWT and NKey seed), optional.
  std::string creds_file;
  // TLS to NATS: the CA bundle that signs the servers' certificates, and an
  // optional client certificate and key (both or neither). TLS is required
  // when `tls_ca_file` is set.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Connection name shown by the NATS monitoring endpoints.
  std::string connection_name = "sidestream";
};

class JetStreamEventLog final : public EventLog {
 public:
  // Connects, creates the stream or checks its configuration, and starts
  // following it. UNAVAILABLE (naming the URLs) when NATS cannot be reached,
  // FAILED_PRECONDITION listing every difference when the existing stream's
  // configuration does not match, INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<JetStreamEventLog>> Open(
      const JetStreamEventLogOptions& options);

  // Waits (up to `timeout`) for the PubAcks of appends in flight, fails the
  // rest with UNAVAILABLE, stops following and disconnects.
  ~JetStreamEventLog() override;

  void Append(NewEvent event, AppendCallback done) override;
  absl::StatusOr<std::vector<EventRecordPtr>> ReadAfter(uint64_t after_sequence,
                                                        const ReadOptions& options) override;
  absl::StatusOr<EventRecordPtr> Get(absl::string_view id, bool include_raw_json) override;
  absl::StatusOr<uint64_t> CursorForTime(absl::Time time) override;
  LogInfo Info() const override;
  void SetListener(AppendListener* listener) override;

  class Impl;

 private:
  explicit JetStreamEventLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The subject an event is published on (see JetStreamEventLogOptions::
// subject_prefix). INVALID_ARGUMENT when the id, account or type is not of
// the strict Stripe forms (server/common/stripe_ids.h), which is what keeps
// input from adding or changing subject tokens.
absl::StatusOr<std::string> JetStreamSubject(absl::string_view prefix, const NewEvent& event);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_LOG_JETSTREAM_EVENT_LOG_H_
