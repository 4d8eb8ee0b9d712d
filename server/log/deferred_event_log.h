// DeferredEventLog: stands in for a log that cannot be opened yet (the NATS
// cluster is unreachable when the server starts), so that the server can
// start anyway: not ready, webhooks answered 503 (Stripe retries), reads
// UNAVAILABLE. Once the real log opens, Install() hands every call to it
// for good.
#ifndef SIDESTREAM_SERVER_LOG_DEFERRED_EVENT_LOG_H_
#define SIDESTREAM_SERVER_LOG_DEFERRED_EVENT_LOG_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"

#include "server/log/event_log.h"

namespace sidestream {

class DeferredEventLog final : public EventLog {
 public:
  // `backend`: LogInfo.backend meanwhile; `waiting`: why there is no log
  // yet, reported as LogInfo.last_error and in every UNAVAILABLE.
  DeferredEventLog(std::string backend, std::string waiting);

  // Makes `log` the log behind every call (once; later calls are ignored).
  // The listener set earlier, if any, is passed on to it.
  void Install(std::unique_ptr<EventLog> log);
  bool installed() const { return inner_.load() != nullptr; }
  // Updates the reason reported while not installed.
  void SetWaiting(std::string waiting);

  void Append(NewEvent event, AppendCallback done) override;
  absl::StatusOr<std::vector<EventRecordPtr>> ReadAfter(uint64_t after_sequence,
                                                        const ReadOptions& options) override;
  absl::StatusOr<EventRecordPtr> Get(absl::string_view id, bool include_raw_json) override;
  absl::StatusOr<uint64_t> CursorForTime(absl::Time time) override;
  // Before Install: no epoch, unwritable, last_error = the waiting reason.
  LogInfo Info() const override;
  void SetListener(AppendListener* listener) override;

 private:
  absl::Status Unavailable() const;

  const std::string backend_;
  mutable absl::Mutex mu_;
  std::string waiting_ ABSL_GUARDED_BY(mu_);
  AppendListener* listener_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::unique_ptr<EventLog> owned_ ABSL_GUARDED_BY(mu_);
  // Set once, under mu_, after the listener was passed on; read lock-free.
  std::atomic<EventLog*> inner_{nullptr};
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_LOG_DEFERRED_EVENT_LOG_H_
