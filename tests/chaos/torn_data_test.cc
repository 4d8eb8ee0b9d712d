// Torn writes: a data directory whose last writes were cut off, simulated by
// truncating events.db-wal or events.db at a random offset after a SIGKILL
// (or after a clean stop, when everything is in events.db). The server must
// either recover what SQLite's recovery keeps, serving only events exactly
// as they were sent, or refuse to start with a clear message. Never serve
// wrong data silently.
//
// CI mode: 4 rounds per test. SIDESTREAM_CHAOS_ROUNDS=N runs N,
// SIDESTREAM_CHAOS_SEED changes the offsets.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "client/http_client.h"
#include "tests/chaos/chaos_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

constexpr int kEvents = 150;

int Rounds() {
  return static_cast<int>(std::clamp<int64_t>(EnvInt("SIDESTREAM_CHAOS_ROUNDS", 4), 1, 1000));
}

// After a recovery: what is served is intact, and it is a committed prefix:
// sequences 1..k with k <= what was acknowledged. New webhooks are stored.
void ExpectIntactPrefixAndWritable(StartOutcome& outcome, const PopulatedLog& log,
                                   std::mt19937_64& rng, std::string* result) {
  const std::string target = outcome.server->grpc_address();
  ServedCheck served = CheckEverythingServed(target, log);
  EXPECT_TRUE(served.problems.empty()) << served.Summary();
  EXPECT_TRUE(served.list_error.empty()) << served.Summary();
  EXPECT_TRUE(served.stream_error.empty()) << served.Summary();
  absl::StatusOr<std::vector<v1::Event>> listed = ListAllEvents(target);
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (size_t i = 0; i < listed->size(); ++i) {
    EXPECT_EQ((*listed)[i].sequence(), i + 1) << "not a prefix: a hole at " << i + 1;
  }
  const uint64_t kept = listed->size();
  EXPECT_LE(kept, log.id_by_sequence.size());
  // The log still works: a new event gets the next sequence.
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
      HttpConnection::Create(outcome.server->webhook_url());
  ASSERT_TRUE(connection.ok());
  Delivery delivery = DeliverLikeStripe(**connection, MakeEvent("evt_afterrecovery", rng),
                                        absl::Now() + absl::Seconds(30), rng, 5);
  EXPECT_TRUE(delivery.acknowledged) << delivery.last_error;
  EXPECT_EQ(delivery.sequence, kept + 1);
  *result =
      absl::StrCat("recovered ", kept, "/", log.id_by_sequence.size(), " (", served.Summary(), ")");
}

TEST(TornDataTest, TruncatedWalRecoversACommittedPrefixOrIsRefusedClearly) {
  const uint64_t seed = ChaosSeed();
  std::mt19937_64 rng(seed);
  int recovered = 0, refused = 0;
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    const std::string dir = MakeTempDir("chaos-torn-wal");
    std::unique_ptr<ServerProcess> server;
    absl::StatusOr<PopulatedLog> log = Populate(dir, kEvents, "evt_torn", rng, &server);
    ASSERT_TRUE(log.ok()) << log.status();
    server->Kill();
    const std::string wal = dir + "/events.db-wal";
    const int64_t size = FileSize(wal);
    ASSERT_GT(size, 32) << "no WAL content left to tear";
    const int64_t offset = static_cast<int64_t>(rng() % static_cast<uint64_t>(size));
    ASSERT_TRUE(TruncateFile(wal, offset));

    StartOutcome outcome = StartOnDataDir(dir);
    std::string result;
    if (outcome.server != nullptr) {
      ++recovered;
      ExpectIntactPrefixAndWritable(outcome, *log, rng, &result);
    } else {
      ++refused;
      const std::string problem = RefusalProblem(outcome, dir);
      EXPECT_TRUE(problem.empty()) << problem;
      result = absl::StrCat("refused: ", RefusalLine(outcome));
    }
    const std::string line = absl::StrCat("WAL of ", size, " bytes cut at ", offset, ": ", result);
    std::cout << "torn wal round " << round << ": " << line << std::endl;
    ::testing::Test::RecordProperty(absl::StrCat("round_", round), line);
  }
  ::testing::Test::RecordProperty("recovered", absl::StrCat(recovered));
  ::testing::Test::RecordProperty("refused", absl::StrCat(refused));
}

TEST(TornDataTest, TruncatedDatabaseFileIsRecoveredIntactOrRefusedClearly) {
  const uint64_t seed = ChaosSeed() + 1;
  std::mt19937_64 rng(seed);
  int recovered = 0, refused = 0;
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    const std::string dir = MakeTempDir("chaos-torn-db");
    // Even rounds: a clean stop (everything checkpointed into events.db).
    // Odd rounds: half the events checkpointed by a clean stop, the other
    // half only in the WAL at the SIGKILL.
    const bool clean = round % 2 == 0;
    std::unique_ptr<ServerProcess> server;
    absl::StatusOr<PopulatedLog> log =
        Populate(dir, clean ? kEvents : kEvents / 2, "evt_torndb", rng, &server);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_EQ(server->Terminate(absl::Seconds(30)), 0);
    if (!clean) {
      absl::StatusOr<PopulatedLog> more = Populate(dir, kEvents / 2, "evt_torndbwal", rng, &server);
      ASSERT_TRUE(more.ok()) << more.status();
      log->sent.merge(more->sent);
      log->id_by_sequence.merge(more->id_by_sequence);
      server->Kill();
    }
    const std::string db = dir + "/events.db";
    const int64_t size = FileSize(db);
    ASSERT_GT(size, 0);
    // Anywhere past the 100-byte header (a zero-length file is its own test).
    const int64_t offset = 100 + static_cast<int64_t>(rng() % static_cast<uint64_t>(size - 100));
    ASSERT_TRUE(TruncateFile(db, offset));

    StartOutcome outcome = StartOnDataDir(dir);
    std::string result;
    if (outcome.server != nullptr) {
      ++recovered;
      ServedCheck served = CheckEverythingServed(outcome.server->grpc_address(), *log);
      EXPECT_TRUE(served.problems.empty()) << served.Summary();
      result = absl::StrCat("started; ", served.Summary());
    } else {
      ++refused;
      const std::string problem = RefusalProblem(outcome, dir);
      EXPECT_TRUE(problem.empty()) << problem;
      result = absl::StrCat("refused: ", RefusalLine(outcome));
    }
    const std::string line =
        absl::StrCat(clean ? "after a clean stop" : "half in the WAL at SIGKILL", ", events.db of ",
                     size, " bytes cut at ", offset, ": ", result);
    std::cout << "torn db round " << round << ": " << line << std::endl;
    ::testing::Test::RecordProperty(absl::StrCat("round_", round), line);
  }
  ::testing::Test::RecordProperty("recovered", absl::StrCat(recovered));
  ::testing::Test::RecordProperty("refused", absl::StrCat(refused));
}

}  // namespace
}  // namespace sidestream::testing
