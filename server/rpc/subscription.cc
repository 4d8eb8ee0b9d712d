#include "server/rpc/subscription.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

#include "server/common/logging.h"
#include "server/common/thread_name.h"
#include "server/common/time_proto.h"
#include "server/rpc/wire.h"

namespace sidestream {
namespace {

uint64_t NextSubscriptionId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

Subscription::Subscription(const SubscriptionEnv& env, std::string peer,
                           v1::SubscribeRequest request, EventFilter filter)
    : env_(env),
      peer_(std::move(peer)),
      request_(std::move(request)),
      filter_(std::move(filter)),
      start_time_(env.clock->Now()),
      epoch_(env.log->Info().epoch),
      id_(NextSubscriptionId()),
      max_batch_events_(std::clamp<size_t>(request_.max_batch_events(), 1, kMaxBatchEvents)) {}

DeliveryCounters* DeliveryCounters::Discard() {
  static DeliveryCounters* const discard = new DeliveryCounters;
  return discard;
}

std::shared_ptr<Subscription> Subscription::Create(const SubscriptionEnv& env, std::string peer,
                                                   v1::SubscribeRequest request, EventFilter filter,
                                                   Start start) {
  auto sub =
      std::make_shared<Subscription>(env, std::move(peer), std::move(request), std::move(filter));
  {
    absl::MutexLock lock(&sub->mu_);
    sub->self_ = sub;
    sub->last_sent_ = sub->start_time_;
    if (start.cursor.has_value()) {
      sub->cursor_ = *start.cursor;
    } else {
      sub->unresolved_time_ = start.time;
    }
  }
  // Register for wake-ups before reading anything, so that no append between
  // the first read and the registration can go unnoticed.
  env.counters->Add(env.counters->subscriptions_opened, 1);
  env.hub->AddWaiter(sub);
  sub->Pump();
  return sub;
}

void Subscription::Wake() {
  if (env_.pumps == nullptr) return Pump(/*woken=*/true);
  if (wake_scheduled_.exchange(true)) return;
  env_.pumps->Submit([self = shared_from_this()] {
    self->wake_scheduled_.store(false);
    self->Pump(/*woken=*/true);
  });
}

void Subscription::Pump(bool woken) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (woken) log_drained_ = false;
    action = NextActionLocked();
  }
  switch (action.kind) {
    case Action::kNone:
      break;
    case Action::kWrite:
      // Queued first: StartWrite may run OnWriteDone (and the next step) inline.
      if (action.prefetch) {
        env_.readers->Submit([self = shared_from_this()] { self->ReadLog(/*prefetch=*/true); });
      }
      // write_buffer_ is not touched again until OnWriteDone.
      StartWrite(&write_buffer_);
      break;
    case Action::kFinish:
      Finish(action.status);
      break;
    case Action::kReadLog:
      env_.readers->Submit([self = shared_from_this()] { self->ReadLog(/*prefetch=*/false); });
      break;
    case Action::kResolveTime: {
      absl::Time time;
      {
        absl::MutexLock lock(&mu_);
        time = *unresolved_time_;
      }
      env_.readers->Submit([self = shared_from_this(), time] { self->ResolveTime(time); });
      break;
    }
  }
}

Subscription::Action Subscription::FinishLocked(grpc::Status status) {
  finished_ = true;
  return Action{Action::kFinish, std::move(status)};
}

Subscription::Action Subscription::WriteLocked(grpc::ByteBuffer buffer) {
  write_buffer_ = std::move(buffer);
  bytes_sent_ += write_buffer_.Length();
  env_.counters->Add(env_.counters->bytes_sent, write_buffer_.Length());
  write_in_flight_ = true;
  last_sent_ = env_.clock->Now();
  return Action{Action::kWrite, grpc::Status::OK};
}

Subscription::Action Subscription::NextActionLocked() {
  if (finished_ || write_in_flight_) return {};
  if (end_status_.has_value()) return FinishLocked(*end_status_);
  // A read in flight only waits for its records once pending_ is sent.
  if (reading_ && pending_.empty()) return {};
  if (unresolved_time_.has_value()) {
    reading_ = true;
    return Action{Action::kResolveTime, grpc::Status::OK};
  }
  if (checkpoint_due_) {
    checkpoint_due_ = false;
    v1::SubscribeResponse response;
    v1::Checkpoint* checkpoint = response.mutable_checkpoint();
    checkpoint->set_head_sequence(cursor_);
    *checkpoint->mutable_head_time() = TimestampProto(env_.clock->Now());
    checkpoint->set_log_epoch(epoch_);
    env_.counters->Add(env_.counters->checkpoints_sent, 1);
    return WriteLocked(MessageBuffer(response));
  }
  const bool raw = request_.include_raw_json();
  while (true) {
    // Matching events taken from pending_ for one message: one `event`, or
    // up to max_batch_events_ in a `batch` while more are ready.
    std::vector<EventRecordPtr> batch;
    size_t batch_bytes = 0;
    while (!pending_.empty()) {
      EventRecordPtr& next = pending_.front();
      if (next->sequence <= cursor_) {
        pending_.pop_front();
        continue;
      }
      if (!filter_.Matches(*next)) {
        cursor_ = next->sequence;
        pending_.pop_front();
        continue;
      }
      const size_t size = EncodedEventSize(*next, raw);
      if (!batch.empty() && batch_bytes + size > kMaxBatchBytes) break;
      cursor_ = next->sequence;
      batch_bytes += size;
      batch.push_back(std::move(next));
      pending_.pop_front();
      if (batch.size() >= max_batch_events_) break;
    }
    if (!batch.empty()) {
      events_sent_ += batch.size();
      env_.counters->Add(env_.counters->events_sent, batch.size());
      Action write = WriteLocked(batch.size() == 1 ? SubscribeResponseBuffer(batch.front(), raw)
                                                   : SubscribeBatchBuffer(batch, raw));
      // Catching up: read the next log batch while this one is sent, so that
      // the log read and the gRPC writes overlap instead of taking turns.
      if (pending_from_log_ && !reading_ && !log_drained_ &&
          pending_.size() <= env_.log_read_events / 2) {
        uint64_t pending_bytes = 0;
        for (const EventRecordPtr& record : pending_) pending_bytes += record->StoredBytes();
        if (pending_bytes < env_.log_read_bytes) {
          reading_ = true;
          read_after_ = pending_.empty() ? cursor_ : pending_.back()->sequence;
          read_max_events_ = env_.log_read_events - pending_.size();
          read_max_bytes_ = env_.log_read_bytes - pending_bytes;
          write.prefetch = true;
        }
      }
      return write;
    }
    if (reading_) return {};  // the next records are being read
    EventHub::Read read = env_.hub->ReadAfter(cursor_, env_.hub_batch);
    if (read.behind) {
      if (log_drained_) return {};
      reading_ = true;
      read_after_ = cursor_;
      read_max_events_ = env_.log_read_events;
      read_max_bytes_ = env_.log_read_bytes;
      return Action{Action::kReadLog, grpc::Status::OK};
    }
    if (read.records.empty()) break;  // caught up with the head
    pending_from_log_ = false;
    pending_.assign(std::make_move_iterator(read.records.begin()),
                    std::make_move_iterator(read.records.end()));
  }
  if (!caught_up_sent_) {
    caught_up_sent_ = true;
    v1::SubscribeResponse response;
    response.mutable_caught_up()->set_head_sequence(cursor_);
    response.mutable_caught_up()->set_log_epoch(epoch_);
    return WriteLocked(MessageBuffer(response));
  }
  return {};
}

void Subscription::ReadLog(bool prefetch) {
  uint64_t from;
  ReadOptions options;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    from = read_after_;
    options.max_events = read_max_events_;
    options.max_bytes = read_max_bytes_;
  }
  options.include_raw_json = request_.include_raw_json();
  absl::StatusOr<std::vector<EventRecordPtr>> records = env_.log->ReadAfter(from, options);
  env_.counters->Add(env_.counters->log_reads, 1);
  if (records.ok()) env_.counters->Add(env_.counters->log_read_events, records->size());
  {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (prefetch && (!records.ok() || records->empty() || records->front()->sequence != from + 1)) {
      // A read ahead is only an optimisation: on an error, a gap or the end
      // of the log it is dropped, and once pending_ is sent the regular path
      // (hub, then a log read from the cursor) decides and reports.
      pending_from_log_ = false;
    } else if (!records.ok()) {
      // DATA_LOSS (a damaged record) stays DATA_LOSS; anything else is
      // worth a retry from the cursor.
      const grpc::StatusCode code = absl::IsDataLoss(records.status())
                                        ? grpc::StatusCode::DATA_LOSS
                                        : grpc::StatusCode::UNAVAILABLE;
      end_status_ =
          grpc::Status(code, absl::StrCat("reading the log failed: ", records.status().message(),
                                          "; resume after sequence ", cursor_));
    } else if ((records->empty() ? env_.log->Info().first_sequence : records->front()->sequence) >
               from + 1) {
      // Sequences are dense, so a jump past the cursor is retention loss.
      end_status_ = grpc::Status(
          grpc::StatusCode::OUT_OF_RANGE,
          absl::StrCat("events after sequence ", from,
                       " were removed by retention before this subscription read them; the "
                       "oldest available sequence is ",
                       env_.log->Info().first_sequence));
    } else if (records->empty()) {
      // The hub's window is ahead of what this read saw: wait for the next
      // wake-up rather than reading again at once.
      log_drained_ = true;
    } else {
      // After what pending_ still holds (read_after_ was its last sequence).
      pending_.insert(pending_.end(), std::make_move_iterator(records->begin()),
                      std::make_move_iterator(records->end()));
      pending_from_log_ = true;
    }
  }
  Pump();
}

void Subscription::ResolveTime(absl::Time time) {
  absl::StatusOr<uint64_t> cursor = env_.log->CursorForTime(time);
  {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    unresolved_time_.reset();
    if (cursor.ok()) {
      cursor_ = *cursor;
    } else {
      end_status_ =
          grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       absl::StrCat("resolving start_time failed: ", cursor.status().message()));
    }
  }
  Pump();
}

void Subscription::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    write_buffer_.Clear();
    if (!ok && !end_status_.has_value()) {
      // The stream is broken (client gone); finish quietly.
      end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
    }
  }
  Pump();
}

void Subscription::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    if (!end_status_.has_value()) {
      end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
  }
  Pump();
}

void Subscription::OnDone() {
  env_.hub->RemoveWaiter(this);
  if (on_done_) std::move(on_done_)(this);
  std::shared_ptr<Subscription> self;
  {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    self = std::move(self_);
  }
  // `self` may be the last reference: the object is deleted when it goes out
  // of scope, after the lock is released.
}

void Subscription::Shutdown(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (!end_status_.has_value()) end_status_ = status;
  }
  Pump();
}

void Subscription::Tick(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || now - last_sent_ < env_.checkpoint_interval) return;
    checkpoint_due_ = true;
  }
  Pump();
}

v1::SubscriptionStats Subscription::Stats() const {
  v1::SubscriptionStats stats;
  stats.set_peer(peer_);
  *stats.mutable_filter() = request_.filter();
  *stats.mutable_start_time() = TimestampProto(start_time_);
  const uint64_t head = env_.hub->head();
  absl::MutexLock lock(&mu_);
  stats.set_cursor(cursor_);
  stats.set_lag(head > cursor_ ? head - cursor_ : 0);
  stats.set_events_sent(events_sent_);
  stats.set_bytes_sent(bytes_sent_);
  stats.set_id(id_);
  stats.set_catching_up(!caught_up_sent_);
  return stats;
}

SubscriptionRegistry::SubscriptionRegistry(Clock* clock, absl::Duration tick)
    : clock_(clock), tick_(tick), ticker_([this] {
        SetCurrentThreadName("ss-ticker");
        TickLoop();
      }) {}

SubscriptionRegistry::~SubscriptionRegistry() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  ticker_.join();
}

void SubscriptionRegistry::Add(std::shared_ptr<Subscription> subscription) {
  std::optional<grpc::Status> shutdown;
  {
    absl::MutexLock lock(&mu_);
    shutdown = shutdown_;
    subscriptions_.push_back(subscription);
  }
  if (shutdown.has_value()) subscription->Shutdown(*shutdown);
}

void SubscriptionRegistry::Remove(const Subscription* subscription) {
  std::shared_ptr<Subscription> removed;  // released after the lock
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                         [subscription](const auto& s) { return s.get() == subscription; });
  if (it != subscriptions_.end()) {
    removed = std::move(*it);
    subscriptions_.erase(it);
  }
}

std::vector<v1::SubscriptionStats> SubscriptionRegistry::Stats() const {
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    subs = subscriptions_;
  }
  std::vector<v1::SubscriptionStats> stats;
  stats.reserve(subs.size());
  for (const auto& s : subs) stats.push_back(s->Stats());
  return stats;
}

size_t SubscriptionRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return subscriptions_.size();
}

void SubscriptionRegistry::ShutdownAll(const grpc::Status& status) {
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = status;
    subs = subscriptions_;
  }
  for (const auto& s : subs) s->Shutdown(status);
}

void SubscriptionRegistry::TickLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    // A periodic timer, not synchronisation: wakes early only to stop.
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick_);
    if (stopping_) break;
    std::vector<std::shared_ptr<Subscription>> subs = subscriptions_;
    mu_.Unlock();
    const absl::Time now = clock_->Now();
    for (const auto& s : subs) s->Tick(now);
    subs.clear();
    mu_.Lock();
  }
}

}  // namespace sidestream
