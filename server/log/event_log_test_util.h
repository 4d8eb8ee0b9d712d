// Helpers shared by the EventLog tests: completion collection, a recording
// listener, and test events.
#ifndef SIDESTREAM_SERVER_LOG_EVENT_LOG_TEST_UTIL_H_
#define SIDESTREAM_SERVER_LOG_EVENT_LOG_TEST_UTIL_H_

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "server/log/event_log.h"

namespace sidestream {

inline constexpr absl::Duration kLogTestDeadline = absl::Seconds(30);

// Collects append completions; shared so a late callback never touches a
// dead stack frame even when a test fails on a deadline.
class Completions : public std::enable_shared_from_this<Completions> {
 public:
  EventLog::AppendCallback Callback(size_t index) {
    return [self = shared_from_this(), index](absl::StatusOr<AppendResult> result) {
      absl::MutexLock lock(&self->mu_);
      if (self->results_.size() <= index) {
        self->results_.resize(index + 1, absl::UnknownError("pending"));
      }
      self->results_[index] = std::move(result);
      ++self->done_;
    };
  }
  // True when `count` completions arrived before the deadline.
  bool WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kLogTestDeadline);
  }
  size_t done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  std::vector<absl::StatusOr<AppendResult>> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }

 private:
  absl::Mutex mu_;
  size_t done_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::StatusOr<AppendResult>> results_ ABSL_GUARDED_BY(mu_);
};

inline absl::StatusOr<AppendResult> AppendAndWait(EventLog& log, NewEvent event) {
  auto completions = std::make_shared<Completions>();
  log.Append(std::move(event), completions->Callback(0));
  if (!completions->WaitFor(1)) return absl::DeadlineExceededError("append never completed");
  return completions->results()[0];
}

class RecordingListener : public AppendListener {
 public:
  void OnAppended(absl::Span<const EventRecordPtr> records) override {
    absl::MutexLock lock(&mu_);
    span_sizes_.push_back(records.size());
    records_.insert(records_.end(), records.begin(), records.end());
  }
  std::vector<EventRecordPtr> records() {
    absl::MutexLock lock(&mu_);
    return records_;
  }
  std::vector<size_t> span_sizes() {
    absl::MutexLock lock(&mu_);
    return span_sizes_;
  }
  // True when a record with `id` arrived before the deadline. (A backend may
  // announce records after the append completed, from another thread.)
  bool WaitForId(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto seen = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::any_of(records_.begin(), records_.end(),
                         [&id](const EventRecordPtr& r) { return r->id == id; });
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), kLogTestDeadline);
  }

 private:
  absl::Mutex mu_;
  std::vector<EventRecordPtr> records_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> span_sizes_ ABSL_GUARDED_BY(mu_);
};

inline std::vector<uint64_t> Sequences(const std::vector<EventRecordPtr>& records) {
  std::vector<uint64_t> sequences;
  for (const EventRecordPtr& record : records) sequences.push_back(record->sequence);
  return sequences;
}

// An event of exactly `event_size` + `raw_size` stored bytes, received at
// `time`. Ids ending in an even digit are live events of acct_even.
inline NewEvent TestEvent(const std::string& id, absl::Time time, size_t event_size = 40,
                          size_t raw_size = 60) {
  NewEvent event;
  event.id = id;
  event.type = "invoice.paid";
  event.account = id.back() % 2 == 0 ? "acct_even" : "";
  event.livemode = id.back() % 2 == 0;
  event.receive_time = time;
  event.event_bytes = std::string(event_size, 'e');
  event.event_bytes.replace(0, std::min(id.size(), event_size), id, 0, event_size);
  event.raw_json = std::string(raw_size, 'r');
  return event;
}

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_LOG_EVENT_LOG_TEST_UTIL_H_
