// Kill -9 chaos: concurrent Stripe-like senders and a resuming subscriber
// while the server is SIGKILLed at random moments and restarted on the same
// data directory and the same ports. Afterwards every acknowledged event must
// be stored exactly once, byte for byte, and the subscriber must have
// received every stored event exactly once, in sequence order.
//
// CI mode: 30 kills. SIDESTREAM_CHAOS_KILLS=N runs N (at least 20),
// SIDESTREAM_CHAOS_SENDERS the number of sender threads (4),
// SIDESTREAM_CHAOS_SEED the seed of the kill schedule and the events.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>

#include "client/http_client.h"
#include "client/subscriber.h"
#include "tests/chaos/chaos_util.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

// Each sender sends at most this many events (a bound; the kill schedule
// ends the run long before).
constexpr int kMaxEventsPerSender = 200000;
// An event not acknowledged within this time (while the server restarts
// again and again) counts as a failure of the run.
constexpr absl::Duration kDeliveryTimeout = absl::Seconds(60);

// What one sender thread did.
struct SenderLog {
  std::vector<SentEvent> sent;
  std::vector<Delivery> deliveries;  // parallel to `sent`
};

// What the subscriber received, in arrival order.
struct Received {
  uint64_t sequence;
  std::string id;
  size_t raw_hash;
};

// Starts the server on fixed addresses; retries a few times when a port is
// momentarily taken (another process may grab a released ephemeral port).
absl::StatusOr<std::unique_ptr<ServerProcess>> StartOnSamePorts(const ServerProcessOptions& options,
                                                                std::mt19937_64& rng) {
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
    if (server.ok()) return server;
    last = server.status();
    if (!absl::StrContains(last.message(), "listen") &&
        !absl::StrContains(last.message(), "in use")) {
      break;  // not a port problem: the restart itself failed
    }
    // Back-off before trying the port again; not synchronisation.
    absl::SleepFor(absl::Milliseconds(100 + static_cast<int64_t>(rng() % 400)));
  }
  return last;
}

TEST(Kill9ChaosTest, AcknowledgedEventsSurviveRandomKill9sExactlyOnceAndInOrder) {
  const uint64_t seed = ChaosSeed();
  const int kills = static_cast<int>(std::max<int64_t>(20, EnvInt("SIDESTREAM_CHAOS_KILLS", 30)));
  const int senders =
      static_cast<int>(std::clamp<int64_t>(EnvInt("SIDESTREAM_CHAOS_SENDERS", 4), 1, 64));
  std::cout << "kill9 chaos: seed=" << seed << " kills=" << kills << " senders=" << senders
            << std::endl;
  std::mt19937_64 rng(seed);
  const absl::Time start_time = absl::Now();

  ServerProcessOptions options;
  options.data_dir = MakeTempDir("chaos-kill9");
  absl::StatusOr<std::unique_ptr<ServerProcess>> first = ServerProcess::Start(options);
  ASSERT_TRUE(first.ok()) << first.status();
  std::unique_ptr<ServerProcess> server = *std::move(first);
  // Every restart uses the first run's ports, so clients keep their targets.
  options.http_listen = server->http_address();
  options.grpc_listen = server->grpc_address();
  const std::string epoch = server->epoch();
  const std::string webhook_url = server->webhook_url();
  const std::string grpc_target = server->grpc_address();

  // The subscriber: the real client library, resuming after its cursor with
  // the log epoch after every restart. A short reconnect back-off keeps it
  // close behind.
  absl::Mutex received_mu;
  std::vector<Received> received;  // guarded by received_mu
  uint64_t received_max = 0;       // guarded by received_mu
  std::atomic<int> subscriber_retries{0};
  SubscriberOptions subscriber_options;
  subscriber_options.position = v1::START_POSITION_OLDEST;
  subscriber_options.include_raw_json = true;
  subscriber_options.initial_backoff = absl::Milliseconds(50);
  subscriber_options.max_backoff = absl::Milliseconds(500);
  subscriber_options.on_retry = [&](const absl::Status&, absl::Duration) { ++subscriber_retries; };
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  channel_args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  absl::StatusOr<std::unique_ptr<Subscriber>> subscriber = Subscriber::CreateWithChannel(
      subscriber_options,
      grpc::CreateCustomChannel(grpc_target, grpc::InsecureChannelCredentials(), channel_args));
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  absl::Status subscriber_status;
  std::thread subscriber_thread([&] {
    subscriber_status = (*subscriber)->Run([&](const v1::SubscribeResponse& item) {
      if (!item.has_event()) return;
      absl::MutexLock lock(&received_mu);
      received.push_back(Received{item.event().sequence(), item.event().id(),
                                  std::hash<std::string>()(item.event().raw_json())});
      received_max = std::max(received_max, item.event().sequence());
    });
  });

  // The senders: each with its own keep-alive connection, each event retried
  // until acknowledged (same id and body, a fresh signature per attempt).
  std::atomic<bool> stop_new_events{false};
  std::vector<SenderLog> logs(senders);
  std::vector<std::thread> sender_threads;
  for (int t = 0; t < senders; ++t) {
    sender_threads.emplace_back([&, t, sender_seed = rng()] {
      std::mt19937_64 sender_rng(sender_seed);
      absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
          HttpConnection::Create(webhook_url);
      if (!connection.ok()) {
        ADD_FAILURE() << connection.status();
        return;
      }
      for (int i = 0; i < kMaxEventsPerSender && !stop_new_events.load(); ++i) {
        SentEvent event = MakeEvent(absl::StrCat("evt_chaos", t, "_", i), sender_rng);
        Delivery delivery =
            DeliverLikeStripe(**connection, event, absl::Now() + kDeliveryTimeout, sender_rng);
        logs[t].sent.push_back(std::move(event));
        logs[t].deliveries.push_back(delivery);
        if (!delivery.acknowledged) break;  // reported below
      }
    });
  }

  // The chaos schedule: a random stretch of traffic, SIGKILL, restart.
  int done_kills = 0;
  bool restart_failed = false;
  for (; done_kills < kills; ++done_kills) {
    // Mostly a few hundred milliseconds of traffic; sometimes a kill right
    // after the ready line.
    const int64_t delay_ms =
        rng() % 5 == 0 ? static_cast<int64_t>(rng() % 20) : 50 + static_cast<int64_t>(rng() % 700);
    // The chaos schedule itself, not synchronisation: the kill lands
    // wherever the server happens to be.
    absl::SleepFor(absl::Milliseconds(delay_ms));
    server->Kill();
    absl::StatusOr<std::unique_ptr<ServerProcess>> restarted = StartOnSamePorts(options, rng);
    if (!restarted.ok()) {
      ADD_FAILURE() << "restart after kill " << done_kills + 1 << " failed: " << restarted.status();
      restart_failed = true;
      ++done_kills;
      break;
    }
    server = *std::move(restarted);
    EXPECT_EQ(server->epoch(), epoch) << "the log's identity changed across kill -9";
  }
  stop_new_events = true;
  for (std::thread& thread : sender_threads) thread.join();

  // Everything the log serves now, and the head the subscriber must reach.
  absl::StatusOr<std::vector<v1::Event>> stored =
      restart_failed ? absl::StatusOr<std::vector<v1::Event>>(absl::UnavailableError("no server"))
                     : ListAllEvents(grpc_target);
  EXPECT_TRUE(stored.ok()) << stored.status();
  const uint64_t head = stored.ok() && !stored->empty() ? stored->back().sequence() : 0;
  {
    absl::MutexLock lock(&received_mu);
    auto caught_up = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(received_mu) {
      return received_max >= head;
    };
    EXPECT_TRUE(received_mu.AwaitWithTimeout(absl::Condition(&caught_up), absl::Seconds(60)))
        << "the subscriber reached sequence " << received_max << " of " << head;
  }
  (*subscriber)->Stop();
  subscriber_thread.join();
  EXPECT_TRUE(subscriber_status.ok()) << subscriber_status;
  const absl::Duration wall = absl::Now() - start_time;

  // What was sent and acknowledged.
  std::map<std::string, SentEvent> sent;
  std::map<std::string, uint64_t> acknowledged;  // id -> sequence the 2xx reported
  int64_t attempts = 0, answered_503 = 0, transport_errors = 0, duplicate_acks = 0;
  std::vector<std::string> unacknowledged;
  for (SenderLog& log : logs) {
    for (size_t i = 0; i < log.sent.size(); ++i) {
      const Delivery& d = log.deliveries[i];
      attempts += d.attempts;
      answered_503 += d.status_503;
      transport_errors += d.transport_errors;
      if (d.acknowledged) {
        acknowledged[log.sent[i].id] = d.sequence;
        if (d.duplicate) ++duplicate_acks;
      } else {
        unacknowledged.push_back(absl::StrCat(log.sent[i].id, ": ", d.last_error));
      }
      sent.emplace(log.sent[i].id, log.sent[i]);
    }
  }

  // The log: each id once, dense sequences, bytes as sent, and the sequence
  // each acknowledgement reported.
  std::map<std::string, int> stored_count;
  std::map<std::string, uint64_t> stored_sequence;
  int64_t lost = 0, duplicated = 0, wrong_sequence = 0, gaps = 0;
  std::vector<std::string> problems;
  if (stored.ok()) {
    uint64_t expected = 1;
    for (const v1::Event& event : *stored) {
      if (event.sequence() != expected) ++gaps;
      expected = event.sequence() + 1;
      if (++stored_count[event.id()] == 2) ++duplicated;
      stored_sequence[event.id()] = event.sequence();
    }
    problems = CheckServedAgainstSent(*stored, sent);
  }
  for (const auto& [id, sequence] : acknowledged) {
    auto it = stored_sequence.find(id);
    if (it == stored_sequence.end()) {
      ++lost;
      if (lost <= 10)
        ADD_FAILURE() << "acknowledged event " << id << " (sequence " << sequence
                      << ") is not in the log";
    } else if (it->second != sequence) {
      ++wrong_sequence;
      if (wrong_sequence <= 10) {
        ADD_FAILURE() << id << " was acknowledged with sequence " << sequence
                      << " but is stored at " << it->second;
      }
    }
  }

  // The subscriber: strictly increasing, each stored event exactly once.
  int64_t out_of_order = 0, delivered_duplicates = 0, undelivered = 0, raw_mismatches = 0;
  std::map<std::string, int> delivered_count;
  {
    absl::MutexLock lock(&received_mu);
    for (size_t i = 0; i < received.size(); ++i) {
      if (i > 0 && received[i].sequence <= received[i - 1].sequence) ++out_of_order;
      if (++delivered_count[received[i].id] == 2) ++delivered_duplicates;
      auto it = sent.find(received[i].id);
      if (it == sent.end() || std::hash<std::string>()(it->second.body) != received[i].raw_hash) {
        ++raw_mismatches;
      }
    }
  }
  for (const auto& [id, count] : stored_count) {
    if (!delivered_count.contains(id)) ++undelivered;
  }
  const int64_t delivered = static_cast<int64_t>(delivered_count.size());
  duplicated += delivered_duplicates;

  const std::string summary = absl::StrCat(
      "kill9 chaos result: seed=", seed, " kills=", done_kills, " senders=", senders,
      " sent=", sent.size(), " attempts=", attempts, " acknowledged=", acknowledged.size(),
      " acknowledged_as_duplicate=", duplicate_acks, " answered_503=", answered_503,
      " transport_errors=", transport_errors, " stored=", stored.ok() ? stored->size() : 0,
      " delivered=", delivered, " lost=", lost, " duplicated=", duplicated,
      " undelivered=", undelivered, " out_of_order=", out_of_order,
      " subscriber_retries=", subscriber_retries.load(), " wall_s=", absl::ToDoubleSeconds(wall));
  std::cout << summary << std::endl;
  for (const auto& [key, value] : std::vector<std::pair<std::string, int64_t>>{
           {"seed", static_cast<int64_t>(seed)},
           {"kills", done_kills},
           {"sent", static_cast<int64_t>(sent.size())},
           {"attempts", attempts},
           {"acknowledged", static_cast<int64_t>(acknowledged.size())},
           {"acknowledged_as_duplicate", duplicate_acks},
           {"stored", stored.ok() ? static_cast<int64_t>(stored->size()) : -1},
           {"delivered", delivered},
           {"lost", lost},
           {"duplicated", duplicated},
           {"wall_ms", absl::ToInt64Milliseconds(wall)}}) {
    ::testing::Test::RecordProperty(key, absl::StrCat(value));
  }

  EXPECT_EQ(done_kills, kills);
  EXPECT_TRUE(unacknowledged.empty())
      << unacknowledged.size() << " events never acknowledged, first: " << unacknowledged.front();
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(wrong_sequence, 0);
  EXPECT_EQ(gaps, 0) << "stored sequences are not dense from 1";
  EXPECT_TRUE(problems.empty()) << problems.size() << " served events differ from what was sent, "
                                << "first: " << problems.front();
  // Everything sent was acknowledged, so the log holds exactly those events.
  EXPECT_EQ(stored.ok() ? stored->size() : 0, acknowledged.size());
  EXPECT_EQ(undelivered, 0);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(raw_mismatches, 0) << "the subscriber received bytes other than those posted";
  EXPECT_GT(acknowledged.size(), static_cast<size_t>(kills)) << "too little traffic to mean much";
}

}  // namespace
}  // namespace sidestream::testing
