// Soak: steady signed ingest at a fixed rate from a few keep-alive
// connections, while 100 subscribers with mixed filters read; 10 of them
// read slowly, pause, or stop reading until the end. Checks that the server's
// memory stays flat, that every subscriber gets exactly its matching events
// in order, and that fast subscribers are not held back by slow ones.
//
// CI mode: 120 s at 400 webhooks/s. Longer: SIDESTREAM_SOAK_SECONDS (also
// SIDESTREAM_SOAK_RATE, SIDESTREAM_SOAK_CONNECTIONS, SIDESTREAM_SOAK_PADDING).
// Memory used by the test itself does not grow with the duration: each
// subscriber keeps a count and an order-sensitive hash, not the events.
#include <atomic>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "client/http_client.h"
#include "client/sample_events.h"
#include "server/verify/stripe_signature.h"
#include "tests/load/load_util.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

// ---------------------------------------------------------------------------
// The event mix. Event k (k = 0, 1, ...) is fully determined by k, so a
// subscriber can check every event it receives against its id alone.

constexpr const char* kTypes[] = {"payout.failed",
                                  "payout.paid",
                                  "account.updated",
                                  "balance.available",
                                  "payment_intent.succeeded",
                                  "person.updated",
                                  "charge.succeeded",
                                  "invoice.paid"};
constexpr const char* kAccounts[] = {"", "acct_1SoakA", "acct_1SoakB", "acct_1SoakC"};
constexpr char kIdPrefix[] = "evt_soak_";

struct EventSpec {
  std::string type;
  std::string account;
  bool live = false;
};

EventSpec SpecOf(uint64_t k) { return {kTypes[k % 8], kAccounts[(k / 8) % 4], (k / 32) % 2 == 1}; }

std::optional<uint64_t> KOfId(absl::string_view id) {
  uint64_t k = 0;
  if (!absl::ConsumePrefix(&id, kIdPrefix) || !absl::SimpleAtoi(id, &k)) return std::nullopt;
  return k;
}

// A filter as the test understands it, independently of the server's
// EventFilter, and the request it becomes.
struct FilterSpec {
  FilterSpec(std::vector<std::string> types = {}, std::vector<std::string> accounts = {},
             v1::Origin origin = v1::ORIGIN_UNSPECIFIED,
             v1::Livemode livemode = v1::LIVEMODE_UNSPECIFIED)
      : types(std::move(types)),
        accounts(std::move(accounts)),
        origin(origin),
        livemode(livemode) {}

  std::vector<std::string> types;
  std::vector<std::string> accounts;
  v1::Origin origin;
  v1::Livemode livemode;

  bool Matches(const EventSpec& e) const {
    if (!types.empty()) {
      bool any = false;
      for (const std::string& t : types) {
        if (t == "*" || t == e.type ||
            (absl::EndsWith(t, ".*") && absl::StartsWith(e.type, t.substr(0, t.size() - 1)))) {
          any = true;
        }
      }
      if (!any) return false;
    }
    if (!accounts.empty() &&
        std::find(accounts.begin(), accounts.end(), e.account) == accounts.end()) {
      return false;
    }
    if (origin == v1::ORIGIN_PLATFORM && !e.account.empty()) return false;
    if (origin == v1::ORIGIN_CONNECT && e.account.empty()) return false;
    if (livemode == v1::LIVEMODE_LIVE && !e.live) return false;
    if (livemode == v1::LIVEMODE_TEST && e.live) return false;
    return true;
  }

  v1::EventFilter ToProto() const {
    v1::EventFilter f;
    for (const std::string& t : types) f.add_types(t);
    for (const std::string& a : accounts) f.add_accounts(a);
    f.set_origin(origin);
    f.set_livemode(livemode);
    return f;
  }
};

// Filters of the fast subscribers: exact types, prefixes, "*", accounts,
// origin, livemode, and one that matches nothing (checkpoints only).
std::vector<FilterSpec> FastFilters() {
  return {
      {},
      {{"payout.failed"}},
      {{"payout.*"}},
      {{"account.*", "person.updated"}},
      {{"*"}, {}, v1::ORIGIN_ANY, v1::LIVEMODE_LIVE},
      {{}, {"acct_1SoakA"}},
      {{"payment_intent.succeeded", "charge.*"}, {"acct_1SoakB", "acct_1SoakC"}},
      {{}, {}, v1::ORIGIN_PLATFORM},
      {{}, {}, v1::ORIGIN_CONNECT, v1::LIVEMODE_TEST},
      {{"invoice.*"}, {}, v1::ORIGIN_PLATFORM, v1::LIVEMODE_LIVE},
      {{}, {}, v1::ORIGIN_ANY, v1::LIVEMODE_TEST},
      {{"balance.available"}, {}, v1::ORIGIN_CONNECT},
      {{"nothing.matches.this"}},
      {{}, {"acct_1SoakC"}, v1::ORIGIN_CONNECT, v1::LIVEMODE_LIVE},
      {{"charge.succeeded", "payout.paid"}},
  };
}

uint64_t MixHash(uint64_t h, uint64_t sequence, uint64_t k) {
  h ^= sequence * 0x9E3779B97F4A7C15ull + k;
  h *= 0x100000001B3ull;
  return h ^ (h >> 29);
}

// ---------------------------------------------------------------------------
// What the senders learned: for each sequence, which event k got it and when
// its 200 arrived. Written by senders, read by subscribers (lag) and at the
// end (expected streams).
class GroundTruth {
 public:
  explicit GroundTruth(size_t capacity) : k_plus_one_(capacity + 1), ack_us_(capacity + 1) {}

  bool Record(uint64_t sequence, uint64_t k, absl::Time ack) {
    if (sequence == 0 || sequence >= k_plus_one_.size()) return false;
    ack_us_[sequence].store(absl::ToUnixMicros(ack), std::memory_order_relaxed);
    k_plus_one_[sequence].store(k + 1, std::memory_order_release);
    return true;
  }
  std::optional<uint64_t> KOf(uint64_t sequence) const {
    if (sequence >= k_plus_one_.size()) return std::nullopt;
    const uint64_t v = k_plus_one_[sequence].load(std::memory_order_acquire);
    return v == 0 ? std::nullopt : std::optional<uint64_t>(v - 1);
  }
  // When the 200 for `sequence` arrived, if it has yet.
  std::optional<absl::Time> AckOf(uint64_t sequence) const {
    if (sequence >= ack_us_.size()) return std::nullopt;
    const int64_t us = ack_us_[sequence].load(std::memory_order_relaxed);
    return us == 0 ? std::nullopt : std::optional<absl::Time>(absl::FromUnixMicros(us));
  }

 private:
  std::vector<std::atomic<uint64_t>> k_plus_one_;
  std::vector<std::atomic<int64_t>> ack_us_;
};

// Phases the main thread announces to slow subscribers.
struct Control {
  absl::Mutex mu;
  bool paused ABSL_GUARDED_BY(mu) = false;   // "pausing" subscribers stop while set
  bool release ABSL_GUARDED_BY(mu) = false;  // ingest over: everyone reads at full speed
  bool stop ABSL_GUARDED_BY(mu) = false;     // senders and samplers stop
  // For the lag report: 0 before the pause, 1 while pausing subscribers
  // stop, 2 after they resumed (and read their backlog from the log).
  std::atomic<int> phase{0};
};

constexpr int kPhases = 3;
constexpr const char* kPhaseNames[kPhases] = {"0-25%", "25-60% (3 paused)",
                                              "60-100% (paused ones catch up)"};

enum class Pace {
  kFast,     // reads as fast as it can
  kStopped,  // reads nothing after caught_up until ingest is over
  kPausing,  // stops at 25% of the run, resumes at 60%
  kSlow,     // 20 messages per second until ingest is over
};

const char* PaceName(Pace p) {
  switch (p) {
    case Pace::kFast:
      return "fast";
    case Pace::kStopped:
      return "stopped";
    case Pace::kPausing:
      return "pausing";
    case Pace::kSlow:
      return "slow";
  }
  return "?";
}

// One Subscribe stream read on its own thread (the sync API; 100 threads).
class SoakSubscriber {
 public:
  SoakSubscriber(std::shared_ptr<grpc::Channel> channel, FilterSpec filter, bool raw, Pace pace,
                 const GroundTruth* truth, Control* control, absl::Duration bound)
      : stub_(v1::Events::NewStub(std::move(channel))),
        filter_(std::move(filter)),
        raw_(raw),
        pace_(pace),
        truth_(truth),
        control_(control),
        bound_(bound) {
    thread_ = std::thread([this] { Run(); });
  }
  ~SoakSubscriber() { Join(); }

  // Cancels the stream and waits for the reading thread. Idempotent.
  void Join() {
    context_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }

  const FilterSpec& filter() const { return filter_; }
  Pace pace() const { return pace_; }

  bool WaitForCaughtUp(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return caught_up_ || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return caught_up_;
  }
  // Waits until `n` events arrived, the stream ended, or `deadline`.
  bool WaitForCount(uint64_t n, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto ready = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ >= n || ended_; };
    mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    return count_ >= n;
  }
  void Cancel() { context_.TryCancel(); }

  struct Result {
    uint64_t count = 0;
    uint64_t hash = 0;
    uint64_t checkpoints = 0;
    uint64_t errors = 0;
    std::vector<std::string> first_errors;
    grpc::Status status;
    bool ended = false;
  };
  Result result() const {
    absl::MutexLock lock(&mu_);
    return {count_, hash_, checkpoints_, errors_, first_errors_, status_, ended_};
  }
  // Fast subscribers' delay from a webhook's 200 to receipt, by phase.
  // Valid after Join().
  const LatencyHistogram& lag(int phase) const { return lag_[phase]; }

 private:
  void Run() {
    v1::SubscribeRequest request;
    *request.mutable_filter() = filter_.ToProto();
    request.set_include_raw_json(raw_);
    request.set_position(v1::START_POSITION_LATEST);
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
        stub_->Subscribe(&context_, request);
    v1::SubscribeResponse item;
    const absl::Time give_up = absl::Now() + bound_;
    while (reader->Read(&item)) {
      const absl::Time now = absl::Now();
      if (item.has_event()) OnEvent(item.event(), now);
      {
        absl::MutexLock lock(&mu_);
        if (item.has_checkpoint()) ++checkpoints_;
        if (item.has_caught_up()) caught_up_ = true;
      }
      if (caught_up_seen()) Hold(give_up);
    }
    grpc::Status status = reader->Finish();
    absl::MutexLock lock(&mu_);
    status_ = status;
    ended_ = true;
  }

  bool caught_up_seen() {
    absl::MutexLock lock(&mu_);
    return caught_up_;
  }

  // The slow behaviours: waits on the control's phases. These waits are the
  // behaviour under test (a consumer that does not read), not
  // synchronisation; all of them end when ingest is over.
  void Hold(absl::Time give_up) {
    absl::MutexLock lock(&control_->mu);
    switch (pace_) {
      case Pace::kFast:
        return;
      case Pace::kStopped:
        control_->mu.AwaitWithDeadline(absl::Condition(&control_->release), give_up);
        return;
      case Pace::kPausing: {
        auto not_paused = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_->mu) {
          return !control_->paused || control_->release;
        };
        control_->mu.AwaitWithDeadline(absl::Condition(&not_paused), give_up);
        return;
      }
      case Pace::kSlow:
        control_->mu.AwaitWithTimeout(absl::Condition(&control_->release), absl::Milliseconds(50));
        return;
    }
  }

  void OnEvent(const v1::Event& event, absl::Time now) {
    std::string error;
    const std::optional<uint64_t> k = KOfId(event.id());
    if (!k.has_value()) {
      error = absl::StrCat("unknown id ", event.id());
    } else {
      const EventSpec spec = SpecOf(*k);
      if (event.type() != spec.type || event.account() != spec.account ||
          event.livemode() != spec.live) {
        error = absl::StrCat("event ", event.id(), " has wrong content: ", event.type(), " ",
                             event.account(), " ", event.livemode());
      } else if (!filter_.Matches(spec)) {
        error = absl::StrCat("event ", event.id(), " does not match the filter");
      } else if (raw_ && !absl::StrContains(event.raw_json(), event.id())) {
        error = absl::StrCat("event ", event.id(), " lacks its raw JSON");
      }
    }
    if (pace_ == Pace::kFast) {
      const std::optional<absl::Time> ack = truth_->AckOf(event.sequence());
      // No ack yet: the event reached the subscriber before its 200 reached
      // the sender (the hub is told before the response is written).
      lag_[control_->phase.load()].Add(ack.has_value() ? now - *ack : absl::ZeroDuration());
    }
    absl::MutexLock lock(&mu_);
    if (event.sequence() <= last_sequence_) {
      error = absl::StrCat("sequence ", event.sequence(), " after ", last_sequence_);
    }
    last_sequence_ = std::max(last_sequence_, event.sequence());
    if (!error.empty()) {
      ++errors_;
      if (first_errors_.size() < 5) first_errors_.push_back(error);
    }
    ++count_;
    hash_ = MixHash(hash_, event.sequence(), k.value_or(~0ull));
  }

  std::unique_ptr<v1::Events::Stub> stub_;
  const FilterSpec filter_;
  const bool raw_;
  const Pace pace_;
  const GroundTruth* const truth_;
  Control* const control_;
  const absl::Duration bound_;
  grpc::ClientContext context_;
  LatencyHistogram lag_[kPhases];  // only the reading thread touches them until Join

  mutable absl::Mutex mu_;
  bool caught_up_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hash_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t checkpoints_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> first_errors_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// Senders: each owns one keep-alive connection and sends its share of the
// rate on a fixed schedule (a sender that falls behind sends at once).

struct SenderResult {
  uint64_t accepted = 0;
  uint64_t failures = 0;
  std::vector<std::string> first_failures;
  LatencyHistogram latency;  // POST until 200
};

struct SoakConfig {
  absl::Duration duration;
  int rate = 0;
  int connections = 0;
  size_t padding = 0;
};

void SendLoop(int index, const SoakConfig& config, const std::string& url, absl::Time start,
              GroundTruth* truth, Control* control, SenderResult* result) {
  absl::StatusOr<std::unique_ptr<HttpConnection>> conn = HttpConnection::Create(url);
  if (!conn.ok()) {
    ++result->failures;
    result->first_failures.push_back(std::string(conn.status().message()));
    return;
  }
  const absl::Duration interval = absl::Seconds(1) * config.connections / config.rate;
  const absl::Time end = start + config.duration;
  for (uint64_t n = 0;; ++n) {
    const absl::Time due =
        start + interval * static_cast<double>(n) + interval * index / config.connections;
    if (due >= end) break;
    {
      // The schedule's pacing (a timed wait that a stop request ends early).
      absl::MutexLock lock(&control->mu);
      if (control->mu.AwaitWithDeadline(absl::Condition(&control->stop), due)) break;
    }
    const uint64_t k = n * static_cast<uint64_t>(config.connections) + index;
    const EventSpec spec = SpecOf(k);
    SampleEventOptions options;
    options.type = spec.type;
    options.account = spec.account;
    options.livemode = spec.live;
    options.id = absl::StrCat(kIdPrefix, k);
    options.padding_bytes = config.padding;
    absl::StatusOr<std::string> body = BuildSampleEvent(options);
    if (!body.ok()) {
      ++result->failures;
      if (result->first_failures.size() < 5) {
        result->first_failures.push_back(std::string(body.status().message()));
      }
      continue;
    }
    const absl::Time sent = absl::Now();
    const HttpHeaders headers = {
        {"Content-Type", "application/json; charset=utf-8"},
        {"Stripe-Signature",
         MakeStripeSignatureHeader({kTestSecret}, absl::ToUnixSeconds(sent), *body)}};
    absl::StatusOr<HttpResponse> r = (*conn)->Post(headers, *body, absl::Seconds(30));
    const absl::Time acked = absl::Now();
    std::string failure;
    uint64_t sequence = 0;
    if (!r.ok()) {
      failure = std::string(r.status().message());
    } else if (r->status_code != 200 || !absl::StrContains(r->body, "\"duplicate\":false")) {
      failure = absl::StrCat(r->status_code, " ", r->body);
    } else {
      absl::string_view body_view = r->body;
      const size_t at = body_view.find("\"sequence\":");
      absl::string_view digits = at == absl::string_view::npos ? "" : body_view.substr(at + 11);
      digits = digits.substr(0, digits.find_first_not_of("0123456789"));
      if (!absl::SimpleAtoi(digits, &sequence) || !truth->Record(sequence, k, acked)) {
        failure = absl::StrCat("no usable sequence in ", r->body);
      }
    }
    if (!failure.empty()) {
      ++result->failures;
      if (result->first_failures.size() < 5) result->first_failures.push_back(failure);
      continue;
    }
    ++result->accepted;
    result->latency.Add(acked - sent);
  }
}

std::string Mib(long kib) { return absl::StrFormat("%.1f MiB", kib / 1024.0); }
std::string Ms(absl::Duration d) {
  return absl::StrFormat("%.2f ms", absl::ToDoubleMilliseconds(d));
}

TEST(LoadSoakTest, SteadyIngestWithSlowAndStoppedSubscribers) {
  SoakConfig config;
  config.duration = absl::Seconds(EnvInt("SIDESTREAM_SOAK_SECONDS", 120));
  config.rate = static_cast<int>(EnvInt("SIDESTREAM_SOAK_RATE", 400));
  config.connections = static_cast<int>(EnvInt("SIDESTREAM_SOAK_CONNECTIONS", 8));
  config.padding = static_cast<size_t>(EnvInt("SIDESTREAM_SOAK_PADDING", 1500));
  ASSERT_GT(config.rate, 0);
  ASSERT_GT(config.connections, 0);
  constexpr int kChannels = 10;  // 10 subscribers per connection: 9 fast, 1 slow
  constexpr int kSubscribers = 100;
  constexpr int kWindowEvents = 256;  // the hub's window: well under a second of ingest
  constexpr long kMaxGrowthKib = 64 * 1024;
  const absl::Duration max_fast_p99 =
      absl::Milliseconds(EnvInt("SIDESTREAM_SOAK_MAX_P99_MS", 1000));

  const std::string data_dir = MakeTempDir("soak");
  ServerProcessOptions options;
  options.data_dir = data_dir;
  options.args = {absl::StrCat("--hub_window_events=", kWindowEvents), "--log_level=warning"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<ServerProcess> server = *std::move(started);

  const size_t capacity =
      static_cast<size_t>(absl::ToDoubleSeconds(config.duration) * config.rate) + 1000;
  GroundTruth truth(capacity);
  Control control;
  // Every wait of a subscriber ends by then even if the test fails early.
  const absl::Duration bound = config.duration + absl::Minutes(10);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < kChannels; ++c) channels.push_back(NewChannel(server->grpc_address()));
  const std::vector<FilterSpec> fast_filters = FastFilters();
  const std::vector<FilterSpec> slow_filters = {
      {}, {{"*"}}, {{}, {}, v1::ORIGIN_CONNECT}, {{}, {}, v1::ORIGIN_ANY, v1::LIVEMODE_ANY}};
  std::vector<std::unique_ptr<SoakSubscriber>> subscribers;
  int fast_index = 0;
  for (int i = 0; i < kSubscribers; ++i) {
    const int channel = i / (kSubscribers / kChannels);
    if (i % (kSubscribers / kChannels) == kSubscribers / kChannels - 1) {
      const int s = channel;  // 0..9
      const Pace pace = s < 3 ? Pace::kStopped : s < 6 ? Pace::kPausing : Pace::kSlow;
      subscribers.push_back(
          std::make_unique<SoakSubscriber>(channels[channel], slow_filters[s % slow_filters.size()],
                                           s % 2 == 0, pace, &truth, &control, bound));
    } else {
      subscribers.push_back(std::make_unique<SoakSubscriber>(
          channels[channel], fast_filters[fast_index % fast_filters.size()], fast_index % 4 == 0,
          Pace::kFast, &truth, &control, bound));
      ++fast_index;
    }
  }
  // However the test ends, subscribers held by the slow behaviours let go
  // before they are destroyed (declared after them, so it runs first).
  absl::Cleanup release_on_exit = [&control] {
    absl::MutexLock lock(&control.mu);
    control.release = true;
    control.stop = true;
  };
  for (auto& s : subscribers) ASSERT_TRUE(s->WaitForCaughtUp(absl::Seconds(60)));

  // Memory samples once a second (a periodic timer, ended by `stop`).
  struct Sample {
    absl::Duration at;
    long kib;
  };
  std::vector<Sample> samples;
  const long rss_idle = server->RssKib();
  const absl::Time start = absl::Now() + absl::Milliseconds(100);
  std::thread sampler([&] {
    absl::MutexLock lock(&control.mu);
    while (!control.mu.AwaitWithTimeout(absl::Condition(&control.stop), absl::Seconds(1))) {
      samples.push_back({absl::Now() - start, server->RssKib()});
    }
  });

  std::vector<SenderResult> sender_results(static_cast<size_t>(config.connections));
  std::vector<std::thread> senders;
  for (int c = 0; c < config.connections; ++c) {
    senders.emplace_back(SendLoop, c, std::cref(config), server->webhook_url(), start, &truth,
                         &control, &sender_results[static_cast<size_t>(c)]);
  }

  // The run's phases: pausing subscribers stop at 25% and resume at 60%;
  // the middle is observed at 50%.
  auto wait_until = [&](absl::Time t) {
    absl::MutexLock lock(&control.mu);
    control.mu.AwaitWithDeadline(absl::Condition(&control.stop), t);
  };
  wait_until(start + config.duration / 4);
  {
    absl::MutexLock lock(&control.mu);
    control.paused = true;
    control.phase = 1;
  }
  wait_until(start + config.duration / 2);
  const long rss_middle = server->RssKib();
  // No ASSERT while senders and the sampler run: their threads must be
  // joined before the test returns.
  absl::StatusOr<v1::GetStatsResponse> middle_stats = GetStats(server->grpc_address());
  EXPECT_TRUE(middle_stats.ok()) << middle_stats.status();
  wait_until(start + config.duration * 0.6);
  {
    absl::MutexLock lock(&control.mu);
    control.paused = false;
    control.phase = 2;
  }
  for (auto& t : senders) t.join();
  const absl::Duration ingest_time = absl::Now() - start;
  const long rss_end = server->RssKib();
  absl::StatusOr<v1::GetStatsResponse> end_stats = GetStats(server->grpc_address());
  {
    absl::MutexLock lock(&control.mu);
    control.stop = true;
    control.release = true;  // slow and stopped subscribers now read at full speed
  }
  sampler.join();
  ASSERT_TRUE(end_stats.ok()) << end_stats.status();

  // Ingest: every webhook got its 200, and the log holds exactly them.
  uint64_t accepted = 0;
  LatencyHistogram post_latency;
  for (const SenderResult& r : sender_results) {
    accepted += r.accepted;
    post_latency.Merge(r.latency);
    EXPECT_EQ(r.failures, 0u) << absl::StrJoin(r.first_failures, "\n");
  }
  ASSERT_GT(accepted, 0u);
  EXPECT_EQ(end_stats->log().last_sequence(), accepted);
  EXPECT_EQ(end_stats->log().event_count(), accepted);
  for (uint64_t seq = 1; seq <= accepted; ++seq) {
    ASSERT_TRUE(truth.KOf(seq).has_value()) << "no 200 carried sequence " << seq;
  }
  const double achieved_rate = accepted / absl::ToDoubleSeconds(ingest_time);
  EXPECT_GE(achieved_rate, 0.8 * config.rate) << "the server could not keep the fixed rate";

  // What each subscriber must have received: the matching events, in
  // sequence order (count and order-sensitive hash).
  const absl::Time catch_up_start = absl::Now();
  const absl::Time catch_up_deadline = catch_up_start + absl::Minutes(3);
  std::vector<uint64_t> want_count(subscribers.size(), 0), want_hash(subscribers.size(), 0);
  for (uint64_t seq = 1; seq <= accepted; ++seq) {
    const uint64_t k = *truth.KOf(seq);
    const EventSpec spec = SpecOf(k);
    for (size_t i = 0; i < subscribers.size(); ++i) {
      if (subscribers[i]->filter().Matches(spec)) {
        ++want_count[i];
        want_hash[i] = MixHash(want_hash[i], seq, k);
      }
    }
  }
  for (size_t i = 0; i < subscribers.size(); ++i) {
    subscribers[i]->WaitForCount(want_count[i], catch_up_deadline);
  }
  const absl::Duration catch_up_time = absl::Now() - catch_up_start;

  // Slow subscribers' backlog while ingest ran (from the server's view).
  uint64_t max_slow_lag = 0;
  for (const absl::StatusOr<v1::GetStatsResponse>* stats : {&middle_stats, &end_stats}) {
    if (!stats->ok()) continue;
    for (const v1::SubscriptionStats& s : (*stats)->subscriptions()) {
      max_slow_lag = std::max<uint64_t>(max_slow_lag, s.lag());
    }
  }

  for (auto& s : subscribers) s->Cancel();
  for (auto& s : subscribers) s->Join();
  LatencyHistogram fast_lag, fast_lag_by_phase[kPhases];
  uint64_t fast_events = 0, slow_events = 0;
  for (size_t i = 0; i < subscribers.size(); ++i) {
    const SoakSubscriber::Result r = subscribers[i]->result();
    const char* pace = PaceName(subscribers[i]->pace());
    EXPECT_EQ(r.count, want_count[i]) << "subscriber " << i << " (" << pace << ")";
    EXPECT_EQ(r.hash, want_hash[i])
        << "subscriber " << i << " (" << pace << ") got other events or another order";
    EXPECT_EQ(r.errors, 0u) << "subscriber " << i << ": " << absl::StrJoin(r.first_errors, "\n");
    if (subscribers[i]->pace() == Pace::kFast) {
      fast_events += r.count;
      for (int p = 0; p < kPhases; ++p) {
        fast_lag.Merge(subscribers[i]->lag(p));
        fast_lag_by_phase[p].Merge(subscribers[i]->lag(p));
      }
    } else {
      slow_events += r.count;
    }
  }

  long rss_max = rss_idle;
  long rss_warm = rss_idle;
  std::string trajectory;  // RSS at every tenth of the run
  int next_tenth = 1;
  for (const Sample& s : samples) {
    rss_max = std::max(rss_max, s.kib);
    if (s.at <= config.duration / 10) rss_warm = s.kib;
    if (s.at >= config.duration * next_tenth / 10) {
      absl::StrAppend(&trajectory, trajectory.empty() ? "" : " ", s.kib / 1024);
      ++next_tenth;
    }
  }
  std::cout << "soak: " << accepted << " webhooks in " << absl::ToDoubleSeconds(ingest_time)
            << " s (" << absl::StrFormat("%.0f", achieved_rate) << "/s target " << config.rate
            << "/s, " << config.connections << " keep-alive connections); POST->200 p50 "
            << Ms(post_latency.Percentile(0.5)) << " p99 " << Ms(post_latency.Percentile(0.99))
            << " max " << Ms(post_latency.max()) << "\n"
            << "soak: stored " << end_stats->log().event_count() << " events, "
            << Mib(static_cast<long>(end_stats->log().event_bytes() / 1024)) << "; hub window "
            << kWindowEvents << " events; largest subscriber lag " << max_slow_lag << " events\n"
            << "soak: server RSS idle " << Mib(rss_idle) << ", at 10% " << Mib(rss_warm)
            << ", middle " << Mib(rss_middle) << ", end " << Mib(rss_end) << ", max "
            << Mib(rss_max) << "; each tenth of the run (MiB): " << trajectory << "\n"
            << "soak: delivered " << fast_events << " events to 90 fast subscribers, "
            << slow_events << " to 10 slow ones; slow ones caught up "
            << absl::ToDoubleSeconds(catch_up_time) << " s after ingest ended\n"
            << "soak: fast subscribers' lag (200 -> receipt) p50 " << Ms(fast_lag.Percentile(0.5))
            << " p99 " << Ms(fast_lag.Percentile(0.99)) << " max " << Ms(fast_lag.max()) << " over "
            << fast_lag.count() << " deliveries\n";
  for (int p = 0; p < kPhases; ++p) {
    std::cout << "soak:   " << kPhaseNames[p] << ": p50 "
              << Ms(fast_lag_by_phase[p].Percentile(0.5)) << " p99 "
              << Ms(fast_lag_by_phase[p].Percentile(0.99)) << " max "
              << Ms(fast_lag_by_phase[p].max()) << "\n";
  }
  EXPECT_LT(rss_max - rss_idle, kMaxGrowthKib)
      << "server RSS grew from " << rss_idle << " KiB to " << rss_max << " KiB";
  // The stored backlog (which the stopped subscribers still had to read)
  // must dwarf the memory bound for the bound to mean anything; at the
  // default rate and padding a run of a minute or more gets there.
  if (config.duration >= absl::Minutes(1)) {
    EXPECT_GT(end_stats->log().event_bytes(), 2ull * kMaxGrowthKib * 1024)
        << "raise SIDESTREAM_SOAK_PADDING or the rate";
  }
  EXPECT_GT(max_slow_lag, 20u * kWindowEvents) << "slow subscribers never fell far behind";
  EXPECT_LT(fast_lag.Percentile(0.99), max_fast_p99)
      << "fast subscribers were held back (p99 lag from 200 to receipt)";

  server->Kill();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
}

}  // namespace
}  // namespace sidestream::testing
