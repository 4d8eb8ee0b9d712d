// sidestream-cli and the C++ Subscriber against the real server with access
// tokens, gRPC TLS and mutual TLS: the right credentials work, and missing
// or wrong ones fail with a message that says what to pass.
#include <algorithm>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "client/subscriber.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_certs.h"

namespace sidestream::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kAdminToken[] = "cli-admin-token-0123456789abcdef0123456789";
constexpr char kPayoutsToken[] = "cli-payouts-token-0123456789abcdef01234567";
constexpr char kRotatedToken[] = "cli-rotated-token-0123456789abcdef0123456";

size_t Lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

class ClientSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("client-security");
    ASSERT_FALSE(dir_.empty());
    tokens_file_ = dir_ + "/server-tokens";
    admin_token_file_ = dir_ + "/admin.token";
    payouts_token_file_ = dir_ + "/payouts.token";
    // Trailing newline and spaces: the client trims them.
    WriteFile(admin_token_file_, absl::StrCat(kAdminToken, "\n"));
    WriteFile(payouts_token_file_, absl::StrCat("  ", kPayoutsToken, "  \n"));
  }

  void MakeCertificates() {
    absl::StatusOr<Pki> one = MakePki(dir_, "one");
    ASSERT_TRUE(one.ok()) << one.status();
    one_ = *one;
    absl::StatusOr<Pki> two = MakePki(dir_, "two");
    ASSERT_TRUE(two.ok()) << two.status();
    two_ = *two;
  }

  void WriteServerTokens(const std::string& admin_token) {
    WriteFile(tokens_file_,
              absl::StrCat("name=ops token=", admin_token, " admin=true\n",
                           "name=payouts token=", kPayoutsToken, " types=payout.*\n"));
  }

  void StartServer(std::vector<std::string> args) {
    options_.data_dir = dir_ + "/data";
    options_.args = std::move(args);
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    // A restart comes back on the same addresses.
    options_.grpc_listen = server_->grpc_address();
    options_.http_listen = server_->http_address();
  }

  void StartServerWithTokens() {
    WriteServerTokens(kAdminToken);
    StartServer({"--grpc_tokens_file=" + tokens_file_});
  }

  void Post(const std::string& type, const std::string& id) {
    absl::StatusOr<HttpResponse> r =
        PostWebhook(server_->webhook_url(), SampleBody(type, "acct_1A", false, id));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status_code, 200) << r->body;
  }

  CommandResult Cli(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), BinDir() + "/sidestream-cli");
    args.push_back("--server=" + server_->grpc_address());
    return RunCommand(args, env, absl::Seconds(60));
  }

  std::string dir_;
  std::string tokens_file_, admin_token_file_, payouts_token_file_;
  Pki one_, two_;
  ServerProcessOptions options_;
  std::unique_ptr<ServerProcess> server_;
};

// --- tokens -----------------------------------------------------------------

TEST_F(ClientSecurityTest, CliCommandsWorkWithAnAdminToken) {
  StartServerWithTokens();
  Post("payout.paid", "evt_tok_1");
  Post("payout.failed", "evt_tok_2");
  const std::string token = "--token_file=" + admin_token_file_;

  CommandResult stats = Cli({"stats", token});
  ASSERT_EQ(stats.code, 0) << stats.stderr_text;
  EXPECT_THAT(stats.stdout_text, HasSubstr("\"accepted\""));

  CommandResult tail = Cli({"tail", token, "--from=oldest", "--count=2", "--types=payout.*"});
  ASSERT_EQ(tail.code, 0) << tail.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(tail.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << tail.stdout_text;
  EXPECT_THAT(lines[0], HasSubstr("\"id\":\"evt_tok_1\""));
  EXPECT_THAT(lines[1], HasSubstr("\"id\":\"evt_tok_2\""));

  CommandResult get = Cli({"get", "evt_tok_2", token});
  ASSERT_EQ(get.code, 0) << get.stderr_text;
  EXPECT_THAT(get.stdout_text, HasSubstr("\"id\":\"evt_tok_2\""));

  CommandResult list = Cli({"list", "--all", token});
  ASSERT_EQ(list.code, 0) << list.stderr_text;
  EXPECT_EQ(Lines(list.stdout_text), 2u) << list.stdout_text;

  // The environment works as the flag does.
  CommandResult from_env =
      Cli({"stats", "--format=table"}, {"SIDESTREAM_TOKEN_FILE=" + admin_token_file_});
  EXPECT_EQ(from_env.code, 0) << from_env.stderr_text;
}

TEST_F(ClientSecurityTest, CliWithoutATokenSaysToPassTokenFile) {
  StartServerWithTokens();
  Post("payout.paid", "evt_tok_1");
  for (std::vector<std::string> args : {std::vector<std::string>{"stats"},
                                        {"get", "evt_tok_1"},
                                        {"list"},
                                        {"tail", "--from=oldest", "--count=1"}}) {
    CommandResult r = Cli(args);
    EXPECT_EQ(r.code, 1) << args[0] << ": " << r.stderr_text;
    EXPECT_THAT(r.stderr_text, HasSubstr("requires an access token: pass --token_file")) << args[0];
    EXPECT_THAT(r.stderr_text, HasSubstr("UNAUTHENTICATED")) << args[0];
    EXPECT_EQ(Lines(r.stderr_text), 1u) << args[0] << ": " << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "") << args[0];
  }

  // A token the server does not know.
  const std::string unknown = dir_ + "/unknown.token";
  WriteFile(unknown, "not-a-token-of-this-server-0123456789abcdef\n");
  CommandResult wrong = Cli({"stats", "--token_file=" + unknown});
  EXPECT_EQ(wrong.code, 1);
  EXPECT_THAT(wrong.stderr_text, HasSubstr("did not accept the token in --token_file"));
  EXPECT_THAT(wrong.stderr_text, HasSubstr("not valid"));
}

TEST_F(ClientSecurityTest, CliWithAScopedTokenSurfacesPermissionDenied) {
  StartServerWithTokens();
  Post("payout.paid", "evt_scoped_1");
  const std::string token = "--token_file=" + payouts_token_file_;

  CommandResult stats = Cli({"stats", token});
  EXPECT_EQ(stats.code, 1);
  EXPECT_THAT(stats.stderr_text,
              HasSubstr("token \"payouts\" may not call the Admin service (it needs admin=true)"));
  EXPECT_THAT(stats.stderr_text, HasSubstr("PERMISSION_DENIED"));

  // Outside the scope: every type.
  CommandResult wide = Cli({"tail", token, "--from=oldest", "--count=1"});
  EXPECT_EQ(wide.code, 1);
  EXPECT_THAT(wide.stderr_text, HasSubstr("token \"payouts\" may not subscribe"));
  EXPECT_THAT(wide.stderr_text, HasSubstr("PERMISSION_DENIED"));

  // Within it.
  CommandResult narrow = Cli({"tail", token, "--from=oldest", "--count=1", "--types=payout.*"});
  ASSERT_EQ(narrow.code, 0) << narrow.stderr_text;
  EXPECT_THAT(narrow.stdout_text, HasSubstr("\"id\":\"evt_scoped_1\""));
}

TEST_F(ClientSecurityTest, CliTokenFileProblemsNameTheFile) {
  StartServerWithTokens();
  const std::string missing = dir_ + "/missing.token";
  CommandResult r = Cli({"stats", "--token_file=" + missing});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.stderr_text, HasSubstr("cannot read the access token file " + missing));

  const std::string empty = dir_ + "/empty.token";
  WriteFile(empty, "\n");
  r = Cli({"tail", "--token_file=" + empty});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.stderr_text, HasSubstr("is empty"));

  // send talks HTTP, where the token has no meaning.
  r = Cli({"send", "--token_file=" + admin_token_file_});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.stderr_text, HasSubstr("--token_file does not apply to 'send'"));
}

// The library re-reads its token file before each reconnect: after a
// restart in which the server's token was rotated, the stream resumes with
// the new token, with no event lost or repeated.
TEST_F(ClientSecurityTest, SubscriberWithTokenResumesAcrossRestartAndRotation) {
  StartServerWithTokens();
  const std::string token_file = dir_ + "/subscriber.token";
  WriteFile(token_file, kAdminToken);

  SubscriberOptions options;
  options.target = server_->grpc_address();
  options.token_file = token_file;
  options.position = v1::START_POSITION_OLDEST;
  options.filter.add_types("payout.*");
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<Subscriber>> subscriber = Subscriber::Create(options);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();

  absl::Mutex mu;
  std::vector<std::string> ids;
  absl::Status run_status;
  bool done = false;
  std::thread runner([&] {
    absl::Status s = (*subscriber)->Run([&](const v1::SubscribeResponse& item) {
      if (!item.has_event()) return;
      absl::MutexLock lock(&mu);
      ids.push_back(item.event().id());
    });
    absl::MutexLock lock(&mu);
    run_status = s;
    done = true;
  });
  auto wait_for = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ids.size() >= n || done; };
    mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
    return ids.size() >= n;
  };

  Post("payout.paid", "evt_sub_1");
  Post("payout.paid", "evt_sub_2");
  ASSERT_TRUE(wait_for(2)) << run_status;

  server_->Kill();
  // The old token stops working with the restart; the client's file holds
  // the new one before the server is back.
  WriteServerTokens(kRotatedToken);
  WriteFile(token_file, absl::StrCat(kRotatedToken, "\n"));
  StartServer({"--grpc_tokens_file=" + tokens_file_});
  Post("payout.failed", "evt_sub_3");
  ASSERT_TRUE(wait_for(3)) << run_status;
  (*subscriber)->Stop();
  runner.join();

  EXPECT_TRUE(run_status.ok()) << run_status;
  EXPECT_THAT(ids, ::testing::ElementsAre("evt_sub_1", "evt_sub_2", "evt_sub_3"));
  EXPECT_GE((*subscriber)->reconnects(), 1);
}

TEST_F(ClientSecurityTest, SubscriberWithoutTokenStopsWithUnauthenticated) {
  StartServerWithTokens();
  SubscriberOptions options;
  options.target = server_->grpc_address();
  options.initial_backoff = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<Subscriber>> subscriber = Subscriber::Create(options);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  absl::Status status = (*subscriber)->Run([](const v1::SubscribeResponse&) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("missing access token"));

  options.token_file = dir_ + "/missing.token";
  EXPECT_EQ(Subscriber::Create(options).status().code(), absl::StatusCode::kNotFound);
}

// --- TLS --------------------------------------------------------------------

TEST_F(ClientSecurityTest, CliOverTlsTrustsTheGivenCa) {
  MakeCertificates();
  StartServer(
      {"--grpc_tls_cert_file=" + one_.server_cert, "--grpc_tls_key_file=" + one_.server_key});
  Post("payout.paid", "evt_tls_1");
  const std::string ca = "--tls_ca_file=" + one_.ca;

  CommandResult stats = Cli({"stats", ca});
  ASSERT_EQ(stats.code, 0) << stats.stderr_text;
  CommandResult tail = Cli({"tail", ca, "--from=oldest", "--count=1"});
  ASSERT_EQ(tail.code, 0) << tail.stderr_text;
  EXPECT_THAT(tail.stdout_text, HasSubstr("\"id\":\"evt_tls_1\""));
  CommandResult get = Cli({"get", "evt_tls_1"}, {"SIDESTREAM_TLS_CA_FILE=" + one_.ca});
  ASSERT_EQ(get.code, 0) << get.stderr_text;

  // Plain text to a TLS server: the message suggests TLS.
  CommandResult plain = Cli({"stats"});
  EXPECT_EQ(plain.code, 1);
  EXPECT_THAT(plain.stderr_text, HasSubstr("if the server uses TLS, pass --tls_ca_file"));

  // A CA that did not sign the server's certificate.
  CommandResult untrusted = Cli({"stats", "--tls_ca_file=" + two_.ca});
  EXPECT_EQ(untrusted.code, 1);
  EXPECT_THAT(untrusted.stderr_text, HasSubstr("TLS handshake with Sidestream at"));
  EXPECT_THAT(untrusted.stderr_text, HasSubstr("--tls_ca_file"));
  // One line: gRPC's own log of the failed handshake is not shown.
  EXPECT_EQ(Lines(untrusted.stderr_text), 1u) << untrusted.stderr_text;

  // A CA file that cannot be read is reported before connecting.
  CommandResult absent = Cli({"stats", "--tls_ca_file=" + dir_ + "/absent.pem"});
  EXPECT_EQ(absent.code, 1);
  EXPECT_THAT(absent.stderr_text, HasSubstr("cannot read the TLS CA file " + dir_ + "/absent.pem"));
}

TEST_F(ClientSecurityTest, CliOverMutualTlsWithTokens) {
  MakeCertificates();
  WriteServerTokens(kAdminToken);
  StartServer({"--grpc_tls_cert_file=" + one_.server_cert, "--grpc_tls_key_file=" + one_.server_key,
               "--grpc_tls_client_ca_file=" + one_.ca, "--grpc_tokens_file=" + tokens_file_});
  const std::vector<std::string> mtls = {"--tls_ca_file=" + one_.ca,
                                         "--tls_cert_file=" + one_.client_cert,
                                         "--tls_key_file=" + one_.client_key};
  auto with = [](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };

  CommandResult ok = Cli(with({"stats", "--token_file=" + admin_token_file_}, mtls));
  ASSERT_EQ(ok.code, 0) << ok.stderr_text;
  EXPECT_THAT(ok.stdout_text, HasSubstr("\"log_epoch\""));

  // The certificate gets through the handshake; the token is still needed.
  CommandResult no_token = Cli(with({"stats"}, mtls));
  EXPECT_EQ(no_token.code, 1);
  EXPECT_THAT(no_token.stderr_text, HasSubstr("requires an access token"));

  // Without a client certificate the handshake fails.
  CommandResult no_cert =
      Cli({"stats", "--tls_ca_file=" + one_.ca, "--token_file=" + admin_token_file_});
  EXPECT_EQ(no_cert.code, 1);
  EXPECT_EQ(no_cert.stdout_text, "");
  EXPECT_THAT(no_cert.stderr_text, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(no_cert.stderr_text, HasSubstr("pass --tls_cert_file and --tls_key_file"));

  // A certificate without its key is a usage error.
  CommandResult half =
      Cli({"stats", "--tls_ca_file=" + one_.ca, "--tls_cert_file=" + one_.client_cert});
  EXPECT_EQ(half.code, 2);
  EXPECT_THAT(half.stderr_text, HasSubstr("needs its key"));

  // The Subscriber library with the same credentials.
  SubscriberOptions options;
  options.target = server_->grpc_address();
  options.tls.ca_file = one_.ca;
  options.tls.cert_file = one_.client_cert;
  options.tls.key_file = one_.client_key;
  options.token_file = admin_token_file_;
  options.position = v1::START_POSITION_OLDEST;
  options.max_attempts = 3;
  absl::StatusOr<std::unique_ptr<Subscriber>> subscriber = Subscriber::Create(options);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Post("payout.paid", "evt_mtls_1");
  std::vector<std::string> ids;
  absl::Status status = (*subscriber)->Run([&](const v1::SubscribeResponse& item) {
    if (item.has_event()) ids.push_back(item.event().id());
    if (item.has_caught_up()) (*subscriber)->Stop();
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(ids, ::testing::ElementsAre("evt_mtls_1"));
}

}  // namespace
}  // namespace sidestream::testing
