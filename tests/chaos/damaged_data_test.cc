// Damaged data directories: garbage in the middle of events.db, garbage meta
// rows, a zero-length events.db, a directory where events.db should be, and
// a database from a future schema version. Each must be either recovered
// (then everything served is exactly what was sent) or refused with a clear
// message (non-zero exit, the data directory named). The outcome of each
// case is printed and recorded as a test property.
//
// CI mode: 4 rounds of garbage pages. SIDESTREAM_CHAOS_ROUNDS=N runs N,
// SIDESTREAM_CHAOS_SEED changes where the garbage goes.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/chaos/chaos_util.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

constexpr int kEvents = 300;
constexpr int64_t kPageSize = 4096;  // SQLite's default, which the log keeps

// One populated, cleanly stopped data directory per test binary; each case
// damages a copy of it.
class DamagedDataTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    template_dir_ = new std::string(MakeTempDir("chaos-damaged-template"));
    std::mt19937_64 rng(ChaosSeed() + 2);
    std::unique_ptr<ServerProcess> server;
    absl::StatusOr<PopulatedLog> log = Populate(*template_dir_, kEvents, "evt_dmg", rng, &server);
    if (!log.ok()) {
      setup_error_ = new std::string(log.status().message());
      return;
    }
    const int code = server->Terminate(absl::Seconds(30));
    if (code != 0) setup_error_ = new std::string(absl::StrCat("clean stop exited ", code));
    log_ = new PopulatedLog(*std::move(log));
  }

  void SetUp() override {
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    dir_ = MakeTempDir("chaos-damaged");
    std::error_code ec;
    std::filesystem::copy(*template_dir_, dir_, std::filesystem::copy_options::recursive, ec);
    ASSERT_FALSE(ec) << ec.message();
    db_ = dir_ + "/events.db";
    ASSERT_GT(FileSize(db_), 0);
    ASSERT_EQ(FileSize(db_ + "-wal"), -1) << "the template should be fully checkpointed";
  }

  // Starts the server on the damaged copy and judges the outcome: a clear
  // refusal, or a start after which everything served is intact. Returns a
  // one-line description, also printed and recorded under `name`.
  // `served_out`, when the server started: what it served.
  std::string Judge(const std::string& name, StartOutcome* outcome_out = nullptr,
                    ServedCheck* served_out = nullptr) {
    StartOutcome outcome = StartOnDataDir(dir_);
    std::string result;
    if (outcome.server != nullptr) {
      ServedCheck served = CheckEverythingServed(outcome.server->grpc_address(), *log_);
      if (served_out != nullptr) *served_out = served;
      EXPECT_TRUE(served.problems.empty())
          << name << ": served damaged data silently: " << served.Summary();
      result = absl::StrCat("started; ", served.Summary());
    } else {
      const std::string problem = RefusalProblem(outcome, dir_);
      EXPECT_TRUE(problem.empty()) << name << ": " << problem;
      result = absl::StrCat("refused: ", RefusalLine(outcome));
    }
    std::cout << "damaged data, " << name << ": " << result << std::endl;
    RecordProperty(name, result);
    if (outcome_out != nullptr) *outcome_out = std::move(outcome);
    return result;
  }

  static std::string* template_dir_;
  static PopulatedLog* log_;
  static std::string* setup_error_;
  std::string dir_;
  std::string db_;
};

std::string* DamagedDataTest::template_dir_ = nullptr;
PopulatedLog* DamagedDataTest::log_ = nullptr;
std::string* DamagedDataTest::setup_error_ = nullptr;

TEST_F(DamagedDataTest, GarbagePagesInTheMiddleAreRefusedOrNeverServed) {
  const uint64_t seed = ChaosSeed() + 3;
  std::mt19937_64 rng(seed);
  const int64_t pages = FileSize(db_) / kPageSize;
  ASSERT_GT(pages, 10);
  const int rounds =
      static_cast<int>(std::clamp<int64_t>(EnvInt("SIDESTREAM_CHAOS_ROUNDS", 4), 1, 1000));
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    if (round > 0) SetUp();  // a fresh copy
    std::string damage;
    // Three pages in the middle (never page 1, the header), 64 to 512 bytes
    // of random garbage at a random place in each.
    for (int i = 0; i < 3; ++i) {
      const int64_t page = 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(pages - 2));
      const int64_t length = 64 + static_cast<int64_t>(rng() % 449);
      const int64_t at = static_cast<int64_t>(rng() % static_cast<uint64_t>(kPageSize - length));
      ASSERT_TRUE(OverwriteFile(db_, (page - 1) * kPageSize + at, RandomBytes(length, rng)));
      absl::StrAppend(&damage, i > 0 ? "," : "", "page ", page, "+", at, "x", length);
    }
    Judge(absl::StrCat("garbage_pages_round_", round, " (", damage, ")"));
  }
}

// The smallest silent damage: one digit of one stored event's raw JSON
// changed in place (a bit flip on disk). The page stays well-formed, so only
// a checksum of the stored bytes could notice.
TEST_F(DamagedDataTest, OneFlippedDigitInAStoredEventIsNotServedAsIfIntact) {
  const std::string victim_id = log_->id_by_sequence.at(kEvents / 2);
  const std::string& body = log_->sent.at(victim_id).body;
  std::string file;
  {
    std::ifstream in(db_, std::ios::binary);
    file.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const size_t at = file.find(body);
  ASSERT_NE(at, std::string::npos) << "the raw body is not stored contiguously";
  const size_t created = body.find("\"created\":");
  ASSERT_NE(created, std::string::npos);
  const size_t digit = at + created + 10;
  ASSERT_TRUE(file[digit] >= '0' && file[digit] <= '9');
  const char flipped = file[digit] == '9' ? '8' : static_cast<char>(file[digit] + 1);
  ASSERT_TRUE(OverwriteFile(db_, static_cast<int64_t>(digit), std::string(1, flipped)));
  StartOutcome outcome;
  ServedCheck served;
  Judge(absl::StrCat("flipped_digit_in_", victim_id), &outcome, &served);
  // The page stays well-formed, so the server starts; ListEvents and the
  // stream (both asking for raw JSON) deliver every intact event before the
  // damaged one, then stop there.
  ASSERT_NE(outcome.server, nullptr);
  EXPECT_EQ(served.listed, static_cast<size_t>(kEvents / 2 - 1)) << served.Summary();
  EXPECT_EQ(served.streamed, static_cast<size_t>(kEvents / 2 - 1)) << served.Summary();
}

TEST_F(DamagedDataTest, GarbageMetaRowsAreRefusedClearly) {
  struct Case {
    std::string name;
    std::string sql;
  };
  const std::vector<Case> cases = {
      {"epoch_not_hex", "UPDATE meta SET value = 'garbage' WHERE key = 'epoch'"},
      {"epoch_missing", "DELETE FROM meta WHERE key = 'epoch'"},
      {"last_sequence_text", "UPDATE meta SET value = 'x1' WHERE key = 'last_sequence'"},
      {"last_sequence_below_events", "UPDATE meta SET value = 3 WHERE key = 'last_sequence'"},
      {"event_count_negative", "UPDATE meta SET value = -5 WHERE key = 'event_count'"},
      {"schema_version_blob", "UPDATE meta SET value = x'00ff' WHERE key = 'schema_version'"},
      {"meta_emptied", "DELETE FROM meta"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    if (i > 0) SetUp();
    ASSERT_EQ(RunSql(db_, cases[i].sql), "");
    StartOutcome outcome;
    const std::string result = Judge(absl::StrCat("meta_", cases[i].name), &outcome);
    EXPECT_EQ(outcome.server, nullptr) << cases[i].name << " was not refused: " << result;
  }
}

TEST_F(DamagedDataTest, UnknownExtraMetaRowIsIgnoredAndEverythingIsServed) {
  ASSERT_EQ(RunSql(db_, "INSERT INTO meta(key, value) VALUES ('zz_garbage', x'deadbeef')"), "");
  StartOutcome outcome;
  Judge("meta_unknown_extra_row", &outcome);
  ASSERT_NE(outcome.server, nullptr);
  EXPECT_EQ(outcome.server->epoch(), log_->epoch);
  absl::StatusOr<std::vector<v1::Event>> listed = ListAllEvents(outcome.server->grpc_address());
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), static_cast<size_t>(kEvents));
}

TEST_F(DamagedDataTest, ZeroLengthDatabaseStartsANewLogThatRefusesOldCursors) {
  ASSERT_TRUE(TruncateFile(db_, 0));
  StartOutcome outcome;
  const std::string result = Judge("zero_length_db", &outcome);
  if (outcome.server == nullptr) return;  // refused clearly (checked by Judge)
  // It started: as a new, empty log with a new identity, so a subscriber's
  // cursor from the old log is refused instead of silently meaning
  // something else.
  EXPECT_NE(outcome.server->epoch(), log_->epoch);
  v1::SubscribeRequest request;
  request.set_after_sequence(kEvents / 2);
  request.set_log_epoch(log_->epoch);
  StreamCollector stream(outcome.server->grpc_address(), request);
  ASSERT_TRUE(stream.WaitForEnd(absl::Seconds(30)));
  EXPECT_EQ(stream.status().error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << stream.status().error_message();
  RecordProperty("zero_length_db_old_cursor",
                 absl::StrCat(stream.status().error_code(), " ", stream.status().error_message()));
}

TEST_F(DamagedDataTest, DirectoryInPlaceOfTheDatabaseIsRefusedClearly) {
  std::error_code ec;
  std::filesystem::remove(db_, ec);
  ASSERT_FALSE(ec);
  ASSERT_TRUE(std::filesystem::create_directory(db_, ec)) << ec.message();
  StartOutcome outcome;
  Judge("directory_as_db", &outcome);
  EXPECT_EQ(outcome.server, nullptr);
}

TEST_F(DamagedDataTest, FutureSchemaVersionIsRefusedClearly) {
  ASSERT_EQ(RunSql(db_, "UPDATE meta SET value = 99 WHERE key = 'schema_version'"), "");
  StartOutcome outcome;
  const std::string result = Judge("future_schema_version", &outcome);
  EXPECT_EQ(outcome.server, nullptr);
  EXPECT_NE(result.find("newer"), std::string::npos) << result;
}

}  // namespace
}  // namespace sidestream::testing
