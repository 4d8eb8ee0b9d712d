// The EventLog contract: what every backend guarantees (event_log.h), run
// unchanged against the embedded SQLite log and the JetStream log (a real
// single-node nats-server with JetStream on an ephemeral loopback port and a
// temporary store directory). Backend-specific behaviour (SQLite retention
// with a fake clock, file damage; JetStream subjects, outages) is tested
// beside each backend.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "server/log/event_log_test_util.h"
#include "server/log/jetstream_event_log.h"
#include "server/log/sqlite_event_log.h"
#include "tests/testing/nats_process.h"

namespace sidestream {
namespace {

using ::testing::ElementsAre;

std::string TempDir(const std::string& prefix) {
  std::string pattern =
      (std::filesystem::path(::testing::TempDir()) / (prefix + "_XXXXXX")).string();
  return mkdtemp(pattern.data()) != nullptr ? pattern : "";
}

// Opens logs of one backend by name: reopening a name opens the same log,
// different names are different logs.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual absl::StatusOr<std::unique_ptr<EventLog>> Open(const std::string& name) = 0;
};

class SqliteBackend : public Backend {
 public:
  SqliteBackend() : root_(TempDir("contract_sqlite")) {}
  ~SqliteBackend() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  absl::StatusOr<std::unique_ptr<EventLog>> Open(const std::string& name) override {
    SqliteEventLogOptions options;
    options.data_dir = root_ + "/" + name;
    absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(options);
    if (!log.ok()) return log.status();
    return std::unique_ptr<EventLog>(*std::move(log));
  }

 private:
  std::string root_;
};

// One nats-server for the whole suite (started on first use); every test
// gets streams of its own.
testing::NatsProcess* SharedNats() {
  // Destroyed (the server killed) when the test program exits.
  static std::unique_ptr<testing::NatsProcess> nats = [] {
    testing::NatsNodeOptions options;
    options.store_dir = TempDir("contract_nats");
    absl::StatusOr<std::unique_ptr<testing::NatsProcess>> started =
        testing::NatsProcess::Start(options);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? *std::move(started) : nullptr;
  }();
  return nats.get();
}

class JetStreamBackend : public Backend {
 public:
  JetStreamBackend() : test_(next_test_.fetch_add(1)) {}
  absl::StatusOr<std::unique_ptr<EventLog>> Open(const std::string& name) override {
    testing::NatsProcess* nats = SharedNats();
    if (nats == nullptr) return absl::UnavailableError("nats-server did not start");
    JetStreamEventLogOptions options;
    options.servers = {nats->url()};
    options.stream = absl::StrCat("CONTRACT_", test_, "_", name);
    options.subject_prefix = absl::StrCat("contract.t", test_, ".", name);
    absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(options);
    if (!log.ok()) return log.status();
    return std::unique_ptr<EventLog>(*std::move(log));
  }

 private:
  static inline std::atomic<int> next_test_{0};
  const int test_;
};

class EventLogContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      backend_ = std::make_unique<SqliteBackend>();
    } else {
      backend_ = std::make_unique<JetStreamBackend>();
    }
  }

  std::unique_ptr<EventLog> OpenOrDie(const std::string& name = "log") {
    absl::StatusOr<std::unique_ptr<EventLog>> log = backend_->Open(name);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? *std::move(log) : nullptr;
  }

  NewEvent Event(const std::string& id, size_t event_size = 40, size_t raw_size = 60) {
    return TestEvent(id, t0_, event_size, raw_size);
  }

  const absl::Time t0_ = absl::FromUnixSeconds(1700000000);
  std::unique_ptr<Backend> backend_;
};

TEST_P(EventLogContractTest, AppendAssignsDenseSequencesFromOne) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  LogInfo empty = log->Info();
  EXPECT_EQ(empty.first_sequence, 1u);
  EXPECT_EQ(empty.last_sequence, 0u);
  EXPECT_EQ(empty.event_count, 0u);
  EXPECT_EQ(empty.backend, GetParam());
  EXPECT_TRUE(empty.writable);
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
  EXPECT_EQ(info.committed_appends, 3u);
}

TEST_P(EventLogContractTest, DuplicateGetsFirstSequenceAndStoresNothing) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_a")).ok());
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_b")).ok());
  NewEvent again = Event("evt_a");
  again.event_bytes = "different payload";
  absl::StatusOr<AppendResult> result = AppendAndWait(*log, std::move(again));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sequence, 1u);
  EXPECT_TRUE(result->duplicate);
  EXPECT_EQ(log->Info().last_sequence, 2u);
  EXPECT_EQ(log->Info().event_count, 2u);
  absl::StatusOr<EventRecordPtr> stored = log->Get("evt_a", false);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)->event_bytes, Event("evt_a").event_bytes);
}

TEST_P(EventLogContractTest, ConcurrentAppendsOfOneIdStoreItOnce) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  RecordingListener listener;
  log->SetListener(&listener);
  constexpr int kThreads = 6, kPerThread = 40;
  auto completions = std::make_shared<Completions>();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        log->Append(Event("evt_same"), completions->Callback(t * kPerThread + i));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(completions->WaitFor(kThreads * kPerThread));
  int stored = 0;
  for (const auto& result : completions->results()) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->sequence, 1u);
    if (!result->duplicate) ++stored;
  }
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(log->Info().event_count, 1u);
  // The listener is in order: once a later event arrived, every earlier
  // announcement has too.
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_later")).ok());
  ASSERT_TRUE(listener.WaitForId("evt_later"));
  EXPECT_EQ(listener.records().size(), 2u);
}

TEST_P(EventLogContractTest, ListenerReceivesEveryNewRecordOnceInOrder) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  RecordingListener listener;
  log->SetListener(&listener);
  auto completions = std::make_shared<Completions>();
  for (int i = 0; i < 100; ++i)
    log->Append(Event(absl::StrCat("evt_", i)), completions->Callback(i));
  log->Append(Event("evt_5"), completions->Callback(100));  // a duplicate is not announced
  ASSERT_TRUE(completions->WaitFor(101));
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_end")).ok());
  ASSERT_TRUE(listener.WaitForId("evt_end"));
  const std::vector<EventRecordPtr> records = listener.records();
  ASSERT_EQ(records.size(), 101u);
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(records[i]->sequence, i + 1);
    EXPECT_EQ(records[i]->id, absl::StrCat("evt_", i));
    EXPECT_EQ(records[i]->raw_json, Event("x").raw_json);
  }
  EXPECT_EQ(records[100]->sequence, 101u);
}

TEST_P(EventLogContractTest, ReadersSeeADensePrefixWhileTheWriterAppends) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  constexpr int kTotal = 1000;
  auto completions = std::make_shared<Completions>();
  std::thread writer([&] {
    for (int i = 0; i < kTotal; ++i) {
      log->Append(Event(absl::StrCat("evt_", i)), completions->Callback(i));
    }
  });
  // Follows the log as a subscriber would, until it has read everything.
  ReadOptions options;
  options.max_events = 64;
  uint64_t cursor = 0;
  const absl::Time deadline = absl::Now() + kLogTestDeadline;
  while (cursor < kTotal && absl::Now() < deadline) {
    absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(cursor, options);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const EventRecordPtr& record : *page) {
      ASSERT_EQ(record->sequence, cursor + 1);
      ASSERT_EQ(record->id, absl::StrCat("evt_", cursor));
      cursor = record->sequence;
    }
  }
  writer.join();
  EXPECT_EQ(cursor, static_cast<uint64_t>(kTotal));
  EXPECT_TRUE(completions->WaitFor(kTotal));
}

TEST_P(EventLogContractTest, ReadAfterPagesByMaxEvents) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  for (int i = 1; i <= 7; ++i)
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
  ReadOptions options;
  options.max_events = 3;
  std::vector<std::vector<uint64_t>> pages;
  uint64_t cursor = 0;
  for (;;) {
    absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(cursor, options);
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->empty()) break;
    pages.push_back(Sequences(*page));
    cursor = page->back()->sequence;
  }
  EXPECT_THAT(pages, ElementsAre(ElementsAre(1, 2, 3), ElementsAre(4, 5, 6), ElementsAre(7)));
  options.max_events = 0;
  EXPECT_EQ(log->ReadAfter(0, options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(EventLogContractTest, ReadAfterStopsAfterTheRecordThatCrossesMaxBytes) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i), 100, 400)).ok());
  }
  ReadOptions options;
  options.max_bytes = 250;  // without raw each record counts 100 bytes
  absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(0, options);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Sequences(*page), ElementsAre(1, 2, 3));
  options.include_raw_json = true;  // now 500 bytes each: the first crosses
  page = log->ReadAfter(1, options);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Sequences(*page), ElementsAre(2));
  options.max_bytes = 900;
  page = log->ReadAfter(1, options);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Sequences(*page), ElementsAre(2, 3));
}

TEST_P(EventLogContractTest, ReadAfterLoadsRawJsonOnlyWhenAsked) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  NewEvent event = Event("evt_2");
  event.receive_time = absl::FromUnixMicros(1700000000123456);
  const NewEvent expected = event;
  ASSERT_TRUE(AppendAndWait(*log, std::move(event)).ok());
  ReadOptions options;
  absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(0, options);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 1u);
  const EventRecord& lean = *page->front();
  EXPECT_EQ(lean.id, expected.id);
  EXPECT_EQ(lean.type, expected.type);
  EXPECT_EQ(lean.account, "acct_even");
  EXPECT_TRUE(lean.livemode);
  EXPECT_EQ(lean.receive_time, expected.receive_time);
  EXPECT_EQ(lean.event_bytes, expected.event_bytes);
  EXPECT_EQ(lean.raw_json, "");
  options.include_raw_json = true;
  page = log->ReadAfter(0, options);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ(page->front()->raw_json, expected.raw_json);
  EXPECT_EQ(page->front()->event_bytes, expected.event_bytes);
  page = log->ReadAfter(1, options);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->empty());
}

TEST_P(EventLogContractTest, GetFindsStoredEventsById) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_1")).ok());
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_2")).ok());
  absl::StatusOr<EventRecordPtr> lean = log->Get("evt_2", false);
  ASSERT_TRUE(lean.ok()) << lean.status();
  EXPECT_EQ((*lean)->sequence, 2u);
  EXPECT_EQ((*lean)->event_bytes, Event("evt_2").event_bytes);
  EXPECT_EQ((*lean)->raw_json, "");
  absl::StatusOr<EventRecordPtr> full = log->Get("evt_2", true);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ((*full)->raw_json, Event("evt_2").raw_json);
  EXPECT_EQ(log->Get("evt_unknown", true).status().code(), absl::StatusCode::kNotFound);
  // A prefix of a stored id is another id.
  EXPECT_EQ(log->Get("evt_", true).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(EventLogContractTest, CursorForTimeReturnsTheSequenceBeforeTheFirstEventAtOrAfter) {
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  absl::StatusOr<uint64_t> cursor = log->CursorForTime(t0_);
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  EXPECT_EQ(*cursor, 0u);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        AppendAndWait(*log, TestEvent(absl::StrCat("evt_", i), t0_ + absl::Seconds(10 * (i - 1))))
            .ok());
  }
  // Events received at t0, t0+10s, t0+20s.
  EXPECT_EQ(*log->CursorForTime(t0_ - absl::Hours(1)), 0u);
  EXPECT_EQ(*log->CursorForTime(t0_), 0u);
  EXPECT_EQ(*log->CursorForTime(t0_ + absl::Seconds(5)), 1u);
  EXPECT_EQ(*log->CursorForTime(t0_ + absl::Seconds(10)), 1u);
  EXPECT_EQ(*log->CursorForTime(t0_ + absl::Seconds(11)), 2u);
  EXPECT_EQ(*log->CursorForTime(t0_ + absl::Seconds(25)), 3u);
}

TEST_P(EventLogContractTest, ReopenKeepsSequencesEpochAndData) {
  std::string epoch;
  {
    auto log = OpenOrDie();
    ASSERT_NE(log, nullptr);
    for (int i = 1; i <= 3; ++i)
      ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i))).ok());
    epoch = log->Info().epoch;
    EXPECT_EQ(epoch.size(), 32u);
    EXPECT_EQ(epoch.find_first_not_of("0123456789abcdef"), std::string::npos);
  }
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  LogInfo info = log->Info();
  EXPECT_EQ(info.epoch, epoch);
  EXPECT_EQ(info.first_sequence, 1u);
  EXPECT_EQ(info.last_sequence, 3u);
  EXPECT_EQ(info.event_count, 3u);
  // At least the records' bytes (a backend may count its framing too).
  EXPECT_GE(info.event_bytes, 300u);
  ReadOptions options;
  options.include_raw_json = true;
  absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(0, options);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ((*page)[2]->id, "evt_3");
  EXPECT_EQ((*page)[2]->raw_json, Event("evt_3").raw_json);
  absl::StatusOr<AppendResult> duplicate = AppendAndWait(*log, Event("evt_2"));
  ASSERT_TRUE(duplicate.ok());
  EXPECT_EQ(duplicate->sequence, 2u);
  EXPECT_TRUE(duplicate->duplicate);
  absl::StatusOr<AppendResult> next = AppendAndWait(*log, Event("evt_4"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->sequence, 4u);
}

TEST_P(EventLogContractTest, EpochDiffersBetweenLogs) {
  auto first = OpenOrDie("one");
  auto second = OpenOrDie("two");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_NE(first->Info().epoch, second->Info().epoch);
}

TEST_P(EventLogContractTest, AllAppendsQueuedBeforeDestructionComplete) {
  constexpr int kAppends = 500;
  auto completions = std::make_shared<Completions>();
  {
    auto log = OpenOrDie();
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < kAppends; ++i) {
      log->Append(Event(absl::StrCat("evt_", i)), completions->Callback(i));
    }
  }
  // The destructor returned: every callback already ran.
  ASSERT_EQ(completions->done(), static_cast<size_t>(kAppends));
  for (const auto& result : completions->results()) EXPECT_TRUE(result.ok()) << result.status();
  auto log = OpenOrDie();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->Info().last_sequence, static_cast<uint64_t>(kAppends));
  EXPECT_EQ(log->Info().event_count, static_cast<uint64_t>(kAppends));
}

INSTANTIATE_TEST_SUITE_P(Backends, EventLogContractTest, ::testing::Values("sqlite", "jetstream"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace sidestream
