#include "server/log/sqlite_event_log.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <sqlite3.h>

#include "server/common/clock.h"
#include "server/log/deferred_event_log.h"
#include "server/log/event_log_test_util.h"

namespace sidestream {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kDeadline = kLogTestDeadline;

// Runs SQL on a log's database behind its back (to damage or instrument it).
void ExecSql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

// The single integer a query on a log's database returns, -1 on failure.
int64_t QueryInt(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int64_t value = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return value;
}

// Rows of raw_bodies without an event, or events without a raw body.
int64_t UnpairedRawBodies(const std::string& db_path) {
  return QueryInt(db_path,
                  "SELECT (SELECT count(*) FROM raw_bodies WHERE sequence NOT IN "
                  "(SELECT sequence FROM events)) + (SELECT count(*) FROM events WHERE "
                  "sequence NOT IN (SELECT sequence FROM raw_bodies))");
}

// Rewrites a current log in schema 2's layout (the raw body in the event's
// row), keeping the checksums the log wrote.
void ConvertToSchema2(const std::string& db_path) {
  ExecSql(db_path, R"sql(
BEGIN;
CREATE TABLE events_v2(
  sequence INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL, account TEXT NOT NULL,
  livemode INTEGER NOT NULL, receive_time_us INTEGER NOT NULL, event BLOB NOT NULL,
  raw BLOB NOT NULL, crc INTEGER NOT NULL, raw_crc INTEGER NOT NULL);
INSERT INTO events_v2 SELECT e.sequence, e.id, e.type, e.account, e.livemode, e.receive_time_us,
  e.event, r.raw, e.crc, r.raw_crc FROM events AS e JOIN raw_bodies AS r USING (sequence);
DROP TABLE events;
DROP TABLE raw_bodies;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_by_receive_time ON events(receive_time_us);
UPDATE meta SET value = 2 WHERE key = 'schema_version';
COMMIT;
)sql");
}

class SqliteEventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::path(testing::TempDir()) / "event_log_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  std::string Dir(const std::string& name = "log") { return (root_ / name).string(); }
  std::string DbPath(const std::string& name = "log") {
    return (root_ / name / "events.db").string();
  }
  // Size of the log's WAL file, 0 while there is none.
  uintmax_t WalFileSize(const std::string& name = "log") {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(DbPath(name) + "-wal", ec);
    return ec ? 0 : size;
  }

  SqliteEventLogOptions Options(const std::string& name = "log") {
    SqliteEventLogOptions options;
    options.data_dir = Dir(name);
    options.clock = &clock_;
    // Background maintenance stays out of the way unless a test wants it.
    options.maintenance_interval = absl::Hours(1);
    return options;
  }

  std::unique_ptr<SqliteEventLog> OpenOrDie(const SqliteEventLogOptions& options) {
    absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(options);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? *std::move(log) : nullptr;
  }

  // An event of exactly `event_size` + `raw_size` stored bytes.
  NewEvent Event(const std::string& id, size_t event_size = 40, size_t raw_size = 60) {
    NewEvent event;
    event.id = id;
    event.type = "invoice.paid";
    event.account = id.back() % 2 == 0 ? "acct_even" : "";
    event.livemode = id.back() % 2 == 0;
    event.receive_time = clock_.Now();
    event.event_bytes = std::string(event_size, 'e');
    event.event_bytes.replace(0, std::min(id.size(), event_size), id, 0, event_size);
    event.raw_json = std::string(raw_size, 'r');
    return event;
  }

  FakeClock clock_{absl::FromUnixSeconds(1700000000)};
  std::filesystem::path root_;
};

// The sequence contract is in event_log_contract_test.cc; this checks the
// SQLite counters exactly (bytes are StoredBytes, one commit per lone append).
TEST_F(SqliteEventLogTest, InfoCountsStoredBytesAndCommitsExactly) {
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  LogInfo empty = log->Info();
  EXPECT_EQ(empty.first_sequence, 1u);
  EXPECT_EQ(empty.last_sequence, 0u);
  EXPECT_EQ(empty.backend, "sqlite");
  for (uint64_t expected = 1; expected <= 3; ++expected) {
    absl::StatusOr<AppendResult> result =
        AppendAndWait(*log, Event(absl::StrCat("evt_", expected)));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->sequence, expected);
    EXPECT_FALSE(result->duplicate);
  }
  LogInfo info = log->Info();
  EXPECT_EQ(info.first_sequence, 1u);
  EXPECT_EQ(info.last_sequence, 3u);
  EXPECT_EQ(info.event_count, 3u);
  EXPECT_EQ(info.event_bytes, 300u);
  // One append at a time: one commit each.
  EXPECT_EQ(info.commits, 3u);
  EXPECT_EQ(info.committed_appends, 3u);
}

TEST_F(SqliteEventLogTest, GroupCommitBatchesConcurrentAppends) {
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  RecordingListener listener;
  log->SetListener(&listener);
  constexpr int kThreads = 8, kPerThread = 250, kTotal = kThreads * kPerThread;
  auto completions = std::make_shared<Completions>();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int index = t * kPerThread + i;
        log->Append(Event(absl::StrCat("evt_", t, "_", i)), completions->Callback(index));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(completions->WaitFor(kTotal));
  std::vector<uint64_t> sequences;
  for (const auto& result : completions->results()) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_FALSE(result->duplicate);
    sequences.push_back(result->sequence);
  }
  std::sort(sequences.begin(), sequences.end());
  for (int i = 0; i < kTotal; ++i) ASSERT_EQ(sequences[i], static_cast<uint64_t>(i + 1));
  // Each listener call is one committed transaction.
  const std::vector<size_t> spans = listener.span_sizes();
  EXPECT_LT(spans.size(), static_cast<size_t>(kTotal));
  EXPECT_GT(*std::max_element(spans.begin(), spans.end()), 1u);
  EXPECT_LE(*std::max_element(spans.begin(), spans.end()), Options().max_batch);
  // The counters the metrics export agree with what the listener saw.
  EXPECT_EQ(log->Info().commits, spans.size());
  EXPECT_EQ(log->Info().committed_appends, static_cast<uint64_t>(kTotal));
}

// Reopening is in the contract suite (EventLogContractTest, run on SQLite
// too); SQLite's own promise on top of it: the byte count is exact.
TEST_F(SqliteEventLogTest, ReopenKeepsExactByteCount) {
  {
    auto log = OpenOrDie(Options());
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 3; ++i)
      ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
  }
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->Info().event_count, 3u);
  EXPECT_EQ(log->Info().event_bytes, 300u);
}

// A row changed behind the log's back (SQLite's page checks do not see it)
// is never served: its read fails as DATA_LOSS naming the sequence; the
// rows around it still read, and a damaged raw body only fails the reads
// that ask for it.
TEST_F(SqliteEventLogTest, DamagedRowIsDataLossNamingItsSequence) {
  {
    auto log = OpenOrDie(Options());
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 4; ++i)
      ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
  }
  ExecSql(DbPath(), "UPDATE events SET event = CAST('tampered' AS BLOB) WHERE sequence = 2");
  ExecSql(DbPath(), "UPDATE raw_bodies SET raw = CAST('{}' AS BLOB) WHERE sequence = 4");
  ExecSql(DbPath(), "DELETE FROM raw_bodies WHERE sequence = 3");
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);

  // The intact record before the damaged one is still read; the read that
  // starts at the damaged one fails.
  ReadOptions read;
  absl::StatusOr<std::vector<EventRecordPtr>> from_start = log->ReadAfter(0, read);
  ASSERT_TRUE(from_start.ok()) << from_start.status();
  EXPECT_THAT(Sequences(*from_start), ElementsAre(1));
  absl::StatusOr<std::vector<EventRecordPtr>> at_damage = log->ReadAfter(1, read);
  EXPECT_EQ(at_damage.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(at_damage.status().message(), HasSubstr("sequence 2 "));
  absl::StatusOr<std::vector<EventRecordPtr>> after = log->ReadAfter(2, read);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(Sequences(*after), ElementsAre(3, 4));  // raw bodies not read
  EXPECT_EQ(log->Get("evt_2", false).status().code(), absl::StatusCode::kDataLoss);

  // A missing raw body is damage too, not an event without its body.
  read.include_raw_json = true;
  absl::StatusOr<std::vector<EventRecordPtr>> with_raw = log->ReadAfter(2, read);
  EXPECT_EQ(with_raw.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(with_raw.status().message(), HasSubstr("sequence 3 "));
  with_raw = log->ReadAfter(0, read);  // up to the damaged event only
  ASSERT_TRUE(with_raw.ok()) << with_raw.status();
  EXPECT_THAT(Sequences(*with_raw), ElementsAre(1));
  with_raw = log->ReadAfter(3, read);
  EXPECT_EQ(with_raw.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(with_raw.status().message(), HasSubstr("sequence 4 "));
  EXPECT_TRUE(log->Get("evt_3", false).ok());
  EXPECT_EQ(log->Get("evt_3", true).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(log->Get("evt_4", false).ok());
  EXPECT_EQ(log->Get("evt_4", true).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SqliteEventLogTest, RetentionTrimsEventsOlderThanRetention) {
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  const absl::Time t0 = clock_.Now();
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
    clock_.Advance(absl::Hours(1));
  }
  absl::StatusOr<uint64_t> trimmed = log->TrimNow();
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 0u);
  clock_.Set(t0 + Options().retention + absl::Minutes(90));  // evt_1 and evt_2 are too old
  trimmed = log->TrimNow();
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 2u);
  LogInfo info = log->Info();
  EXPECT_EQ(info.first_sequence, 3u);
  EXPECT_EQ(info.last_sequence, 3u);
  EXPECT_EQ(info.event_count, 1u);
  EXPECT_EQ(info.event_bytes, 100u);
  EXPECT_EQ(info.trimmed_events, 2u);
  absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(0, ReadOptions());
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Sequences(*page), ElementsAre(3));
  EXPECT_EQ(log->Get("evt_1", false).status().code(), absl::StatusCode::kNotFound);
  log.reset();
  EXPECT_EQ(UnpairedRawBodies(DbPath()), 0);  // the raw bodies went with their events
}

TEST_F(SqliteEventLogTest, RetentionTrimsOldestEventsBeyondMaxBytes) {
  SqliteEventLogOptions options = Options();
  options.max_bytes = 350;
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  for (int i = 1; i <= 10; ++i)
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
  EXPECT_EQ(log->Info().event_bytes, 1000u);
  absl::StatusOr<uint64_t> trimmed = log->TrimNow();
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 7u);
  LogInfo info = log->Info();
  EXPECT_EQ(info.first_sequence, 8u);
  EXPECT_EQ(info.event_count, 3u);
  EXPECT_EQ(info.event_bytes, 300u);
  absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(0, ReadOptions());
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Sequences(*page), ElementsAre(8, 9, 10));
  log.reset();
  EXPECT_EQ(UnpairedRawBodies(DbPath()), 0);
}

// Under a sustained burst the passive checkpoints never catch up, so the WAL
// would not restart by itself; the writer restarts it once it holds
// wal_restart_bytes. Here the checkpointer is never even asked (the WAL stays
// under its 1 MiB threshold), so only the writer's restart keeps the file
// this small, while 1,000 commits put several MB through it.
TEST_F(SqliteEventLogTest, TheWriterRestartsTheWalSoItsFileStaysNearTheRestartSize) {
  SqliteEventLogOptions options = Options();
  options.wal_restart_bytes = 256 << 10;
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  uintmax_t largest = 0;
  constexpr int kEvents = 1000;
  for (int i = 1; i <= kEvents; ++i) {
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i), 2000, 2000)).ok());
    largest = std::max(largest, WalFileSize());
  }
  // The restart size, plus the commit that crossed it (about 20 KB here)
  // and the frame headers; never the megabytes a WAL without restarts
  // reaches (about 36 MB for these commits).
  EXPECT_GT(largest, 0u);  // the WAL file was there to measure
  EXPECT_LE(largest, (256u << 10) + (128u << 10));
  ReadOptions read;
  read.max_events = kEvents;
  absl::StatusOr<std::vector<EventRecordPtr>> all = log->ReadAfter(0, read);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), static_cast<size_t>(kEvents));
  EXPECT_EQ(all->back()->sequence, static_cast<uint64_t>(kEvents));
  EXPECT_GE(log->Info().wal_restarts, 100u);  // ~36 MB of frames, one per 256 KiB
  log.reset();
  auto reopened = OpenOrDie(options);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->Info().event_count, static_cast<uint64_t>(kEvents));
}

// The checkpointer copies the WAL once per 1 MiB of new frames, not after
// every commit: these commits write about 36 KB of frames each, so 600 of
// them call for about 21 passes (a pass per commit, once the WAL held 1 MiB,
// ran the checkpointer back to back at a steady rate).
TEST_F(SqliteEventLogTest, TheCheckpointerCopiesOncePerMebibyteOfNewWalFrames) {
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  constexpr int kEvents = 600;
  for (int i = 1; i <= kEvents; ++i) {
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i), 2000, 2000)).ok());
  }
  const LogInfo info = log->Info();
  EXPECT_EQ(info.commits, static_cast<uint64_t>(kEvents));
  EXPECT_GE(info.wal_checkpoints, 5u);  // fewer only if requests merged (a slow pass)
  EXPECT_LE(info.wal_checkpoints, 30u);
  EXPECT_EQ(info.wal_restarts, 0u);  // 21 MB stays under the 64 MiB restart size
}

// A reader on an old snapshot keeps the WAL from restarting: commits go on
// (the restart gives up after a short wait and is retried later, less
// often), and once the reader is gone a retry restarts the WAL and cuts its
// file back to 1.25 times the restart size.
TEST_F(SqliteEventLogTest, AReaderOnAnOldSnapshotDelaysTheWalRestartButNotTheCommits) {
  SqliteEventLogOptions options = Options();
  options.wal_restart_bytes = 256 << 10;
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_first", 2000, 2000)).ok());
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(DbPath().c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT COUNT(*) FROM events;", nullptr, nullptr, nullptr),
            SQLITE_OK);
  int next = 0;
  for (; next < 300; ++next) {
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", next), 2000, 2000)).ok());
  }
  // Pinned by the reader: far past the restart size.
  EXPECT_GT(WalFileSize(), 1u << 20);
  ASSERT_EQ(sqlite3_exec(reader, "COMMIT;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(reader);
  // The retry comes within a few seconds (0.25 s, doubling while the reader
  // stayed); commits until then keep going.
  const uintmax_t bound = (256u << 10) / 4 * 5 + (128u << 10);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (WalFileSize() > bound && absl::Now() < deadline) {
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", next++), 2000, 2000)).ok());
  }
  EXPECT_LE(WalFileSize(), bound);
  EXPECT_EQ(log->Info().event_count, static_cast<uint64_t>(next) + 1);
}

TEST_F(SqliteEventLogTest, BackgroundMaintenanceAppliesRetentionWithoutTrimNow) {
  SqliteEventLogOptions options = Options();
  options.max_bytes = 150;
  options.maintenance_interval = absl::Milliseconds(20);
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  for (int i = 1; i <= 4; ++i)
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
  // Waits on the condition with a deadline; the log gives no other signal.
  const absl::Time deadline = absl::Now() + kDeadline;
  while (log->Info().first_sequence != 4 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(log->Info().first_sequence, 4u);
  EXPECT_EQ(log->Info().event_count, 1u);
}

TEST_F(SqliteEventLogTest, SequencesAreNeverReusedAfterEverythingIsTrimmed) {
  std::string epoch;
  {
    auto log = OpenOrDie(Options());
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 5; ++i)
      ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
    epoch = log->Info().epoch;
    clock_.Advance(Options().retention + absl::Hours(1));
    absl::StatusOr<uint64_t> trimmed = log->TrimNow();
    ASSERT_TRUE(trimmed.ok()) << trimmed.status();
    EXPECT_EQ(*trimmed, 5u);
    LogInfo info = log->Info();
    EXPECT_EQ(info.first_sequence, 6u);
    EXPECT_EQ(info.last_sequence, 5u);
    EXPECT_EQ(info.event_count, 0u);
    EXPECT_EQ(info.event_bytes, 0u);
  }
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  LogInfo info = log->Info();
  EXPECT_EQ(info.epoch, epoch);
  EXPECT_EQ(info.first_sequence, 6u);
  EXPECT_EQ(info.last_sequence, 5u);
  absl::StatusOr<AppendResult> result = AppendAndWait(*log, Event("evt_new"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sequence, 6u);
  EXPECT_EQ(log->Info().first_sequence, 6u);
}

TEST_F(SqliteEventLogTest, DedupOutlivesSizeTrimmingWithinTheWindow) {
  SqliteEventLogOptions options = Options();
  options.max_bytes = 250;
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
  absl::StatusOr<uint64_t> trimmed = log->TrimNow();
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 3u);
  EXPECT_EQ(log->Get("evt_1", false).status().code(), absl::StatusCode::kNotFound);
  clock_.Advance(options.dedup_window - absl::Hours(1));
  ASSERT_TRUE(log->TrimNow().ok());
  absl::StatusOr<AppendResult> retry = AppendAndWait(*log, Event("evt_1"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->sequence, 1u);
  EXPECT_EQ(log->Info().last_sequence, 5u);
}

TEST_F(SqliteEventLogTest, DedupForgetsIdsAfterTheWindow) {
  SqliteEventLogOptions options = Options();
  options.retention = absl::Hours(1);
  options.allow_short_retention = true;
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_1")).ok());
  // The event is past retention, its id is still in the dedup window.
  clock_.Advance(absl::Hours(2));
  absl::StatusOr<uint64_t> trimmed = log->TrimNow();
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 1u);
  absl::StatusOr<AppendResult> retry = AppendAndWait(*log, Event("evt_1"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->sequence, 1u);
  // Past the window the id is forgotten and stored again, as a new event.
  clock_.Advance(options.dedup_window);
  ASSERT_TRUE(log->TrimNow().ok());
  absl::StatusOr<AppendResult> late = AppendAndWait(*log, Event("evt_1"));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_FALSE(late->duplicate);
  EXPECT_EQ(late->sequence, 2u);
}

TEST_F(SqliteEventLogTest, FailedBatchIsUnavailableAndLeavesNoTrace) {
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_1")).ok());
  // A real SQLite error inside the writer's transaction.
  ExecSql(DbPath(),
          "CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.id = 'evt_bad' "
          "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
  absl::StatusOr<AppendResult> failed = AppendAndWait(*log, Event("evt_bad"));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.status().message(), HasSubstr("injected failure"));
  EXPECT_EQ(log->Info().last_sequence, 1u);
  // The writer keeps going, the failed append consumed no sequence and left
  // no dedup row.
  absl::StatusOr<AppendResult> next = AppendAndWait(*log, Event("evt_2"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->sequence, 2u);
  ExecSql(DbPath(), "DROP TRIGGER fail;");
  absl::StatusOr<AppendResult> retried = AppendAndWait(*log, Event("evt_bad"));
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_FALSE(retried->duplicate);
  EXPECT_EQ(retried->sequence, 3u);
}

TEST_F(SqliteEventLogTest, WritableTurnsFalseOnAFailedCommitAndAProbeRestoresIt) {
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  EXPECT_TRUE(log->Info().writable);
  // Appends fail (as on a full disk); the log's own probe writes to `meta`,
  // which still works, so the log finds out by itself that storage is back.
  ExecSql(DbPath(),
          "CREATE TRIGGER fail BEFORE INSERT ON events "
          "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;");
  EXPECT_FALSE(AppendAndWait(*log, Event("evt_1")).ok());
  const LogInfo failed = log->Info();
  EXPECT_FALSE(failed.writable);
  EXPECT_THAT(failed.last_error, HasSubstr("injected failure"));
  // Polling the condition with a deadline: the probe runs about every second.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!log->Info().writable && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(log->Info().writable);
  ExecSql(DbPath(), "DROP TRIGGER fail;");
  EXPECT_TRUE(AppendAndWait(*log, Event("evt_1")).ok());
  EXPECT_TRUE(log->Info().writable);
}

TEST_F(SqliteEventLogTest, OpenRejectsInvalidOptions) {
  SqliteEventLogOptions options = Options();
  options.retention = absl::Hours(24);
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(options);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(log.status().message(), HasSubstr("dedup window"));
  options.allow_short_retention = true;
  EXPECT_TRUE(SqliteEventLog::Open(options).ok());

  options = Options();
  options.retention = absl::ZeroDuration();
  options.allow_short_retention = true;
  EXPECT_EQ(SqliteEventLog::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = Options();
  options.max_batch = 0;
  EXPECT_EQ(SqliteEventLog::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = Options();
  options.wal_restart_bytes = 4096;
  log = SqliteEventLog::Open(options);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(log.status().message(), HasSubstr("wal_restart_bytes must be at least 65536"));
}

TEST_F(SqliteEventLogTest, OpenFailsClearlyWhenTheDirectoryCannotBeCreated) {
  std::ofstream(root_ / "file") << "a regular file";
  SqliteEventLogOptions options = Options();
  options.data_dir = (root_ / "file" / "log").string();
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(options);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(log.status().message(), HasSubstr(options.data_dir));
  EXPECT_THAT(log.status().message(), HasSubstr("writable"));
}

TEST_F(SqliteEventLogTest, OpenRefusesAFileThatIsNotADatabase) {
  std::filesystem::create_directories(Dir());
  const std::string garbage(8192, '\x5a');
  std::ofstream(DbPath(), std::ios::binary) << garbage;
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(Options());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(), HasSubstr("events.db"));
  // Nothing was written over it.
  std::ifstream in(DbPath(), std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, garbage);
}

TEST_F(SqliteEventLogTest, OpenRefusesADatabaseWithDamagedPages) {
  {
    auto log = OpenOrDie(Options());
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 50; ++i) {
      ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i), 1000, 2000)).ok());
    }
  }
  // Overwrites the last pages (events and index b-tree pages) with 0xff.
  const uintmax_t size = std::filesystem::file_size(DbPath());
  ASSERT_GT(size, 3u * 4096u);
  {
    std::fstream file(DbPath(), std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(static_cast<std::streamoff>(size - 3 * 4096));
    const std::string damage(3 * 4096, '\xff');
    file.write(damage.data(), static_cast<std::streamsize>(damage.size()));
  }
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(Options());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
  EXPECT_THAT(log.status().message(), HasSubstr("events.db"));
}

// Schema 2 kept the raw body in the event's row. A log in that layout (made
// here from a current one, with the checksums the log wrote) is migrated at
// open: every event and body reads intact, counters and sizes are kept, and
// the log goes on appending and trimming.
TEST_F(SqliteEventLogTest, MigratesASchema2LogKeepingEveryEventAndBody) {
  // A body naming its event, 60 bytes like Event()'s.
  auto body = [](const std::string& id) {
    std::string raw = absl::StrCat("{\"id\":\"", id, "\"}");
    raw.resize(60, ' ');
    return raw;
  };
  SqliteEventLogOptions options = Options();
  {
    auto log = OpenOrDie(options);
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 5; ++i) {
      NewEvent event = Event(absl::StrCat("evt_", i));
      event.raw_json = body(event.id);
      ASSERT_TRUE(AppendAndWait(*log, std::move(event)).ok());
    }
  }
  ConvertToSchema2(DbPath());
  ASSERT_EQ(QueryInt(DbPath(),
                     "SELECT count(*) FROM pragma_table_info('events') "
                     "WHERE name = 'raw'"),
            1);

  options.max_bytes = 5 * 100;  // the sizes must survive: one more event trims one
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  const LogInfo info = log->Info();
  EXPECT_EQ(info.first_sequence, 1u);
  EXPECT_EQ(info.last_sequence, 5u);
  EXPECT_EQ(info.event_count, 5u);
  EXPECT_EQ(info.event_bytes, 500u);
  ReadOptions read;
  read.include_raw_json = true;
  absl::StatusOr<std::vector<EventRecordPtr>> all = log->ReadAfter(0, read);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_THAT(Sequences(*all), ElementsAre(1, 2, 3, 4, 5));
  for (const EventRecordPtr& record : *all) {
    EXPECT_EQ(record->raw_json, body(record->id));
    EXPECT_EQ(record->event_bytes.substr(0, record->id.size()), record->id);
  }
  // Dedup still knows the migrated ids; a new event takes the next sequence.
  absl::StatusOr<AppendResult> again = AppendAndWait(*log, Event("evt_3"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->sequence, 3u);
  absl::StatusOr<AppendResult> next = AppendAndWait(*log, Event("evt_6"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->sequence, 6u);
  absl::StatusOr<uint64_t> trimmed = log->TrimNow();
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 1u);
  EXPECT_EQ(log->Info().first_sequence, 2u);
  log.reset();
  EXPECT_EQ(QueryInt(DbPath(), "SELECT value FROM meta WHERE key = 'schema_version'"), 3);
  EXPECT_EQ(QueryInt(DbPath(),
                     "SELECT count(*) FROM pragma_table_info('events') "
                     "WHERE name = 'raw'"),
            0);
  EXPECT_EQ(UnpairedRawBodies(DbPath()), 0);
  EXPECT_EQ(QueryInt(DbPath(), "SELECT sum(stored_bytes) FROM events"),
            static_cast<int64_t>(QueryInt(DbPath(),
                                          "SELECT value FROM meta WHERE key = "
                                          "'total_bytes'")));
}

// A migration that fails leaves the schema 2 log as it was, and the next
// start migrates it.
TEST_F(SqliteEventLogTest, AFailedMigrationLeavesTheSchema2LogUnchanged) {
  {
    auto log = OpenOrDie(Options());
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 3; ++i)
      ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
  }
  ConvertToSchema2(DbPath());
  // The migration's first step cannot create its table.
  ExecSql(DbPath(), "CREATE TABLE raw_bodies(x)");
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> failed = SqliteEventLog::Open(Options());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.status().message(),
              HasSubstr(absl::StrCat("cannot migrate the event log \"", DbPath(), "\"")));
  EXPECT_THAT(failed.status().message(), HasSubstr("it is unchanged"));
  EXPECT_EQ(QueryInt(DbPath(), "SELECT value FROM meta WHERE key = 'schema_version'"), 2);
  EXPECT_EQ(QueryInt(DbPath(), "SELECT count(raw) FROM events"), 3);

  ExecSql(DbPath(), "DROP TABLE raw_bodies");
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  ReadOptions read;
  read.include_raw_json = true;
  absl::StatusOr<std::vector<EventRecordPtr>> all = log->ReadAfter(0, read);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(Sequences(*all), ElementsAre(1, 2, 3));
}

TEST_F(SqliteEventLogTest, OpenRefusesASchemaFromTheFuture) {
  { ASSERT_NE(OpenOrDie(Options()), nullptr); }
  ExecSql(DbPath(), "UPDATE meta SET value = 99 WHERE key = 'schema_version';");
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(Options());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(log.status().message(), HasSubstr("schema version 99"));
}

TEST_F(SqliteEventLogTest, OneDataDirHoldsOneOpenLog) {
  auto first = OpenOrDie(Options());
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> second = SqliteEventLog::Open(Options());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("already open"));
  first.reset();
  EXPECT_TRUE(SqliteEventLog::Open(Options()).ok());
}

}  // namespace
}  // namespace sidestream

namespace sidestream {
namespace {

// DeferredEventLog (the stand-in while a log cannot open), with a SQLite log
// installed later.
class DeferredEventLogTest : public SqliteEventLogTest {};

TEST_F(DeferredEventLogTest, RefusesUntilInstalledThenForwardsEverything) {
  DeferredEventLog deferred("jetstream", "cannot connect to NATS at nats://127.0.0.1:1");
  RecordingListener listener;
  deferred.SetListener(&listener);
  LogInfo waiting = deferred.Info();
  EXPECT_FALSE(waiting.writable);
  EXPECT_TRUE(waiting.epoch.empty());
  EXPECT_EQ(waiting.backend, "jetstream");
  EXPECT_EQ(waiting.last_error, "cannot connect to NATS at nats://127.0.0.1:1");
  absl::StatusOr<AppendResult> refused = AppendAndWait(deferred, Event("evt_early"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("not open yet"));
  EXPECT_EQ(deferred.ReadAfter(0, ReadOptions()).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(deferred.Get("evt_early", false).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(deferred.CursorForTime(absl::Now()).status().code(), absl::StatusCode::kUnavailable);
  deferred.SetWaiting("still down");
  EXPECT_EQ(deferred.Info().last_error, "still down");

  std::unique_ptr<SqliteEventLog> log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  const std::string epoch = log->Info().epoch;
  deferred.Install(std::move(log));
  EXPECT_TRUE(deferred.installed());
  EXPECT_EQ(deferred.Info().epoch, epoch);
  EXPECT_TRUE(deferred.Info().writable);
  absl::StatusOr<AppendResult> stored = AppendAndWait(deferred, Event("evt_early"));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->sequence, 1u);
  // The listener set before Install receives what the installed log stores.
  ASSERT_TRUE(listener.WaitForId("evt_early"));
  EXPECT_TRUE(deferred.Get("evt_early", false).ok());
}

}  // namespace
}  // namespace sidestream
