// Many connections: 1,000 idle HTTP connections and 1,000 idle Subscribe
// streams do not stop the server from serving new webhooks and new
// subscribers promptly; clients trickling a request (slowloris) are cut off
// by --http_request_timeout while everyone else is served.
#include <iostream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "server/verify/stripe_signature.h"
#include "tests/load/load_util.h"
#include "tests/load/raw_http.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

constexpr int kIdleHttp = 1000;
constexpr int kIdleStreams = 1000;
constexpr int kStreamChannels = 4;     // 250 HTTP/2 streams per connection
constexpr char kSocket[] = "socket:";  // /proc/PID/fd link targets of sockets

std::string Ms(absl::Duration d) {
  return absl::StrFormat("%.1f ms", absl::ToDoubleMilliseconds(d));
}

// Posts `n` sample webhooks, each on a fresh connection; expects 200 for
// each and returns the POST-to-200 latencies.
LatencyHistogram PostMany(const ServerProcess& server, int n, const std::string& id_prefix) {
  LatencyHistogram latency;
  for (int i = 0; i < n; ++i) {
    const absl::Time sent = absl::Now();
    absl::StatusOr<HttpResponse> r =
        PostWebhook(server.webhook_url(),
                    SampleBody("payout.paid", "acct_1Conn", false, absl::StrCat(id_prefix, i)));
    latency.Add(absl::Now() - sent);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      EXPECT_EQ(r->status_code, 200) << r->body;
    }
  }
  return latency;
}

// Polls a condition the server does not announce (its open descriptors),
// until it holds or `timeout` passes.
template <typename Predicate>
bool PollUntil(Predicate done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

TEST(LoadConnectionsTest, ThousandIdleConnectionsAndStreamsDoNotBlockNewWork) {
  // Both ends of 1,000 sockets plus gRPC's: the client side is this
  // process, the server inherits the limit from it.
  absl::Status fd_limit = EnsureFdLimit(8192);
  ASSERT_TRUE(fd_limit.ok()) << fd_limit;
  ServerProcessOptions options;
  options.data_dir = MakeTempDir("conns");
  // Long enough that no idle connection is closed during the test.
  options.args = {"--http_idle_timeout=300s", "--log_level=warning"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<ServerProcess> server = *std::move(started);
  const pid_t pid = server->pid();

  // Counted before any client connected: a connection closed a moment ago
  // may still be open on the server's side for a while. Sockets only: a
  // file the server has open for a moment (counted once, closed right after)
  // made an accept check of all descriptors come out one short.
  const int sockets_before = CountOpenFds(pid, kSocket);
  const int fds_before = CountOpenFds(pid);
  const LatencyHistogram baseline = PostMany(*server, 20, "evt_base_");
  const long rss_before = server->RssKib();

  // 1,000 idle HTTP connections: connected, not a byte sent.
  std::vector<std::unique_ptr<RawHttpConnection>> idle;
  for (int i = 0; i < kIdleHttp; ++i) {
    idle.push_back(std::make_unique<RawHttpConnection>(server->http_address()));
    ASSERT_TRUE(idle.back()->connected()) << "connection " << i;
  }
  ASSERT_TRUE(PollUntil([&] { return CountOpenFds(pid, kSocket) >= sockets_before + kIdleHttp; },
                        absl::Seconds(30)))
      << "the server accepted only " << CountOpenFds(pid, kSocket) - sockets_before << " of "
      << kIdleHttp;

  // 1,000 idle Subscribe streams (a filter that matches nothing) over a few
  // HTTP/2 connections.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < kStreamChannels; ++c) channels.push_back(NewChannel(server->grpc_address()));
  v1::SubscribeRequest idle_request;
  idle_request.mutable_filter()->add_types("idle.never");
  const absl::Time streams_start = absl::Now();
  auto streams = std::make_unique<StreamGroup>(channels, idle_request, kIdleStreams);
  ASSERT_TRUE(streams->WaitForCaughtUp(kIdleStreams, absl::Seconds(60)))
      << streams->caught_up() << " of " << kIdleStreams << " streams caught up";
  const absl::Duration streams_time = absl::Now() - streams_start;
  absl::StatusOr<v1::GetStatsResponse> stats = GetStats(server->grpc_address());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->subscriptions_size(), kIdleStreams);
  const int fds_loaded = CountOpenFds(pid);
  const long rss_loaded = server->RssKib();

  // New webhooks are served promptly.
  const LatencyHistogram loaded = PostMany(*server, 50, "evt_loaded_");
  EXPECT_LT(loaded.max(), absl::Seconds(2));

  // A new subscriber starts promptly and gets everything, then a new event.
  const absl::Time subscribe_start = absl::Now();
  v1::SubscribeRequest from_oldest;
  from_oldest.set_position(v1::START_POSITION_OLDEST);
  StreamCollector fresh(server->grpc_address(), from_oldest);
  ASSERT_TRUE(fresh.WaitForCaughtUp(absl::Seconds(10)));
  const absl::Duration caught_up_time = absl::Now() - subscribe_start;
  EXPECT_EQ(fresh.events().size(), 70u);
  EXPECT_LT(caught_up_time, absl::Seconds(2));
  const absl::Time live_start = absl::Now();
  PostMany(*server, 1, "evt_live_");
  ASSERT_TRUE(fresh.WaitForEvents(71, absl::Seconds(10)));
  const absl::Duration live_time = absl::Now() - live_start;
  EXPECT_EQ(fresh.events().back().id(), "evt_live_0");

  // Every idle connection is still open and still usable.
  int still_open = 0;
  for (auto& c : idle) still_open += c->PeerClosedNow() ? 0 : 1;
  EXPECT_EQ(still_open, kIdleHttp);
  for (int i = 0; i < 10; ++i) {
    RawHttpConnection& c = *idle[static_cast<size_t>(i) * (kIdleHttp / 10)];
    const std::string body =
        SampleBody("payout.paid", "acct_1Conn", false, absl::StrCat("evt_idle_", i));
    ASSERT_TRUE(c.Send(absl::StrCat(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
        "Stripe-Signature: ",
        MakeStripeSignatureHeader({kTestSecret}, absl::ToUnixSeconds(absl::Now()), body),
        "\r\nContent-Length: ", body.size(), "\r\n\r\n", body)));
    RawReadResult r = c.ReadResponses(1, absl::Seconds(10));
    ASSERT_EQ(r.responses.size(), 1u) << r.unparsed;
    EXPECT_EQ(r.responses[0].status, 200) << r.responses[0].body;
  }

  // Everything goes away: streams cancelled, connections closed (half of
  // them reset); the server lets go of all of it.
  streams->CancelAll();
  ASSERT_TRUE(streams->WaitForAllDone(absl::Seconds(30)));
  EXPECT_EQ(streams->end_codes()[grpc::StatusCode::CANCELLED], static_cast<size_t>(kIdleStreams));
  streams.reset();
  channels.clear();
  for (size_t i = 0; i < idle.size(); ++i) {
    if (i % 2 == 0) idle[i]->Reset();
  }
  idle.clear();
  // What remains: `fresh`'s connection (and a GetStats one in passing).
  EXPECT_TRUE(PollUntil([&] { return CountOpenFds(pid, kSocket) <= sockets_before + 2; },
                        absl::Seconds(30)))
      << "server still holds " << CountOpenFds(pid, kSocket) << " sockets (" << sockets_before
      << " before the idle connections)";
  EXPECT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<v1::GetStatsResponse> s = GetStats(server->grpc_address());
        return s.ok() && s->subscriptions_size() == 1;  // only `fresh`
      },
      absl::Seconds(30)));
  EXPECT_TRUE(ProcessAlive(pid));
  const LatencyHistogram after = PostMany(*server, 5, "evt_after_");

  std::cout << "connections: " << kIdleHttp << " idle HTTP connections + " << kIdleStreams
            << " idle streams on " << kStreamChannels << " HTTP/2 connections (all caught up in "
            << Ms(streams_time) << "); server fds " << fds_before << " -> " << fds_loaded
            << ", RSS " << rss_before / 1024 << " -> " << rss_loaded / 1024 << " MiB\n"
            << "connections: webhook POST->200 on a fresh connection: before p50 "
            << Ms(baseline.Percentile(0.5)) << " max " << Ms(baseline.max()) << "; under load p50 "
            << Ms(loaded.Percentile(0.5)) << " max " << Ms(loaded.max()) << "; after "
            << Ms(after.max()) << " max\n"
            << "connections: new subscriber caught up (70 events) in " << Ms(caught_up_time)
            << ", got a new event " << Ms(live_time) << " after its POST started\n";
}

TEST(LoadConnectionsTest, SlowlorisClientsAreCutOffByTheRequestTimeout) {
  constexpr absl::Duration kRequestTimeout = absl::Seconds(2);
  constexpr int kHeaderTricklers = 40;
  constexpr int kBodyTricklers = 10;
  ServerProcessOptions options;
  options.data_dir = MakeTempDir("slowloris");
  options.args = {"--http_request_timeout=2s", "--http_idle_timeout=30s", "--log_level=warning"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<ServerProcess> server = *std::move(started);

  struct Trickler {
    std::unique_ptr<RawHttpConnection> conn;
    absl::Time first_byte;
    std::optional<absl::Duration> cut_after;
  };
  std::vector<Trickler> tricklers;
  for (int i = 0; i < kHeaderTricklers + kBodyTricklers; ++i) {
    Trickler t{std::make_unique<RawHttpConnection>(server->http_address()), absl::Now(), {}};
    ASSERT_TRUE(t.conn->connected());
    // Header tricklers never finish their headers; body tricklers announce
    // 100,000 bytes and deliver them one at a time.
    ASSERT_TRUE(t.conn->Send(
        i < kHeaderTricklers
            ? std::string("POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            : std::string("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Stripe-Signature: t=1,v1=00\r\nContent-Length: 100000\r\n\r\n{")));
    tricklers.push_back(std::move(t));
  }

  // One byte per trickler every 100 ms (the slow client's pace), for at most
  // 10 s; a webhook from a normal client every 200 ms meanwhile.
  LatencyHistogram webhooks;
  int webhook_count = 0;
  const absl::Time start = absl::Now();
  for (int tick = 0; absl::Now() - start < absl::Seconds(10); ++tick) {
    size_t open = 0;
    for (Trickler& t : tricklers) {
      if (t.cut_after.has_value()) continue;
      if (t.conn->PeerClosedNow() || !t.conn->Send("a")) {
        t.cut_after = absl::Now() - t.first_byte;
        continue;
      }
      ++open;
    }
    if (open == 0) break;
    if (tick % 2 == 0) {
      const absl::Time sent = absl::Now();
      absl::StatusOr<HttpResponse> r = PostWebhook(
          server->webhook_url(),
          SampleBody("payout.paid", "", false, absl::StrCat("evt_slowloris_", webhook_count++)));
      webhooks.Add(absl::Now() - sent);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->status_code, 200) << r->body;
    }
    absl::SleepFor(absl::Milliseconds(100));  // the trickle's pace
  }
  absl::Duration first_cut = absl::InfiniteDuration(), last_cut = absl::ZeroDuration();
  for (size_t i = 0; i < tricklers.size(); ++i) {
    ASSERT_TRUE(tricklers[i].cut_after.has_value()) << "trickler " << i << " was never cut off";
    first_cut = std::min(first_cut, *tricklers[i].cut_after);
    last_cut = std::max(last_cut, *tricklers[i].cut_after);
  }
  // Cut by the request timeout: not earlier, and not much later (the check
  // runs every 100 ms, on a busy machine).
  EXPECT_GE(first_cut, kRequestTimeout - absl::Milliseconds(100));
  EXPECT_LT(last_cut, kRequestTimeout + absl::Seconds(2));
  EXPECT_GT(webhook_count, 2);
  EXPECT_LT(webhooks.max(), absl::Seconds(1));
  absl::StatusOr<v1::GetStatsResponse> stats = GetStats(server->grpc_address());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->log().event_count(), static_cast<uint64_t>(webhook_count))
      << "only the normal clients' webhooks are stored";
  EXPECT_TRUE(ProcessAlive(server->pid()));
  std::cout << "slowloris: " << kHeaderTricklers << " header and " << kBodyTricklers
            << " body tricklers cut off after " << Ms(first_cut) << " to " << Ms(last_cut)
            << " (request timeout 2 s); " << webhook_count << " webhooks meanwhile, max POST->200 "
            << Ms(webhooks.max()) << "\n";
}

}  // namespace
}  // namespace sidestream::testing
