// Subscriber: a resilient reader of Sidestream's Events.Subscribe stream.
//
// Run() opens the stream, hands every item to a callback and, when the
// stream breaks for a reason worth retrying (server restart, network
// failure, server shutdown), reconnects with exponential backoff and resumes
// after the last sequence it saw. With a server that honours the Subscribe
// contract, the callback therefore sees every matching event exactly once,
// in sequence order, across reconnects and server restarts.
//
// Example:
//   SubscriberOptions options;
//   options.filter.add_types("payout.*");
//   options.position = v1::START_POSITION_OLDEST;
//   // For a server with --grpc_tokens_file and gRPC TLS:
//   options.token_file = "/etc/sidestream/token";
//   options.tls.ca_file = "/etc/sidestream/ca.pem";
//   absl::StatusOr<std::unique_ptr<Subscriber>> subscriber =
//       Subscriber::Create(options);
//   if (!subscriber.ok()) return subscriber.status();
//   absl::Status status = (*subscriber)->Run(
//       [](const v1::SubscribeResponse& item) {
//         if (item.has_event()) Handle(item.event());
//       });
//
// To persist progress, save cursor() and log_epoch() (both include the item
// being handled while the callback runs) and pass them back as
// `after_sequence` and `log_epoch` next time.
#ifndef SIDESTREAM_CLIENT_SUBSCRIBER_H_
#define SIDESTREAM_CLIENT_SUBSCRIBER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

#include "client/channel.h"
#include "sidestream/v1/events_service.grpc.pb.h"

namespace sidestream {

struct SubscriberOptions {
  // gRPC target of the Sidestream server, such as "127.0.0.1:50051" or
  // "dns:///sidestream.internal:50051".
  std::string target = "127.0.0.1:50051";

  // TLS for the channel (see client/channel.h). Default: plain text, which
  // suits the default loopback deployment only.
  TlsOptions tls;

  // Channel credentials made by the caller; when set, they replace `tls`.
  std::shared_ptr<grpc::ChannelCredentials> credentials;

  // File holding the access token for a server with --grpc_tokens_file
  // (see AccessToken::FromFile). Empty: no token. Read by Create(), which
  // fails when it cannot, and again before each reconnect, so that a
  // rotated token is picked up; a reconnect that cannot read it ends Run()
  // with that error. Also applies with CreateWithChannel().
  std::string token_file;

  // Which events to receive; empty receives all. Checked by the server
  // (INVALID_ARGUMENT from Run() when contradictory).
  v1::EventFilter filter;

  // Where the first stream starts, until a cursor is known. Set at most one
  // of `after_sequence` and `start_time`; when neither is set, `position`
  // applies (default: only events stored from now on).
  //
  // Resume after this sequence (0: from the start of the log). `log_epoch`,
  // when set, is the epoch the sequence came from; the server then refuses
  // (FAILED_PRECONDITION) a cursor from another log instead of resuming at a
  // meaningless position.
  std::optional<uint64_t> after_sequence;
  std::string log_epoch;
  // Events received by the server at or after this time.
  std::optional<absl::Time> start_time;
  v1::StartPosition position = v1::START_POSITION_LATEST;

  // Ask for Event.raw_json, the exact bytes Stripe sent. Doubles the bytes
  // on the wire; off by default.
  bool include_raw_json = false;

  // Up to this many events per message from the server
  // (SubscribeRequest.max_batch_events): catching up over a long history is
  // several times faster. The callback still receives one `event` item per
  // event; batches are unpacked here. 1 asks for one event per message.
  uint32_t max_batch_events = 256;

  // Delay before the first reconnect; doubles after each further failed
  // attempt, up to `max_backoff`. Each delay is randomised by +-20% so that
  // many subscribers of a restarted server do not reconnect in lock step.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);

  // Give up after this many consecutive attempts that received nothing
  // (Run() then returns the last error). 0 retries forever. A stream that
  // delivered at least one item resets the count and the backoff.
  int max_attempts = 0;

  // A stream on which no message arrives for this long is presumed dead (a
  // server host that vanished without closing the connection) and is
  // reopened. The server sends a checkpoint at least every 5 s, so a healthy
  // stream is never silent that long; time spent in the callback does not
  // count. Zero disables the check.
  absl::Duration idle_timeout = absl::Seconds(30);

  // Called on Run()'s thread just before waiting to reconnect, with the
  // reason the stream ended and the delay. For status messages; may be
  // empty.
  std::function<void(const absl::Status& cause, absl::Duration delay)> on_retry;
};

// Thread safety: Run() is called by one thread at a time. Stop() and the
// accessors may be called from any thread, including from the callback.
class Subscriber {
 public:
  // Connects lazily (in Run()). INVALID_ARGUMENT for inconsistent options:
  // an empty target, both `after_sequence` and `start_time`, `log_epoch`
  // without `after_sequence`, a non-positive or inverted backoff, or a
  // negative `max_attempts`. The errors of Connect() and
  // AccessToken::FromFile() for unreadable or malformed TLS or token files.
  static absl::StatusOr<std::unique_ptr<Subscriber>> Create(SubscriberOptions options);

  // As Create(), over a channel the caller made (then `target`, `tls` and
  // `credentials` are ignored; `token_file` still applies): for tests and
  // for processes that share one channel between several clients.
  static absl::StatusOr<std::unique_ptr<Subscriber>> CreateWithChannel(
      SubscriberOptions options, std::shared_ptr<grpc::ChannelInterface> channel);

  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Blocks, delivering every stream item to `on_item` on the calling thread,
  // until Stop() (then OK), a status that retrying cannot fix, or
  // `max_attempts` consecutive failures (then that status).
  //
  // Retried: UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, INTERNAL,
  // RESOURCE_EXHAUSTED, UNKNOWN, and a stream the server ended with OK.
  // Returned: everything else, notably INVALID_ARGUMENT (bad filter),
  // OUT_OF_RANGE (cursor older than retention), FAILED_PRECONDITION (cursor
  // of another log), PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED,
  // NOT_FOUND, and the error of re-reading `token_file`.
  //
  // Reconnects resume with after_sequence = cursor() and log_epoch =
  // log_epoch(). Until a cursor is known (nothing received yet), they use
  // the original start again.
  absl::Status Run(absl::FunctionRef<void(const v1::SubscribeResponse&)> on_item);

  // Makes Run() return OK promptly: cancels the open stream, or cuts the
  // backoff wait short. Once Stop() has returned, `on_item` is not called
  // again (a call in progress finishes). Permanent: a later Run() returns OK
  // at once.
  void Stop();

  // The sequence up to which the stream has been delivered (the last
  // event's `sequence`, or the `head_sequence` of a later checkpoint or
  // caught_up); nullopt until the first such item, unless the options gave
  // `after_sequence`.
  std::optional<uint64_t> cursor() const;
  // The log epoch the cursor belongs to, from the last checkpoint or
  // caught_up (or the options); empty while unknown.
  std::string log_epoch() const;
  // Number of times Run() reconnected after a broken stream.
  int reconnects() const;

 private:
  Subscriber(SubscriberOptions options, std::shared_ptr<grpc::ChannelInterface> channel,
             AccessToken token);

  v1::SubscribeRequest BuildRequest() const;
  // Run() without the idle watchdog thread.
  absl::Status RunStreams(absl::FunctionRef<void(const v1::SubscribeResponse&)> on_item);
  // Opens one stream and reads it to its end. Sets `*received` when at
  // least one item arrived.
  absl::Status ReadOneStream(absl::FunctionRef<void(const v1::SubscribeResponse&)> on_item,
                             bool* received);
  // Advances the cursor and epoch from one received item.
  void Track(const v1::SubscribeResponse& item);
  // The idle watchdog thread: cancels a stream whose Read() waited longer
  // than `idle_timeout`, until `watchdog_done_`.
  void WatchIdle();
  // Waits for `delay` or Stop(), whichever comes first; true if stopped.
  bool WaitOrStop(absl::Duration delay);

  const SubscriberOptions options_;
  const std::shared_ptr<grpc::ChannelInterface> channel_;
  const std::unique_ptr<v1::Events::Stub> stub_;
  // The token read by Create(); each stream but the first re-reads the file
  // (`token_fresh_` is false from then on). Only touched by Run()'s thread
  // after construction.
  AccessToken token_;
  bool token_fresh_ = true;

  mutable absl::Mutex mu_;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  // The open stream's context, so that Stop() can cancel it; null between
  // streams. Owned by Run().
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::optional<uint64_t> cursor_ ABSL_GUARDED_BY(mu_);
  std::string log_epoch_ ABSL_GUARDED_BY(mu_);
  int reconnects_ ABSL_GUARDED_BY(mu_) = 0;
  // Idle watchdog state: whether Run() is blocked in Read() and since when,
  // whether the watchdog cancelled the current stream, and whether it
  // should exit.
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time read_started_ ABSL_GUARDED_BY(mu_);
  bool idle_cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool watchdog_done_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace sidestream

#endif  // SIDESTREAM_CLIENT_SUBSCRIBER_H_
