// Subscription: the server side of one Events.Subscribe stream.
//
// A gRPC callback reactor with a cursor (the last sequence considered) and a
// filter. It pulls events after its cursor from the hub's window while it
// can, and from the log (on the reader WorkQueue, never on a gRPC thread)
// when it has fallen behind the window, so a slow subscriber costs disk
// reads, not memory. One write is in flight at a time; each event is sent as
// shared slices of the record serialized once (see wire.h).
//
// Invariant: events are sent in strictly increasing sequence order, each at
// most once, with none skipped between the start cursor and the head (a gap
// can only come from retention, which ends the stream with OUT_OF_RANGE).
//
// Threading: reactions (OnWriteDone, OnCancel), hub wake-ups, log reads and
// ticks arrive on different threads; state is guarded by mu_, and gRPC
// operations (StartWrite, Finish) are started outside mu_ because gRPC may
// run the next reaction inline.
#ifndef SIDESTREAM_SERVER_RPC_SUBSCRIPTION_H_
#define SIDESTREAM_SERVER_RPC_SUBSCRIPTION_H_

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

#include "server/common/clock.h"
#include "server/common/work_queue.h"
#include "server/hub/event_filter.h"
#include "server/hub/event_hub.h"
#include "server/log/event_log.h"
#include "sidestream/v1/admin_service.pb.h"
#include "sidestream/v1/events_service.pb.h"

namespace sidestream {

// Totals over every subscription, closed ones included (for Admin.GetStats
// and /metrics). Relaxed atomics: monitoring, not synchronisation.
struct DeliveryCounters {
  std::atomic<uint64_t> subscriptions_opened{0};
  std::atomic<uint64_t> events_sent{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> checkpoints_sent{0};
  std::atomic<uint64_t> log_reads{0};
  std::atomic<uint64_t> log_read_events{0};

  void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
  // Counters nobody reads, for environments (tests) that set none.
  static DeliveryCounters* Discard();
};

// What every subscription shares. Not owned; outlives the subscriptions.
struct SubscriptionEnv {
  EventLog* log = nullptr;
  EventHub* hub = nullptr;
  WorkQueue* readers = nullptr;
  // Runs the steps that hub wake-ups trigger, so that the log's writer
  // thread (which wakes the hub after every commit, before acknowledging to
  // Stripe) never does fan-out work itself. Null: steps run inline.
  WorkQueue* pumps = nullptr;
  Clock* clock = Clock::Real();
  DeliveryCounters* counters = DeliveryCounters::Discard();
  // Longest time without a message while nothing matches; a checkpoint is
  // sent then.
  absl::Duration checkpoint_interval = absl::Seconds(5);
  // Records taken from the hub per step.
  size_t hub_batch = 64;
  // How much one log read (catch-up) may load.
  size_t log_read_events = 512;
  size_t log_read_bytes = 4 << 20;
};

class Subscription final : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                           public EventHub::Waiter,
                           public std::enable_shared_from_this<Subscription> {
 public:
  // Where the stream starts: an explicit cursor, or a time to resolve.
  struct Start {
    std::optional<uint64_t> cursor;
    std::optional<absl::Time> time;
  };

  // Limits of one `batch` item (SubscribeRequest.max_batch_events): at most
  // this many events, and no more bytes than this unless a single event is
  // larger (gRPC clients accept 4 MiB messages by default).
  static constexpr size_t kMaxBatchEvents = 1000;
  static constexpr size_t kMaxBatchBytes = 1 << 20;

  // Use Create(); public for make_shared.
  Subscription(const SubscriptionEnv& env, std::string peer, v1::SubscribeRequest request,
               EventFilter filter);

  // Creates the stream, registers it with the hub and starts sending. The
  // returned pointer is what the Subscribe handler returns to gRPC; the
  // object lives until OnDone and the last pending task.
  static std::shared_ptr<Subscription> Create(const SubscriptionEnv& env, std::string peer,
                                              v1::SubscribeRequest request, EventFilter filter,
                                              Start start);

  // Ends the stream with `status` (after the write in flight, if any).
  void Shutdown(const grpc::Status& status);
  // Sends a checkpoint when the stream has been silent long enough.
  void Tick(absl::Time now);
  v1::SubscriptionStats Stats() const;

  // EventHub::Waiter. Schedules one step on `pumps`; wake-ups that arrive
  // while one is scheduled collapse into it.
  void Wake() override;

  // grpc::ServerWriteReactor
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Called once with the hub or registry to notify about this stream ending.
  void SetOnDone(absl::AnyInvocable<void(Subscription*) &&> on_done) {
    on_done_ = std::move(on_done);
  }

 private:
  struct Action {
    enum Kind { kNone, kWrite, kFinish, kReadLog, kResolveTime } kind = kNone;
    grpc::Status status;
    // With kWrite: also start reading the next log batch.
    bool prefetch = false;
  };

  // Decides the next step under mu_ and performs it outside mu_. `woken`:
  // called for a hub wake-up (new events may be in the log now).
  void Pump(bool woken = false);
  Action NextActionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads the log after read_after_. `prefetch`: a read ahead while pending_
  // is still being sent; anything but the next records is dropped.
  void ReadLog(bool prefetch);
  void ResolveTime(absl::Time time);
  Action FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Action WriteLocked(grpc::ByteBuffer buffer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const SubscriptionEnv env_;
  const std::string peer_;
  const v1::SubscribeRequest request_;
  const EventFilter filter_;
  const absl::Time start_time_;
  const std::string epoch_;
  const uint64_t id_;
  const size_t max_batch_events_;  // 1: never a batch
  absl::AnyInvocable<void(Subscription*) &&> on_done_;
  std::shared_ptr<Subscription> self_;  // released in OnDone

  mutable absl::Mutex mu_;
  uint64_t cursor_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Time> unresolved_time_ ABSL_GUARDED_BY(mu_);
  std::deque<EventRecordPtr> pending_ ABSL_GUARDED_BY(mu_);  // records to consider, in order
  bool reading_ ABSL_GUARDED_BY(mu_) = false;                // a log task is queued
  // pending_ came from the log: the stream is catching up, so the next log
  // batch is read (after pending_.back()) while this one is being sent.
  bool pending_from_log_ ABSL_GUARDED_BY(mu_) = false;
  // The log read in flight: after which sequence, and how much, so that
  // pending_ never holds more than one log batch (log_read_events and
  // log_read_bytes): a stalled stream's memory stays bounded.
  uint64_t read_after_ ABSL_GUARDED_BY(mu_) = 0;
  size_t read_max_events_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t read_max_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The log had nothing after the cursor although the hub said "behind":
  // wait for the next wake-up instead of reading again at once.
  bool log_drained_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> wake_scheduled_{false};
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was (or is being) called
  bool caught_up_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool checkpoint_due_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_);
  uint64_t events_sent_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_sent_ ABSL_GUARDED_BY(mu_) = 0;
  // The message being written; alive until OnWriteDone.
  grpc::ByteBuffer write_buffer_ ABSL_GUARDED_BY(mu_);
};

// Every open subscription: for Admin.GetStats, checkpoint ticks and shutdown.
class SubscriptionRegistry {
 public:
  // Starts the ticker thread, which calls Tick on every subscription every
  // `tick` (a fraction of the checkpoint interval).
  SubscriptionRegistry(Clock* clock, absl::Duration tick);
  ~SubscriptionRegistry();

  void Add(std::shared_ptr<Subscription> subscription);
  void Remove(const Subscription* subscription);
  std::vector<v1::SubscriptionStats> Stats() const;
  size_t size() const;
  // Ends every open stream with `status`, and every stream added later.
  void ShutdownAll(const grpc::Status& status);

 private:
  void TickLoop();

  Clock* const clock_;
  const absl::Duration tick_;
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> shutdown_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_RPC_SUBSCRIPTION_H_
