#include "server/hub/event_hub.h"

#include <algorithm>

namespace sidestream {

EventHub::EventHub(const EventHubOptions& options, uint64_t head)
    : options_(options), head_(head) {}

void EventHub::OnAppended(absl::Span<const EventRecordPtr> records) {
  if (records.empty()) return;
  std::vector<std::shared_ptr<Waiter>> to_wake;
  {
    absl::MutexLock lock(&mu_);
    for (const EventRecordPtr& record : records) {
      if (record->sequence <= head_) continue;  // already seen (never expected)
      if (record->sequence != head_ + 1) {
        // A gap (the log skipped sequences): the window must stay contiguous,
        // so restart it; subscriptions behind it read the log.
        window_.clear();
        window_bytes_ = 0;
      }
      head_ = record->sequence;
      window_.push_back(record);
      window_bytes_ += record->StoredBytes();
    }
    while (!window_.empty() &&
           (window_.size() > options_.max_events || window_bytes_ > options_.max_bytes)) {
      window_bytes_ -= window_.front()->StoredBytes();
      window_.pop_front();
    }
    to_wake = waiters_;
  }
  for (const std::shared_ptr<Waiter>& waiter : to_wake) waiter->Wake();
}

EventHub::Read EventHub::ReadAfter(uint64_t cursor, size_t max) const {
  Read read;
  absl::MutexLock lock(&mu_);
  if (cursor >= head_) return read;
  if (window_.empty() || cursor + 1 < window_.front()->sequence) {
    read.behind = true;
    return read;
  }
  size_t start = cursor + 1 - window_.front()->sequence;
  size_t end = std::min(window_.size(), start + max);
  read.records.assign(window_.begin() + start, window_.begin() + end);
  return read;
}

void EventHub::ResetHead(uint64_t head) {
  absl::MutexLock lock(&mu_);
  if (window_.empty() && head_ == 0) head_ = head;
}

uint64_t EventHub::head() const {
  absl::MutexLock lock(&mu_);
  return head_;
}

void EventHub::AddWaiter(std::shared_ptr<Waiter> waiter) {
  absl::MutexLock lock(&mu_);
  waiters_.push_back(std::move(waiter));
}

void EventHub::RemoveWaiter(const Waiter* waiter) {
  absl::MutexLock lock(&mu_);
  waiters_.erase(
      std::remove_if(waiters_.begin(), waiters_.end(),
                     [waiter](const std::shared_ptr<Waiter>& w) { return w.get() == waiter; }),
      waiters_.end());
}

}  // namespace sidestream
