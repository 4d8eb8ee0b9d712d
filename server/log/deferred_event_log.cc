#include "server/log/deferred_event_log.h"

#include "absl/strings/str_cat.h"

namespace sidestream {

DeferredEventLog::DeferredEventLog(std::string backend, std::string waiting)
    : backend_(std::move(backend)), waiting_(std::move(waiting)) {}

void DeferredEventLog::Install(std::unique_ptr<EventLog> log) {
  absl::MutexLock lock(&mu_);
  if (owned_ != nullptr || log == nullptr) return;
  if (listener_ != nullptr) log->SetListener(listener_);
  owned_ = std::move(log);
  inner_.store(owned_.get());
}

void DeferredEventLog::SetWaiting(std::string waiting) {
  absl::MutexLock lock(&mu_);
  waiting_ = std::move(waiting);
}

absl::Status DeferredEventLog::Unavailable() const {
  absl::MutexLock lock(&mu_);
  return absl::UnavailableError(absl::StrCat("the event log is not open yet: ", waiting_));
}

void DeferredEventLog::Append(NewEvent event, AppendCallback done) {
  if (EventLog* inner = inner_.load()) return inner->Append(std::move(event), std::move(done));
  std::move(done)(Unavailable());
}

absl::StatusOr<std::vector<EventRecordPtr>> DeferredEventLog::ReadAfter(
    uint64_t after_sequence, const ReadOptions& options) {
  if (EventLog* inner = inner_.load()) return inner->ReadAfter(after_sequence, options);
  return Unavailable();
}

absl::StatusOr<EventRecordPtr> DeferredEventLog::Get(absl::string_view id, bool include_raw_json) {
  if (EventLog* inner = inner_.load()) return inner->Get(id, include_raw_json);
  return Unavailable();
}

absl::StatusOr<uint64_t> DeferredEventLog::CursorForTime(absl::Time time) {
  if (EventLog* inner = inner_.load()) return inner->CursorForTime(time);
  return Unavailable();
}

LogInfo DeferredEventLog::Info() const {
  if (const EventLog* inner = inner_.load()) return inner->Info();
  LogInfo info;
  info.backend = backend_;
  info.writable = false;
  absl::MutexLock lock(&mu_);
  info.last_error = waiting_;
  return info;
}

void DeferredEventLog::SetListener(AppendListener* listener) {
  absl::MutexLock lock(&mu_);
  listener_ = listener;
  if (owned_ != nullptr) owned_->SetListener(listener);
}

}  // namespace sidestream
