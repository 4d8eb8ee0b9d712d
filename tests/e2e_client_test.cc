// The C++ client library and sidestream-cli against the real server binary.
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "client/subscriber.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

using ::testing::HasSubstr;

TEST(E2eClientTest, SubscriberSeesEachEventOnceAcrossKill9Restart) {
  ServerProcessOptions options;
  options.data_dir = MakeTempDir("client");
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  // The restarted server must come back on the same addresses.
  options.grpc_listen = (*server)->grpc_address();
  options.http_listen = (*server)->http_address();

  SubscriberOptions sub_options;
  sub_options.target = (*server)->grpc_address();
  sub_options.position = v1::START_POSITION_OLDEST;
  sub_options.filter.add_types("payout.*");
  sub_options.initial_backoff = absl::Milliseconds(20);
  sub_options.max_backoff = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<Subscriber>> subscriber = Subscriber::Create(sub_options);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();

  absl::Mutex mu;
  std::vector<std::string> ids;
  std::vector<uint64_t> sequences;
  absl::Status run_status;
  std::thread runner([&] {
    absl::Status s = (*subscriber)->Run([&](const v1::SubscribeResponse& item) {
      if (!item.has_event()) return;
      absl::MutexLock lock(&mu);
      ids.push_back(item.event().id());
      sequences.push_back(item.event().sequence());
    });
    absl::MutexLock lock(&mu);
    run_status = s;
  });
  auto wait_for = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ids.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
  };
  auto send = [&](const std::string& type, const std::string& id) {
    absl::StatusOr<HttpResponse> r =
        PostWebhook((*server)->webhook_url(), SampleBody(type, "acct_1A", false, id));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status_code, 200) << r->body;
  };

  for (int i = 0; i < 10; ++i) {
    send(i % 2 ? "payout.paid" : "customer.created", absl::StrCat("evt_a", i));
  }
  ASSERT_TRUE(wait_for(5));
  (*server)->Kill();
  // Events stored while the subscriber is disconnected.
  server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  for (int i = 0; i < 10; ++i) send("payout.failed", absl::StrCat("evt_b", i));
  ASSERT_TRUE(wait_for(15));
  (*subscriber)->Stop();
  runner.join();

  std::vector<std::string> want;
  for (int i = 1; i < 10; i += 2) want.push_back(absl::StrCat("evt_a", i));
  for (int i = 0; i < 10; ++i) want.push_back(absl::StrCat("evt_b", i));
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(run_status.ok()) << run_status;
  EXPECT_EQ(ids, want);
  for (size_t i = 1; i < sequences.size(); ++i) EXPECT_LT(sequences[i - 1], sequences[i]);
  EXPECT_GE((*subscriber)->reconnects(), 1);
  EXPECT_EQ((*subscriber)->log_epoch(), (*server)->epoch());
}

class E2eCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerProcessOptions options;
    options.data_dir = MakeTempDir("cli");
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  CommandResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), BinDir() + "/sidestream-cli");
    args.push_back("--server=" + server_->grpc_address());
    return RunCommand(args, {absl::StrCat("SIDESTREAM_WEBHOOK_SECRET=", kTestSecret)},
                      absl::Seconds(60));
  }

  std::unique_ptr<ServerProcess> server_;
};

TEST_F(E2eCliTest, SendTailGetListStats) {
  CommandResult send =
      Cli({"send", "--url=" + server_->webhook_url(), "--type=payout.failed",
           "--account=acct_1Nv0FGQ9RKHgCVdK", "--live", "--count=3", "--id=evt_cli"});
  ASSERT_EQ(send.code, 0) << send.stderr_text;
  EXPECT_EQ(std::count(send.stdout_text.begin(), send.stdout_text.end(), '\n'), 3)
      << send.stdout_text;
  EXPECT_THAT(send.stdout_text, HasSubstr("200"));

  CommandResult tail = Cli({"tail", "--from=oldest", "--count=3", "--types=payout.*"});
  ASSERT_EQ(tail.code, 0) << tail.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(tail.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << tail.stdout_text;
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(lines[i], HasSubstr(absl::StrCat("\"id\":\"evt_cli_", i + 1, "\"")));
    EXPECT_THAT(lines[i], HasSubstr("\"account\":\"acct_1Nv0FGQ9RKHgCVdK\""));
  }

  CommandResult raw = Cli({"get", "evt_cli_2", "--raw"});
  ASSERT_EQ(raw.code, 0) << raw.stderr_text;
  EXPECT_THAT(raw.stdout_text, HasSubstr("\"id\":\"evt_cli_2\""));
  EXPECT_THAT(raw.stdout_text, HasSubstr("\"object\":\"event\""));

  CommandResult list = Cli({"list", "--all", "--mode=live"});
  ASSERT_EQ(list.code, 0) << list.stderr_text;
  EXPECT_EQ(std::count(list.stdout_text.begin(), list.stdout_text.end(), '\n'), 3);

  CommandResult stats = Cli({"stats"});
  ASSERT_EQ(stats.code, 0) << stats.stderr_text;
  EXPECT_THAT(stats.stdout_text, HasSubstr("\"accepted\""));

  CommandResult missing = Cli({"get", "evt_nope"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.stderr_text, HasSubstr("NOT_FOUND"));

  CommandResult bad_secret =
      RunCommand({BinDir() + "/sidestream-cli", "send", "--url=" + server_->webhook_url()},
                 {"SIDESTREAM_WEBHOOK_SECRET=whsec_wrong"}, absl::Seconds(60));
  EXPECT_EQ(bad_secret.code, 1);
  EXPECT_THAT(bad_secret.stdout_text + bad_secret.stderr_text, HasSubstr("signature_mismatch"));
}

}  // namespace
}  // namespace sidestream::testing
