#include "client/subscriber.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"

namespace sidestream {
namespace {

// Whether a stream that ended with `code` should be reopened. OK is on the
// list: the server ends streams cleanly when it shuts down.
bool IsRetryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

// gRPC and Abseil number their codes identically.
absl::Status ToAbslStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

int ToMillis(absl::Duration d) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subscriber>> Subscriber::Create(SubscriberOptions options) {
  if (options.target.empty()) return absl::InvalidArgumentError("the server target is empty");
  // Align the channel's own reconnect backoff (1 s to 120 s by default) with
  // ours; otherwise a restarted server would wait for the channel's timer,
  // not for our retries.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, ToMillis(options.initial_backoff));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, ToMillis(options.initial_backoff));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, ToMillis(options.max_backoff));
  std::shared_ptr<grpc::Channel> channel;
  if (options.credentials != nullptr) {
    channel = grpc::CreateCustomChannel(options.target, options.credentials, args);
  } else {
    ConnectionOptions connection;
    connection.target = options.target;
    connection.tls = options.tls;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> connected = Connect(connection, args);
    if (!connected.ok()) return connected.status();
    channel = *std::move(connected);
  }
  return CreateWithChannel(std::move(options), std::move(channel));
}

absl::StatusOr<std::unique_ptr<Subscriber>> Subscriber::CreateWithChannel(
    SubscriberOptions options, std::shared_ptr<grpc::ChannelInterface> channel) {
  if (channel == nullptr) return absl::InvalidArgumentError("the channel is null");
  if (options.after_sequence.has_value() && options.start_time.has_value()) {
    return absl::InvalidArgumentError("set at most one of after_sequence and start_time");
  }
  if (!options.log_epoch.empty() && !options.after_sequence.has_value()) {
    return absl::InvalidArgumentError("log_epoch is only meaningful with after_sequence");
  }
  if (options.start_time.has_value() && (*options.start_time == absl::InfinitePast() ||
                                         *options.start_time == absl::InfiniteFuture())) {
    return absl::InvalidArgumentError("start_time must be a finite time");
  }
  if (options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        absl::StrCat("backoff must satisfy 0 < initial_backoff <= max_backoff, got ",
                     absl::FormatDuration(options.initial_backoff), " and ",
                     absl::FormatDuration(options.max_backoff)));
  }
  if (options.max_attempts < 0) return absl::InvalidArgumentError("max_attempts is negative");
  if (options.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("idle_timeout is negative");
  }
  absl::StatusOr<AccessToken> token = AccessToken::FromFile(options.token_file);
  if (!token.ok()) return token.status();
  return std::unique_ptr<Subscriber>(
      new Subscriber(std::move(options), std::move(channel), *std::move(token)));
}

Subscriber::Subscriber(SubscriberOptions options, std::shared_ptr<grpc::ChannelInterface> channel,
                       AccessToken token)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Events::NewStub(channel_)),
      token_(std::move(token)),
      cursor_(options_.after_sequence),
      log_epoch_(options_.log_epoch) {}

absl::Status Subscriber::Run(absl::FunctionRef<void(const v1::SubscribeResponse&)> on_item) {
  if (options_.idle_timeout == absl::ZeroDuration()) return RunStreams(on_item);
  {
    absl::MutexLock lock(&mu_);
    watchdog_done_ = false;
  }
  std::thread watchdog([this] { WatchIdle(); });
  absl::Status status = RunStreams(on_item);
  {
    absl::MutexLock lock(&mu_);
    watchdog_done_ = true;
  }
  watchdog.join();
  return status;
}

absl::Status Subscriber::RunStreams(absl::FunctionRef<void(const v1::SubscribeResponse&)> on_item) {
  absl::BitGen bitgen;
  absl::Duration backoff = options_.initial_backoff;
  int failed_attempts = 0;  // Consecutive streams that delivered nothing.
  for (;;) {
    bool received = false;
    absl::Status cause = ReadOneStream(on_item, &received);
    {
      absl::MutexLock lock(&mu_);
      if (stop_requested_) return absl::OkStatus();
    }
    if (!IsRetryable(static_cast<grpc::StatusCode>(cause.code()))) return cause;
    if (cause.ok()) cause = absl::UnavailableError("the server ended the stream");

    if (received) {
      failed_attempts = 0;
      backoff = options_.initial_backoff;
    } else {
      ++failed_attempts;
      if (options_.max_attempts > 0 && failed_attempts >= options_.max_attempts) {
        return absl::Status(cause.code(), absl::StrCat(cause.message(), " (gave up after ",
                                                       failed_attempts, " attempts)"));
      }
    }
    const absl::Duration delay = backoff * absl::Uniform(bitgen, 0.8, 1.2);
    backoff = std::min(backoff * 2, options_.max_backoff);
    if (options_.on_retry) options_.on_retry(cause, delay);
    if (WaitOrStop(delay)) return absl::OkStatus();
    absl::MutexLock lock(&mu_);
    ++reconnects_;
  }
}

absl::Status Subscriber::ReadOneStream(
    absl::FunctionRef<void(const v1::SubscribeResponse&)> on_item, bool* received) {
  const v1::SubscribeRequest request = BuildRequest();
  if (!token_fresh_) {
    // Re-read for every reconnect, so that a token rotated in its file is
    // used from the next stream on.
    absl::StatusOr<AccessToken> token = AccessToken::FromFile(options_.token_file);
    if (!token.ok()) return token.status();
    token_ = *std::move(token);
  }
  token_fresh_ = false;
  grpc::ClientContext context;
  token_.ApplyTo(&context);
  {
    absl::MutexLock lock(&mu_);
    // Checked under the same lock that publishes `context_`, so a Stop()
    // either sees the context and cancels it or is seen here.
    if (stop_requested_) return absl::CancelledError("stopped");
    context_ = &context;
    idle_cancelled_ = false;
  }
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      stub_->Subscribe(&context, request);
  v1::SubscribeResponse item;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      reading_ = true;
      read_started_ = absl::Now();
    }
    const bool ok = reader->Read(&item);
    bool stopped;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      stopped = stop_requested_;
    }
    // Items that arrived before the cancellation took effect are dropped:
    // nothing is delivered after Stop().
    if (!ok || stopped) break;
    *received = true;
    if (item.has_batch()) {
      // One `event` item per event, as without batching.
      v1::SubscribeResponse single;
      for (v1::Event& event : *item.mutable_batch()->mutable_events()) {
        {
          absl::MutexLock lock(&mu_);
          if (stop_requested_) break;  // nothing is delivered after Stop()
        }
        single.mutable_event()->Swap(&event);
        Track(single);
        on_item(single);
      }
      continue;
    }
    Track(item);
    on_item(item);
  }
  grpc::Status status = reader->Finish();

  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  if (idle_cancelled_) {
    return absl::UnavailableError(absl::StrCat("no message from the server for ",
                                               absl::FormatDuration(options_.idle_timeout),
                                               "; presuming the connection dead"));
  }
  return ToAbslStatus(status);
}

v1::SubscribeRequest Subscriber::BuildRequest() const {
  v1::SubscribeRequest request;
  *request.mutable_filter() = options_.filter;
  request.set_include_raw_json(options_.include_raw_json);
  request.set_max_batch_events(options_.max_batch_events);
  absl::MutexLock lock(&mu_);
  if (cursor_.has_value()) {
    request.set_after_sequence(*cursor_);
    if (!log_epoch_.empty()) request.set_log_epoch(log_epoch_);
  } else if (options_.start_time.has_value()) {
    const int64_t seconds = absl::ToUnixSeconds(*options_.start_time);
    request.mutable_start_time()->set_seconds(seconds);
    request.mutable_start_time()->set_nanos(static_cast<int32_t>(
        (*options_.start_time - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  } else {
    request.set_position(options_.position);
  }
  return request;
}

void Subscriber::Track(const v1::SubscribeResponse& item) {
  uint64_t sequence = 0;
  absl::MutexLock lock(&mu_);
  switch (item.item_case()) {
    case v1::SubscribeResponse::kEvent:
      sequence = item.event().sequence();
      break;
    case v1::SubscribeResponse::kCheckpoint:
      sequence = item.checkpoint().head_sequence();
      if (!item.checkpoint().log_epoch().empty()) log_epoch_ = item.checkpoint().log_epoch();
      break;
    case v1::SubscribeResponse::kCaughtUp:
      sequence = item.caught_up().head_sequence();
      if (!item.caught_up().log_epoch().empty()) log_epoch_ = item.caught_up().log_epoch();
      break;
    case v1::SubscribeResponse::kBatch:  // unpacked by ReadOneStream
    case v1::SubscribeResponse::ITEM_NOT_SET:
      return;
  }
  // Sequences only grow within a stream; never move the cursor back.
  if (!cursor_.has_value() || sequence > *cursor_) cursor_ = sequence;
}

void Subscriber::WatchIdle() {
  // Polls a few times per timeout rather than tracking every Read(), so that
  // a busy stream costs no wake-ups; a dead stream is detected within 1.25
  // idle timeouts.
  const absl::Duration period = options_.idle_timeout / 4;
  absl::MutexLock lock(&mu_);
  while (!watchdog_done_) {
    if (reading_ && context_ != nullptr && !idle_cancelled_ &&
        absl::Now() - read_started_ >= options_.idle_timeout) {
      idle_cancelled_ = true;
      context_->TryCancel();
    }
    mu_.AwaitWithTimeout(absl::Condition(&watchdog_done_), period);
  }
}

bool Subscriber::WaitOrStop(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stop_requested_), delay);
  return stop_requested_;
}

void Subscriber::Stop() {
  absl::MutexLock lock(&mu_);
  stop_requested_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

std::optional<uint64_t> Subscriber::cursor() const {
  absl::MutexLock lock(&mu_);
  return cursor_;
}

std::string Subscriber::log_epoch() const {
  absl::MutexLock lock(&mu_);
  return log_epoch_;
}

int Subscriber::reconnects() const {
  absl::MutexLock lock(&mu_);
  return reconnects_;
}

}  // namespace sidestream
