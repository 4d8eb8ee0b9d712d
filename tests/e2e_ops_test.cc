// End-to-end tests of how Sidestream runs in production (the operations
// issue): flags and help, structured logs, the admin listener, graceful
// shutdown under load. Real binaries, ephemeral loopback ports.
#include <signal.h>
#include <simdjson.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "client/http_client.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::unique_ptr<ServerProcess> StartServer(const std::string& data_dir,
                                           std::vector<std::string> args = {}) {
  ServerProcessOptions options;
  options.data_dir = data_dir;
  options.args = std::move(args);
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// The flags main.cc defines, read from Abseil's --helpfull (grouped by file).
std::vector<std::string> ServerFlagNames() {
  CommandResult full = RunCommand({BinDir() + "/sidestream", "--helpfull"}, {}, absl::Seconds(30));
  std::vector<std::string> names;
  bool in_main = false;
  for (absl::string_view line : absl::StrSplit(full.stdout_text + full.stderr_text, '\n')) {
    if (absl::StrContains(line, "Flags from ")) {
      in_main = absl::StrContains(line, "server/main.cc");
      continue;
    }
    // A flag starts a line indented by four spaces; its help continues on
    // lines indented by six.
    absl::string_view rest = line;
    if (in_main && absl::ConsumePrefix(&rest, "    --")) {
      names.emplace_back(rest.substr(0, rest.find_first_of(" (")));
    }
  }
  return names;
}

TEST(CommandLineE2eTest, HelpDocumentsEveryFlagWithItsEnvironmentVariableAndDefault) {
  const std::vector<std::string> names = ServerFlagNames();
  ASSERT_GE(names.size(), 20u) << "could not read the flags from --helpfull";
  CommandResult help = RunCommand({BinDir() + "/sidestream", "--help"}, {}, absl::Seconds(30));
  EXPECT_EQ(help.code, 0);
  for (const std::string& name : names) {
    std::string env = absl::StrCat("SIDESTREAM_", name);
    for (char& c : env) c = absl::ascii_toupper(c);
    EXPECT_THAT(help.stdout_text, HasSubstr(absl::StrCat("--", name, "  (", env, ", default ")))
        << name;
  }
  EXPECT_THAT(help.stdout_text, HasSubstr("--admin_listen  (SIDESTREAM_ADMIN_LISTEN, default "
                                          "\"127.0.0.1:9090\")"));
  EXPECT_THAT(help.stdout_text,
              HasSubstr("--shutdown_grace  (SIDESTREAM_SHUTDOWN_GRACE, default 20s)"));
}

// docs/operations.md's configuration reference has a row for every flag.
TEST(CommandLineE2eTest, OperationsGuideDocumentsEveryFlag) {
  const char* source = std::getenv("SIDESTREAM_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "run through ctest";
  std::ifstream in(absl::StrCat(source, "/docs/operations.md"));
  std::stringstream doc;
  doc << in.rdbuf();
  ASSERT_FALSE(doc.str().empty());
  for (const std::string& name : ServerFlagNames()) {
    std::string env = absl::StrCat("SIDESTREAM_", name);
    for (char& c : env) c = absl::ascii_toupper(c);
    EXPECT_THAT(doc.str(), HasSubstr(absl::StrCat("| `--", name, "` | `", env, "` |")))
        << "--" << name << " is missing from the configuration reference";
  }
}

TEST(CommandLineE2eTest, VersionPrintsTheVersion) {
  CommandResult version =
      RunCommand({BinDir() + "/sidestream", "--version"}, {}, absl::Seconds(30));
  EXPECT_EQ(version.code, 0);
  EXPECT_EQ(version.stdout_text, absl::StrCat("sidestream ", SIDESTREAM_VERSION, "\n"));
}

TEST(CommandLineE2eTest, EveryFlagCanComeFromTheEnvironment) {
  const std::string dir = MakeTempDir("envflag");
  // A bad value in the environment is reported with the variable's name.
  CommandResult bad = RunCommand(
      {BinDir() + "/sidestream", "--data_dir=" + dir},
      {"SIDESTREAM_WEBHOOK_SECRETS=whsec_x", "SIDESTREAM_SHUTDOWN_GRACE=soon"}, absl::Seconds(30));
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.stderr_text, HasSubstr("SIDESTREAM_SHUTDOWN_GRACE=soon"));
  // And a good one takes effect: the admin listener moves.
  ServerProcessOptions options;
  options.data_dir = dir;
  options.admin_listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT((*server)->admin_address(), StartsWith("127.0.0.1:"));
}

TEST(CommandLineE2eTest, BadLogFormatOrLevelIsRefused) {
  const std::string dir = MakeTempDir("logflags");
  for (const auto& [flag, hint] : std::vector<std::pair<std::string, std::string>>{
           {"--log_format=xml", "--log_format must be json, logfmt or text"},
           {"--log_level=loud", "--log_level must be"}}) {
    CommandResult r = RunCommand({BinDir() + "/sidestream", "--data_dir=" + dir, flag},
                                 {"SIDESTREAM_WEBHOOK_SECRETS=whsec_x"}, absl::Seconds(30));
    EXPECT_EQ(r.code, 2) << flag;
    EXPECT_THAT(r.stderr_text, HasSubstr(hint)) << flag;
  }
}

// Every stderr line is one JSON object with time, level and msg; a refused
// webhook is logged with its reason and peer as fields; the secret and the
// payload never appear.
TEST(LogsE2eTest, JsonLinesWithFieldsAndNoSecrets) {
  const std::string dir = MakeTempDir("jsonlogs");
  std::unique_ptr<ServerProcess> server = StartServer(dir, {"--log_level=debug"});
  ASSERT_NE(server, nullptr);
  const std::string url = server->webhook_url();
  const std::string good = SampleBody("payout.paid", "acct_1Logs", true, "evt_logs_ok");
  ASSERT_EQ(PostWebhook(url, good)->status_code, 200);
  const std::string body = SampleBody("payout.paid", "", true, "evt_logs_bad");
  absl::StatusOr<HttpResponse> refused = PostWebhook(url, body, "whsec_not_the_secret");
  ASSERT_TRUE(refused.ok()) << refused.status();
  ASSERT_EQ(refused->status_code, 400);
  ASSERT_EQ(server->Terminate(absl::Seconds(30)), 0);

  const std::string text = server->StderrText();
  EXPECT_THAT(text, Not(HasSubstr(kTestSecret)));
  EXPECT_THAT(text, Not(HasSubstr("whsec_not_the_secret")));
  EXPECT_THAT(text, Not(HasSubstr("po_")));  // payload fields (object ids) stay out
  simdjson::dom::parser parser;
  int lines = 0;
  bool saw_refusal = false, saw_stored = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++lines;
    simdjson::dom::object object;
    ASSERT_EQ(parser.parse(line.data(), line.size()).get(object), simdjson::SUCCESS) << line;
    std::string_view time, level, msg;
    ASSERT_EQ(object["time"].get(time), simdjson::SUCCESS) << line;
    ASSERT_EQ(object["level"].get(level), simdjson::SUCCESS) << line;
    ASSERT_EQ(object["msg"].get(msg), simdjson::SUCCESS) << line;
    EXPECT_THAT(std::string(level), ::testing::AnyOf("debug", "info", "warning", "error"));
    if (msg == "webhook refused") {
      saw_refusal = true;
      std::string_view reason, peer;
      EXPECT_EQ(object["reason"].get(reason), simdjson::SUCCESS);
      EXPECT_EQ(reason, "signature_mismatch");
      EXPECT_EQ(object["peer"].get(peer), simdjson::SUCCESS);
      EXPECT_THAT(std::string(peer), StartsWith("127.0.0.1:"));
    }
    if (msg == "webhook stored") {
      saw_stored = true;
      std::string_view id, account;
      EXPECT_EQ(object["event_id"].get(id), simdjson::SUCCESS);
      EXPECT_EQ(id, "evt_logs_ok");
      EXPECT_EQ(object["account"].get(account), simdjson::SUCCESS);
      EXPECT_EQ(account, "acct_1Logs");
    }
  }
  EXPECT_GE(lines, 3);
  EXPECT_TRUE(saw_refusal) << text;
  EXPECT_TRUE(saw_stored) << text;
}

TEST(LogsE2eTest, LogfmtOnRequest) {
  const std::string dir = MakeTempDir("logfmt");
  std::unique_ptr<ServerProcess> server = StartServer(dir, {"--log_format=logfmt"});
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(server->Terminate(absl::Seconds(30)), 0);
  const std::string text = server->StderrText();
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++lines;
    EXPECT_THAT(std::string(line), ::testing::MatchesRegex("time=[0-9T:.Z-]+ level=[a-z]+ msg=.*"));
  }
  EXPECT_GE(lines, 2) << text;  // serving, shutting down, stopped
}

TEST(AdminListenerE2eTest, ProbesAndMetricsAreOnTheAdminPortOnly) {
  const std::string dir = MakeTempDir("admin");
  std::unique_ptr<ServerProcess> server = StartServer(dir);
  ASSERT_NE(server, nullptr);
  const std::string admin = "http://" + server->admin_address();
  absl::StatusOr<HttpResponse> healthz = HttpGet(admin + "/healthz", {}, absl::Seconds(10));
  ASSERT_TRUE(healthz.ok()) << healthz.status();
  EXPECT_EQ(healthz->status_code, 200);
  EXPECT_EQ(healthz->body, "ok\n");
  absl::StatusOr<HttpResponse> readyz = HttpGet(admin + "/readyz", {}, absl::Seconds(10));
  ASSERT_TRUE(readyz.ok()) << readyz.status();
  EXPECT_EQ(readyz->status_code, 200);
  absl::StatusOr<HttpResponse> metrics = HttpGet(admin + "/metrics", {}, absl::Seconds(10));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status_code, 200);
  ASSERT_NE(metrics->FindHeader("Content-Type"), nullptr);
  EXPECT_THAT(*metrics->FindHeader("Content-Type"), StartsWith("text/plain; version=0.0.4"));
  EXPECT_THAT(metrics->body, HasSubstr("sidestream_ready 1\n"));
  absl::StatusOr<HttpResponse> post = HttpPost(admin + "/metrics", {}, "x", absl::Seconds(10));
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status_code, 405);
  // The webhook port does not serve them.
  absl::StatusOr<HttpResponse> on_webhook_port =
      HttpGet("http://" + server->http_address() + "/metrics", {}, absl::Seconds(10));
  ASSERT_TRUE(on_webhook_port.ok());
  EXPECT_EQ(on_webhook_port->status_code, 404);
}

uint64_t AckedSequence(const std::string& body) {
  const size_t at = body.find("\"sequence\":");
  uint64_t sequence = 0;
  if (at == std::string::npos) return 0;
  absl::string_view rest = absl::string_view(body).substr(at + 11);
  (void)absl::SimpleAtoi(rest.substr(0, rest.find_first_not_of("0123456789")), &sequence);
  return sequence;
}

// SIGTERM while four senders post flat out and a subscriber is streaming:
// every acknowledged (200) event is stored with the acknowledged sequence;
// the other answers are 503 "shutting_down" or refused connections once the
// listener is gone; the stream ends with UNAVAILABLE; the exit code is 0.
TEST(ShutdownE2eTest, SigtermDuringLoadLosesNoAcknowledgedEventAndEndsStreamsWithUnavailable) {
  const std::string dir = MakeTempDir("sigterm");
  std::unique_ptr<ServerProcess> server = StartServer(dir, {"--shutdown_grace=15s"});
  ASSERT_NE(server, nullptr);
  const std::string url = server->webhook_url();
  StreamCollector stream(server->grpc_address(), v1::SubscribeRequest());
  ASSERT_TRUE(stream.WaitForCaughtUp());

  absl::Mutex mu;
  std::map<std::string, uint64_t> acked;  // id -> sequence
  int shutting_down = 0, transport_errors = 0;
  std::vector<std::string> unexpected;
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        const std::string id = absl::StrCat("evt_term", t, "_", i);
        absl::StatusOr<HttpResponse> r =
            PostWebhook(url, SampleBody("payout.paid", "acct_1Term", true, id));
        absl::MutexLock lock(&mu);
        if (!r.ok()) {
          ++transport_errors;  // the listener is gone: the server exited
          return;
        }
        if (r->status_code == 200) {
          acked[id] = AckedSequence(r->body);
        } else if (r->status_code == 503 && absl::StrContains(r->body, "shutting_down")) {
          ++shutting_down;
        } else {
          unexpected.push_back(absl::StrCat(r->status_code, " ", r->body));
        }
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return acked.size() >= 200; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(60)))
        << "the load never got going";
  }
  const int code = server->Terminate(absl::Seconds(40));
  for (std::thread& s : senders) s.join();
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(unexpected.empty()) << unexpected.front();
  ASSERT_TRUE(stream.WaitForEnd());
  EXPECT_EQ(stream.status().error_code(), grpc::StatusCode::UNAVAILABLE)
      << stream.status().error_message();
  RecordProperty("acknowledged", static_cast<int>(acked.size()));
  RecordProperty("shutting_down_503", shutting_down);

  // Everything acknowledged is there, with the acknowledged sequence.
  std::unique_ptr<ServerProcess> again = StartServer(dir);
  ASSERT_NE(again, nullptr);
  std::unique_ptr<v1::Events::Stub> events = EventsStub(again->grpc_address());
  std::map<std::string, uint64_t> stored;
  std::string token;
  do {
    grpc::ClientContext context;
    v1::ListEventsRequest request;
    request.set_page_size(500);
    request.set_page_token(token);
    v1::ListEventsResponse response;
    grpc::Status status = events->ListEvents(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::Event& e : response.events()) stored[e.id()] = e.sequence();
    token = response.next_page_token();
  } while (!token.empty());
  int lost = 0;
  for (const auto& [id, sequence] : acked) {
    auto it = stored.find(id);
    if (it == stored.end() || it->second != sequence) ++lost;
  }
  EXPECT_EQ(lost, 0) << "of " << acked.size() << " acknowledged events";
  // The stream delivered in order what it got before it ended.
  uint64_t last = 0;
  for (const v1::Event& e : stream.events()) {
    EXPECT_GT(e.sequence(), last);
    last = e.sequence();
  }
}

}  // namespace
}  // namespace sidestream::testing
