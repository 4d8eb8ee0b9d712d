// Sidestream on NATS JetStream, end to end: webhooks in over HTTP, events
// out over gRPC, nats-server processes killed and restarted underneath.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

#include "client/http_client.h"
#include "sidestream/v1/admin_service.grpc.pb.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/nats_process.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Ids(const std::vector<v1::Event>& events) {
  std::vector<std::string> ids;
  for (const auto& e : events) ids.push_back(e.id());
  return ids;
}

// Every sequence exactly once, consecutive.
void ExpectDense(const std::vector<v1::Event>& events, uint64_t first) {
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].sequence(), first + i) << "at " << i;
  }
}

// The log's last sequence as `server` knows it (Admin.GetStats): at least
// the sequence of every event it acknowledged.
uint64_t LastSequence(const ServerProcess& server) {
  auto stub = v1::Admin::NewStub(
      grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetStatsResponse stats;
  const grpc::Status status = stub->GetStats(&context, v1::GetStatsRequest(), &stats);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return stats.log().last_sequence();
}

v1::SubscribeRequest FromOldest() {
  v1::SubscribeRequest request;
  request.set_position(v1::START_POSITION_OLDEST);
  return request;
}

v1::SubscribeRequest After(uint64_t sequence, const std::string& epoch) {
  v1::SubscribeRequest request;
  request.set_after_sequence(sequence);
  request.set_log_epoch(epoch);
  return request;
}

int Post(const ServerProcess& server, const std::string& id) {
  absl::StatusOr<HttpResponse> r = PostWebhook(
      server.webhook_url(), SampleBody("invoice.paid", "acct_1Nv0FGQ9RKHgCVdK", false, id));
  return r.ok() ? r->status_code : -1;
}

int ReadyzStatus(const ServerProcess& server) {
  absl::StatusOr<HttpResponse> r =
      HttpGet(absl::StrCat("http://", server.admin_address(), "/readyz"), {}, absl::Seconds(5));
  return r.ok() ? r->status_code : -1;
}

class JetStreamE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = MakeTempDir("jetstream-e2e"); }

  std::unique_ptr<ServerProcess> StartSidestream(const std::string& urls, int replicas = 1) {
    ServerProcessOptions options;
    options.data_dir = MakeTempDir("sidestream");
    options.args = {"--log=jetstream", "--nats_url=" + urls,
                    absl::StrCat("--nats_replicas=", replicas), "--nats_timeout=2s"};
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  std::unique_ptr<NatsProcess> StartNats() {
    NatsNodeOptions options;
    options.store_dir = root_ + "/nats";
    absl::StatusOr<std::unique_ptr<NatsProcess>> nats = NatsProcess::Start(options);
    EXPECT_TRUE(nats.ok()) << nats.status();
    return nats.ok() ? *std::move(nats) : nullptr;
  }

  std::unique_ptr<NatsCluster> StartCluster() {
    absl::StatusOr<std::unique_ptr<NatsCluster>> cluster = NatsCluster::Start(root_ + "/cluster");
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    return cluster.ok() ? *std::move(cluster) : nullptr;
  }

  // A three-node cluster and two Sidestream instances on a stream with 3
  // replicas; `b` is null when anything failed to start.
  struct ClusterOfTwo {
    std::unique_ptr<NatsCluster> cluster;
    std::unique_ptr<ServerProcess> a, b;
  };
  ClusterOfTwo StartClusterOfTwo() {
    ClusterOfTwo c;
    c.cluster = StartCluster();
    if (c.cluster == nullptr) return c;
    c.a = StartSidestream(c.cluster->urls(), 3);
    if (c.a == nullptr) return c;
    c.b = StartSidestream(c.cluster->urls(), 3);
    return c;
  }

  std::string root_;
};

TEST_F(JetStreamE2eTest, WebhookReachesSubscriberAndARetryIsStoredOnce) {
  auto nats = StartNats();
  ASSERT_NE(nats, nullptr);
  auto server = StartSidestream(nats->url());
  ASSERT_NE(server, nullptr);
  StreamCollector collector(server->grpc_address(), FromOldest());
  ASSERT_TRUE(collector.WaitForCaughtUp());
  EXPECT_EQ(Post(*server, "evt_one"), 200);
  EXPECT_EQ(Post(*server, "evt_one"), 200);  // Stripe's retry
  EXPECT_EQ(Post(*server, "evt_two"), 200);
  ASSERT_TRUE(collector.WaitForEvents(2));
  EXPECT_THAT(Ids(collector.events()), ElementsAre("evt_one", "evt_two"));
  ExpectDense(collector.events(), 1);
}

// NATS down when Sidestream starts: it starts anyway, not ready, answers
// webhooks 503 (Stripe retries) and subscriptions UNAVAILABLE, says why,
// and opens the log on its own once NATS answers.
TEST_F(JetStreamE2eTest, NatsDownAtStartServesNotReadyThenRecovers) {
  auto nats = StartNats();
  ASSERT_NE(nats, nullptr);
  const std::string url = nats->url();
  nats->Kill();
  auto server = StartSidestream(url);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ReadyzStatus(*server), 503);
  EXPECT_EQ(Post(*server, "evt_early"), 503);
  {
    StreamCollector refused(server->grpc_address(), FromOldest());
    ASSERT_TRUE(refused.WaitForEnd());
    EXPECT_EQ(refused.status().error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(refused.status().error_message(), HasSubstr("not open yet"));
  }
  EXPECT_THAT(server->StderrText(), HasSubstr("cannot connect to NATS at " + url));

  ASSERT_TRUE(nats->Restart().ok());
  // The server retries the connection on a timer.
  ASSERT_TRUE(WaitForReadyz(server->admin_address(), 200, absl::Seconds(30)))
      << server->StderrText();
  StreamCollector collector(server->grpc_address(), FromOldest());
  ASSERT_TRUE(collector.WaitForCaughtUp());
  EXPECT_EQ(Post(*server, "evt_early"), 200);  // Stripe's retry
  ASSERT_TRUE(collector.WaitForEvents(1));
  EXPECT_THAT(Ids(collector.events()), ElementsAre("evt_early"));
  ExpectDense(collector.events(), 1);
}

TEST_F(JetStreamE2eTest, NatsOutageGives503AndNotReadyUntilItReturns) {
  auto nats = StartNats();
  ASSERT_NE(nats, nullptr);
  auto server = StartSidestream(nats->url());
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(Post(*server, "evt_before"), 200);
  nats->Kill();
  EXPECT_EQ(Post(*server, "evt_during"), 503);
  EXPECT_TRUE(WaitForReadyz(server->admin_address(), 503, absl::Seconds(15)));
  ASSERT_TRUE(nats->Restart().ok());
  ASSERT_TRUE(nats->WaitHealthy(absl::Seconds(20)).ok());
  // Ready again once the log is writable; then the retry Stripe would send
  // is stored.
  ASSERT_TRUE(WaitForReadyz(server->admin_address(), 200, absl::Seconds(20)));
  EXPECT_EQ(Post(*server, "evt_during"), 200);
  StreamCollector collector(server->grpc_address(), FromOldest());
  ASSERT_TRUE(collector.WaitForEvents(2));
  ASSERT_TRUE(collector.WaitForCaughtUp());
  EXPECT_THAT(Ids(collector.events()), ElementsAre("evt_before", "evt_during"));
}

TEST_F(JetStreamE2eTest, ClusterSharesEventsDedupAndCursorsBetweenInstances) {
  ClusterOfTwo c = StartClusterOfTwo();
  ASSERT_NE(c.b, nullptr);
  auto& [cluster, a, b] = c;
  EXPECT_EQ(a->epoch(), b->epoch());
  StreamCollector on_b(b->grpc_address(), FromOldest());
  ASSERT_TRUE(on_b.WaitForCaughtUp());
  // A webhook posted to A reaches a subscriber on B.
  ASSERT_EQ(Post(*a, "evt_1"), 200);
  ASSERT_TRUE(on_b.WaitForEvents(1));
  // The same event posted to B is stored once.
  ASSERT_EQ(Post(*b, "evt_1"), 200);
  ASSERT_EQ(Post(*b, "evt_2"), 200);
  ASSERT_TRUE(on_b.WaitForEvents(2));
  EXPECT_THAT(Ids(on_b.events()), ElementsAre("evt_1", "evt_2"));
  // A subscriber reads part of the stream on A, then moves to B with its
  // cursor and the epoch: no gap, no duplicate.
  for (int i = 3; i <= 10; ++i) ASSERT_EQ(Post(i % 2 ? *a : *b, absl::StrCat("evt_", i)), 200);
  std::vector<v1::Event> seen;
  {
    StreamCollector on_a(a->grpc_address(), FromOldest());
    ASSERT_TRUE(on_a.WaitForEvents(6));
    on_a.Cancel();
    seen = on_a.events();
  }
  ASSERT_GE(seen.size(), 6u);
  for (int i = 11; i <= 14; ++i) ASSERT_EQ(Post(*a, absl::StrCat("evt_", i)), 200);
  StreamCollector moved(b->grpc_address(), After(seen.back().sequence(), a->epoch()));
  const size_t remaining = 14 - seen.size();
  ASSERT_TRUE(moved.WaitForEvents(remaining));
  for (const v1::Event& e : moved.events()) seen.push_back(e);
  ASSERT_EQ(seen.size(), 14u);
  ExpectDense(seen, 1);
  for (int i = 1; i <= 14; ++i) EXPECT_EQ(seen[i - 1].id(), absl::StrCat("evt_", i));
}

TEST_F(JetStreamE2eTest, KillingANatsNodeUnderLoadLosesNoAcknowledgedEvent) {
  ClusterOfTwo c = StartClusterOfTwo();
  ASSERT_NE(c.b, nullptr);
  auto& [cluster, a, b] = c;
  // Two posters (one per instance) at a steady pace. Node n2 dies after 100
  // posts; the load goes on until 100 more were acknowledged after the kill
  // (the cluster recovered), within a deadline.
  std::map<std::string, int> codes;
  absl::Mutex mu;
  int posted = 0;                   // guarded by mu
  int acknowledged_after_kill = 0;  // guarded by mu
  std::atomic<bool> killed{false};
  std::atomic<bool> stop{false};
  auto poster = [&](ServerProcess* server, const std::string& prefix) {
    for (int i = 0; !stop.load() && i < 5000; ++i) {
      const std::string id = absl::StrCat("evt_", prefix, "_", i);
      const bool after_kill = killed.load();
      const int code = Post(*server, id);
      {
        absl::MutexLock lock(&mu);
        codes[id] = code;
        ++posted;
        if (after_kill && code == 200) ++acknowledged_after_kill;
      }
      // Pacing: a steady load of ~200 webhooks/s per poster, not a wait.
      absl::SleepFor(absl::Milliseconds(5));
    }
  };
  std::thread pa(poster, a.get(), "a");
  std::thread pb(poster, b.get(), "b");
  {
    absl::MutexLock lock(&mu);
    auto started = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return posted >= 100; };
    mu.AwaitWithTimeout(absl::Condition(&started), absl::Seconds(30));
  }
  cluster->node(1).Kill();
  killed.store(true);
  bool recovered = false;
  {
    absl::MutexLock lock(&mu);
    auto enough = [&]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return acknowledged_after_kill >= 100; };
    recovered = mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(45));
  }
  stop.store(true);
  pa.join();
  pb.join();
  EXPECT_TRUE(recovered) << "the cluster did not recover in time";
  std::set<std::string> acknowledged;
  int unavailable = 0;
  for (const auto& [id, code] : codes) {
    EXPECT_TRUE(code == 200 || code == 503) << id << " got " << code;
    if (code == 200) acknowledged.insert(id);
    if (code == 503) ++unavailable;
  }
  // Everything acknowledged is stored and readable on both instances, once.
  // Each instance's last sequence covers the events it acknowledged, and
  // sequences are dense from 1: a stream holding that many events holds them
  // all.
  const uint64_t last = std::max(LastSequence(*a), LastSequence(*b));
  for (ServerProcess* server : {a.get(), b.get()}) {
    StreamCollector all(server->grpc_address(), FromOldest());
    // Live delivery may lag while an instance replaces a follower whose
    // consumer was on the dead node (a few seconds).
    EXPECT_TRUE(all.WaitForEvents(last, absl::Seconds(20)))
        << server->grpc_address() << " delivered " << all.events().size() << " of " << last;
    const std::vector<v1::Event> events = all.events();
    ExpectDense(events, 1);
    std::set<std::string> stored;
    for (const v1::Event& e : events) EXPECT_TRUE(stored.insert(e.id()).second) << e.id();
    size_t missing = 0;
    for (const std::string& id : acknowledged) missing += stored.count(id) == 0;
    EXPECT_EQ(missing, 0u) << "acknowledged but not delivered by " << server->grpc_address() << ": "
                           << missing << " (delivered " << events.size() << ", last "
                           << (events.empty() ? 0 : events.back().sequence()) << ")";
  }
  std::cout << "kill-node load: " << acknowledged.size() << " acknowledged, " << unavailable
            << " got 503, of " << codes.size() << std::endl;
}

TEST_F(JetStreamE2eTest, SubscriberOfAKilledInstanceResumesOnTheOther) {
  ClusterOfTwo c = StartClusterOfTwo();
  ASSERT_NE(c.b, nullptr);
  auto& [cluster, a, b] = c;
  std::vector<v1::Event> seen;
  {
    StreamCollector on_a(a->grpc_address(), FromOldest());
    ASSERT_TRUE(on_a.WaitForCaughtUp());
    for (int i = 1; i <= 5; ++i) ASSERT_EQ(Post(*b, absl::StrCat("evt_", i)), 200);
    ASSERT_TRUE(on_a.WaitForEvents(5));
    a->Kill();
    ASSERT_TRUE(on_a.WaitForEnd());
    seen = on_a.events();
  }
  for (int i = 6; i <= 8; ++i) ASSERT_EQ(Post(*b, absl::StrCat("evt_", i)), 200);
  StreamCollector on_b(b->grpc_address(), After(seen.back().sequence(), b->epoch()));
  ASSERT_TRUE(on_b.WaitForEvents(8 - seen.size()));
  for (const v1::Event& e : on_b.events()) seen.push_back(e);
  ASSERT_EQ(seen.size(), 8u);
  ExpectDense(seen, 1);
}

}  // namespace
}  // namespace sidestream::testing
