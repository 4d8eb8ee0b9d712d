// JetStream-specific behaviour; the EventLog contract itself runs in
// event_log_contract_test.cc. These start their own nats-server processes
// (single node, ephemeral loopback ports, temporary store directories).
#include "server/log/jetstream_event_log.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "server/log/event_log_test_util.h"
#include "tests/testing/nats_process.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;

NewEvent Event(const std::string& id, size_t event_size = 40, size_t raw_size = 60) {
  return TestEvent(id, absl::Now(), event_size, raw_size);
}

TEST(JetStreamSubjectTest, MapsModeAccountIdAndTypeTokens) {
  NewEvent event = Event("evt_1");
  event.type = "customer.subscription.updated";
  event.account = "acct_123";
  event.livemode = true;
  EXPECT_EQ(*JetStreamSubject("sidestream.events", event),
            "sidestream.events.live.acct_123.evt_1.customer.subscription.updated");
  event.account = "";
  event.livemode = false;
  EXPECT_EQ(*JetStreamSubject("sidestream.events", event),
            "sidestream.events.test._platform.evt_1.customer.subscription.updated");
}

TEST(JetStreamSubjectTest, InputCannotInjectSubjectTokens) {
  for (const char* id : {"evt_1.x", "evt_*", "evt_>", "evt 1", "", "evt_\t1"}) {
    NewEvent event = Event("evt_1");
    event.id = id;
    EXPECT_EQ(JetStreamSubject("p", event).status().code(), absl::StatusCode::kInvalidArgument)
        << id;
  }
  for (const char* type : {"invoice.*", "invoice.>", "invoice..paid", "invoice paid", ".x", ""}) {
    NewEvent event = Event("evt_1");
    event.type = type;
    EXPECT_EQ(JetStreamSubject("p", event).status().code(), absl::StatusCode::kInvalidArgument)
        << type;
  }
  for (const char* account : {"acct_1.x", "acct_*", "acct_>", "_platform", "acct_ 1"}) {
    NewEvent event = Event("evt_1");
    event.account = account;
    EXPECT_EQ(JetStreamSubject("p", event).status().code(), absl::StatusCode::kInvalidArgument)
        << account;
  }
}

class JetStreamEventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::path(::testing::TempDir()) / "jetstream_log_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    testing::NatsNodeOptions options;
    options.store_dir = root_ + "/nats";
    absl::StatusOr<std::unique_ptr<testing::NatsProcess>> nats =
        testing::NatsProcess::Start(options);
    ASSERT_TRUE(nats.ok()) << nats.status();
    nats_ = *std::move(nats);
  }
  void TearDown() override {
    nats_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  JetStreamEventLogOptions Options() {
    JetStreamEventLogOptions options;
    options.servers = {nats_->url()};
    options.timeout = absl::Seconds(2);
    options.refresh_interval = absl::Milliseconds(100);
    return options;
  }

  std::unique_ptr<JetStreamEventLog> OpenOrDie(const JetStreamEventLogOptions& options) {
    absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(options);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? *std::move(log) : nullptr;
  }

  std::string root_;
  std::unique_ptr<testing::NatsProcess> nats_;
};

TEST_F(JetStreamEventLogTest, TwoInstancesShareSequencesDedupAndAnnouncements) {
  auto a = OpenOrDie(Options());
  auto b = OpenOrDie(Options());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->Info().epoch, b->Info().epoch);
  RecordingListener heard_by_b;
  b->SetListener(&heard_by_b);
  absl::StatusOr<AppendResult> first = AppendAndWait(*a, Event("evt_1"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->sequence, 1u);
  // B announces what A stored, and recognises it as a duplicate.
  ASSERT_TRUE(heard_by_b.WaitForId("evt_1"));
  absl::StatusOr<AppendResult> again = AppendAndWait(*b, Event("evt_1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->sequence, 1u);
  absl::StatusOr<AppendResult> second = AppendAndWait(*b, Event("evt_2"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->sequence, 2u);
  absl::StatusOr<EventRecordPtr> from_a = a->Get("evt_2", true);
  ASSERT_TRUE(from_a.ok()) << from_a.status();
  EXPECT_EQ((*from_a)->sequence, 2u);
  ASSERT_TRUE(heard_by_b.WaitForId("evt_2"));
  EXPECT_THAT(Sequences(heard_by_b.records()), ::testing::ElementsAre(1, 2));
}

TEST_F(JetStreamEventLogTest, StreamIsCreatedWithTheDedupWindowAndCheckedOnOpen) {
  { ASSERT_NE(OpenOrDie(Options()), nullptr); }
  JetStreamEventLogOptions other = Options();
  other.retention = absl::Hours(24 * 8);
  other.replicas = 1;
  absl::StatusOr<std::unique_ptr<JetStreamEventLog>> refused = JetStreamEventLog::Open(other);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("max age is 168h, want 192h"));
  // A short retention shrinks the duplicate window with it (JetStream
  // refuses a window longer than MaxAge), and says so as a difference too.
  other = Options();
  other.retention = absl::Hours(1);
  other.allow_short_retention = true;
  refused = JetStreamEventLog::Open(other);
  EXPECT_THAT(refused.status().message(), HasSubstr("duplicate window is 72h, want 1h"));
}

TEST_F(JetStreamEventLogTest, DedupOutlivesSizeRetention) {
  JetStreamEventLogOptions options = Options();
  options.max_bytes = 2000;  // a few events of about 400 bytes with headers
  auto log = OpenOrDie(options);
  ASSERT_NE(log, nullptr);
  for (int i = 1; i <= 20; ++i) {
    ASSERT_TRUE(AppendAndWait(*log, Event(absl::StrCat("evt_", i), 100, 200)).ok());
  }
  absl::StatusOr<std::vector<EventRecordPtr>> page = log->ReadAfter(0, ReadOptions());
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_FALSE(page->empty());
  EXPECT_GT(page->front()->sequence, 1u);  // the front was trimmed: the reader sees the jump
  EXPECT_EQ(page->back()->sequence, 20u);
  EXPECT_EQ(log->Get("evt_1", false).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<AppendResult> retry = AppendAndWait(*log, Event("evt_1"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->sequence, 1u);
  EXPECT_GT(log->Info().first_sequence, 1u);
}

TEST_F(JetStreamEventLogTest, OpenFailsClearlyWhenNatsIsUnreachable) {
  JetStreamEventLogOptions options = Options();
  const std::string url = absl::StrCat("nats://127.0.0.1:", testing::FreeLoopbackPort());
  options.servers = {url};
  absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(options);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(log.status().message(), HasSubstr(url));
}

TEST_F(JetStreamEventLogTest, NatsOutageMakesAppendsUnavailableUntilItReturns) {
  auto log = OpenOrDie(Options());
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(AppendAndWait(*log, Event("evt_1")).ok());
  nats_->Kill();
  absl::StatusOr<AppendResult> failed = AppendAndWait(*log, Event("evt_2"));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
  EXPECT_FALSE(log->Info().writable);
  EXPECT_FALSE(log->Info().last_error.empty());
  EXPECT_EQ(log->ReadAfter(0, ReadOptions()).status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(nats_->Restart().ok());
  ASSERT_TRUE(nats_->WaitHealthy(absl::Seconds(20)).ok());
  // Polls with a deadline: the log finds out by itself (reconnect, then its
  // periodic refresh) that NATS is back.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!log->Info().writable && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(log->Info().writable) << log->Info().last_error;
  absl::StatusOr<AppendResult> next = AppendAndWait(*log, Event("evt_2"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->sequence, 2u);
}

TEST_F(JetStreamEventLogTest, OpenRejectsInvalidOptions) {
  JetStreamEventLogOptions options = Options();
  options.stream = "BAD.NAME";
  EXPECT_EQ(JetStreamEventLog::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = Options();
  options.subject_prefix = "a.*";
  EXPECT_EQ(JetStreamEventLog::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = Options();
  options.retention = absl::Hours(24);
  EXPECT_THAT(JetStreamEventLog::Open(options).status().message(), HasSubstr("dedup window"));
  options = Options();
  options.servers.clear();
  EXPECT_EQ(JetStreamEventLog::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sidestream
