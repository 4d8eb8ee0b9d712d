#include "bench/subscribers.h"

#include <algorithm>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

namespace sidestream::bench {
namespace {

// Protobuf wire format, only as much as a SubscribeResponse needs.
bool ReadVarint(absl::string_view* in, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Calls `on_field(number, payload)` for each length-delimited field of
// `message` and skips the others. False when the bytes are malformed.
template <typename F>
bool ForEachLengthDelimited(absl::string_view message, F on_field) {
  while (!message.empty()) {
    uint64_t tag = 0, length = 0;
    if (!ReadVarint(&message, &tag)) return false;
    switch (tag & 7) {
      case 0:
        if (!ReadVarint(&message, &length)) return false;
        break;
      case 1:
        if (message.size() < 8) return false;
        message.remove_prefix(8);
        break;
      case 5:
        if (message.size() < 4) return false;
        message.remove_prefix(4);
        break;
      case 2:
        if (!ReadVarint(&message, &length) || length > message.size()) return false;
        if (!on_field(static_cast<int>(tag >> 3), message.substr(0, length))) return true;
        message.remove_prefix(length);
        break;
      default:
        return false;
    }
  }
  return true;
}

// SubscribeResponse fields.
constexpr int kEventField = 1;
constexpr int kCheckpointField = 2;
constexpr int kCaughtUpField = 3;
constexpr int kBatchField = 4;
// EventBatch.events
constexpr int kBatchEventsField = 1;
// Event.id
constexpr int kEventIdField = 2;

enum class Item { kUnknown, kEvent, kCheckpoint, kCaughtUp };

}  // namespace

class SubscriberSet::Stream final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Stream(const std::string& target, std::string method, SubscriberSpec spec,
         const SendTimes* send_times, const std::atomic<int64_t>* window_from,
         const std::atomic<int64_t>* window_until)
      : method_(std::move(method)),
        spec_(std::move(spec)),
        send_times_(send_times),
        window_from_(window_from),
        window_until_(window_until) {
    grpc::ChannelArguments args;
    // One TCP connection per subscriber, as separate services would have
    // (channels with equal arguments would otherwise share one).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
    grpc::Slice slice(spec_.request);
    request_ = grpc::ByteBuffer(&slice, 1);
  }

  void Start() {
    stub_->PrepareBidiStreamingCall(&context_, method_, grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }
  bool WaitDone(absl::Duration timeout) { return done_.WaitForNotificationWithTimeout(timeout); }

  void OnWriteDone(bool ok) override {}

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    const int64_t now = NowNs();
    std::vector<grpc::Slice> slices;
    if (response_.Dump(&slices).ok()) {
      scratch_.clear();
      for (const grpc::Slice& s : slices) {
        scratch_.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
      Handle(scratch_, now);
    }
    messages_.fetch_add(1);
    if (spec_.stalled) return;  // never read again
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    {
      absl::MutexLock lock(&mu_);
      status_ = status;
    }
    done_.Notify();
  }

  bool stalled() const { return spec_.stalled; }
  uint64_t messages() const { return messages_.load(); }
  uint64_t events() const { return events_.load(); }
  bool caught_up() const { return caught_up_.load(); }
  bool done() const { return done_.HasBeenNotified(); }

  // Adds this stream's counts to `totals`.
  void AddTo(SubscriberTotals* totals) const {
    absl::MutexLock lock(&mu_);
    ++totals->streams;
    if (spec_.stalled) ++totals->stalled;
    totals->checkpoints += checkpoints_;
    if (caught_up_.load()) {
      totals->caught_up_ns = std::max(totals->caught_up_ns, caught_up_ns_.load());
    } else {
      totals->all_caught_up = false;
    }
    totals->per_stream.push_back(counted_);
    if (!spec_.stalled) {
      totals->deliveries += counted_;
      totals->bytes += bytes_;
      totals->end_to_end.Merge(end_to_end_);
      if (first_ns_ != 0 && (totals->first_event_ns == 0 || first_ns_ < totals->first_event_ns)) {
        totals->first_event_ns = first_ns_;
      }
      totals->last_event_ns = std::max(totals->last_event_ns, last_ns_);
    }
    if (done_.HasBeenNotified() && !status_.ok() &&
        status_.error_code() != grpc::StatusCode::CANCELLED) {
      ++totals->ended_early;
      if (totals->first_error.empty()) totals->first_error = status_.error_message();
    }
  }

 private:
  // The id of an Event's bytes (the only field the bench needs).
  static absl::string_view EventId(absl::string_view event) {
    absl::string_view id;
    ForEachLengthDelimited(event, [&](int field, absl::string_view value) {
      if (field != kEventIdField) return true;
      id = value;
      return false;
    });
    return id;
  }

  void Handle(absl::string_view message, int64_t now) {
    Item item = Item::kUnknown;
    // Event ids: one for an `event` item, each event's for a `batch`.
    std::vector<absl::string_view> ids;
    ForEachLengthDelimited(message, [&](int field, absl::string_view payload) {
      if (field == kEventField) {
        item = Item::kEvent;
        ids.push_back(EventId(payload));
      } else if (field == kBatchField) {
        item = Item::kEvent;
        ForEachLengthDelimited(payload, [&](int inner, absl::string_view event) {
          if (inner == kBatchEventsField) ids.push_back(EventId(event));
          return true;
        });
      } else if (field == kCheckpointField) {
        item = Item::kCheckpoint;
      } else if (field == kCaughtUpField) {
        item = Item::kCaughtUp;
      }
      return true;
    });
    if (item == Item::kCaughtUp && !caught_up_.load()) {
      caught_up_ns_.store(now);
      caught_up_.store(true);
    }
    absl::MutexLock lock(&mu_);
    if (item == Item::kCheckpoint) ++checkpoints_;
    if (item != Item::kEvent) return;
    events_.fetch_add(ids.size());
    const int64_t from = window_from_->load(std::memory_order_relaxed);
    const int64_t until = window_until_->load(std::memory_order_relaxed);
    if (now < from || now >= until) return;
    counted_ += ids.size();
    bytes_ += message.size();
    if (first_ns_ == 0) first_ns_ = now;
    last_ns_ = now;
    if (send_times_ == nullptr) return;
    for (absl::string_view id : ids) {
      const std::optional<uint64_t> index = ParseEventIndex(id);
      if (!index.has_value()) continue;
      const int64_t due = send_times_->Get(*index);
      if (due == 0 || due < from || due >= until) continue;
      end_to_end_.Record(static_cast<uint64_t>(std::max<int64_t>(now - due, 0)));
    }
  }

  const std::string method_;
  const SubscriberSpec spec_;
  const SendTimes* const send_times_;
  const std::atomic<int64_t>* const window_from_;
  const std::atomic<int64_t>* const window_until_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::string scratch_;  // only touched by the one read in flight
  absl::Notification done_;
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> events_{0};
  std::atomic<bool> caught_up_{false};
  std::atomic<int64_t> caught_up_ns_{0};

  mutable absl::Mutex mu_;
  uint64_t checkpoints_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t counted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t first_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_ns_ ABSL_GUARDED_BY(mu_) = 0;
  LatencyHistogram end_to_end_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

SubscriberSet::SubscriberSet(const std::string& target, const std::string& method,
                             std::vector<SubscriberSpec> specs, const SendTimes* send_times) {
  for (SubscriberSpec& spec : specs) {
    streams_.push_back(std::make_unique<Stream>(target, method, std::move(spec), send_times,
                                                &window_from_, &window_until_));
  }
  for (auto& stream : streams_) stream->Start();
}

SubscriberSet::~SubscriberSet() {
  for (auto& stream : streams_) stream->Cancel();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (auto& stream : streams_) {
    if (!stream->WaitDone(deadline - absl::Now())) {
      // gRPC still owns the reactor: leaking it is better than freeing it
      // under gRPC's feet. Never seen; reported so it would be noticed.
      fprintf(stderr, "loadgen: a stream did not end within 30 s of cancellation\n");
      stream.release();
    }
  }
}

namespace {

// Polls `done` every few milliseconds until it holds or `timeout` passes.
// (The readers run on gRPC's threads; a shared condition variable would add
// a lock to every delivery.)
template <typename F>
bool PollUntil(F done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

}  // namespace

bool SubscriberSet::WaitForFirstMessages(absl::Duration timeout) {
  return PollUntil(
      [&] {
        return std::all_of(streams_.begin(), streams_.end(),
                           [](const auto& s) { return s->messages() > 0 || s->done(); });
      },
      timeout);
}

bool SubscriberSet::WaitForEvents(uint64_t per_stream, absl::Duration timeout) {
  return PollUntil(
      [&] {
        return std::all_of(streams_.begin(), streams_.end(), [&](const auto& s) {
          return s->stalled() || s->events() >= per_stream || s->done();
        });
      },
      timeout);
}

bool SubscriberSet::WaitForCaughtUp(absl::Duration timeout) {
  return PollUntil(
      [&] {
        return std::all_of(streams_.begin(), streams_.end(),
                           [](const auto& s) { return s->caught_up() || s->done(); });
      },
      timeout);
}

void SubscriberSet::SetWindow(int64_t from_ns, int64_t until_ns) {
  window_from_.store(from_ns);
  window_until_.store(until_ns);
}

SubscriberTotals SubscriberSet::Totals() const {
  SubscriberTotals totals;
  for (const auto& stream : streams_) stream->AddTo(&totals);
  if (!totals.all_caught_up) totals.caught_up_ns = 0;
  return totals;
}

}  // namespace sidestream::bench
