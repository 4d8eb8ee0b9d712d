// EventHub: the live window of recently stored events, shared by every
// subscription.
//
// The log hands every stored record to the hub (AppendListener) in sequence
// order. The hub keeps the newest ones, bounded by count and bytes, and wakes
// registered waiters. Subscriptions pull from the hub by cursor; when their
// cursor has fallen out of the window they read the log instead. Ingest never
// waits for a subscriber: OnAppended only appends, evicts and wakes.
//
// Thread safety: all methods are thread-safe. Waiters are called without the
// hub's lock held, so a waiter may call back into the hub.
#ifndef SIDESTREAM_SERVER_HUB_EVENT_HUB_H_
#define SIDESTREAM_SERVER_HUB_EVENT_HUB_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

#include "server/log/event_log.h"

namespace sidestream {

struct EventHubOptions {
  // Most events kept in memory. Default 8192.
  size_t max_events = 8192;
  // Most bytes (EventRecord::StoredBytes) kept in memory. Default 32 MiB:
  // about 5,000 webhooks of 3 KB (parsed form and raw body), 5 s at 1,000/s.
  // A subscriber further behind than the window reads the log instead.
  uint64_t max_bytes = 32ull << 20;
};

class EventHub final : public AppendListener {
 public:
  // Something to wake when new events arrive. Wake() must be cheap and must
  // not block.
  class Waiter {
   public:
    virtual ~Waiter() = default;
    virtual void Wake() = 0;
  };

  // `head` is the log's last sequence when the hub starts; the window starts
  // empty after it.
  EventHub(const EventHubOptions& options, uint64_t head);

  void OnAppended(absl::Span<const EventRecordPtr> records) override;

  struct Read {
    // True when the events right after the cursor are no longer (or not
    // yet) in the window: read the log instead.
    bool behind = false;
    // Records with sequence > cursor, in order, at most `max`.
    std::vector<EventRecordPtr> records;
  };
  Read ReadAfter(uint64_t cursor, size_t max) const;

  // Sequence of the newest event seen.
  uint64_t head() const;
  // Moves the head of a hub that has seen no event yet (the log opened after
  // the hub was made). Ignored once events arrived.
  void ResetHead(uint64_t head);

  // Registration. The hub keeps a shared reference until RemoveWaiter, so a
  // Wake() that races with removal still has a live object.
  void AddWaiter(std::shared_ptr<Waiter> waiter);
  void RemoveWaiter(const Waiter* waiter);

 private:
  const EventHubOptions options_;

  mutable absl::Mutex mu_;
  std::deque<EventRecordPtr> window_ ABSL_GUARDED_BY(mu_);
  uint64_t window_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t head_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_HUB_EVENT_HUB_H_
