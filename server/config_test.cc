#include "server/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <arpa/inet.h>
#include <sys/stat.h>

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// --- ParseListenAddress ------------------------------------------------------

ListenAddress MustParse(absl::string_view value) {
  absl::StatusOr<ListenAddress> address = ParseListenAddress("http_listen", value);
  EXPECT_TRUE(address.ok()) << value << ": " << address.status();
  return address.value_or(ListenAddress{"(error)", -1});
}

// The message of the INVALID_ARGUMENT for `value` given to --grpc_listen.
std::string MustRejectAddress(absl::string_view value) {
  absl::StatusOr<ListenAddress> address = ParseListenAddress("grpc_listen", value);
  EXPECT_FALSE(address.ok()) << value << " parsed as " << address->host << " port "
                             << address->port;
  if (address.ok()) return "";
  EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument) << address.status();
  return std::string(address.status().message());
}

TEST(ParseListenAddressTest, Ipv4) {
  ListenAddress a = MustParse("127.0.0.1:8080");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 8080);
  a = MustParse("0.0.0.0:0");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 0);
  a = MustParse("10.1.2.255:65535");
  EXPECT_EQ(a.host, "10.1.2.255");
  EXPECT_EQ(a.port, 65535);
}

TEST(ParseListenAddressTest, Ipv6InBrackets) {
  ListenAddress a = MustParse("[::1]:0");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 0);
  a = MustParse("[::]:50051");
  EXPECT_EQ(a.host, "::");
  EXPECT_EQ(a.port, 50051);
  a = MustParse("[fe80::1:2]:8080");
  EXPECT_EQ(a.host, "fe80::1:2");
  EXPECT_EQ(a.port, 8080);
}

TEST(ParseListenAddressTest, LocalhostIsIpv4Loopback) {
  ListenAddress a = MustParse("localhost:8080");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 8080);
}

TEST(ParseListenAddressTest, MissingPort) {
  for (const char* value : {"127.0.0.1", "localhost", "[::1]", "", "127.0.0.1:", "[::1]:"}) {
    SCOPED_TRACE(value);
    std::string message = MustRejectAddress(value);
    EXPECT_THAT(message, HasSubstr("--grpc_listen"));
  }
  EXPECT_THAT(MustRejectAddress("127.0.0.1"), HasSubstr("missing port"));
}

TEST(ParseListenAddressTest, BadPort) {
  for (const char* value : {"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1:80x",
                            "127.0.0.1:99999999999", "[::1]:70000"}) {
    SCOPED_TRACE(value);
    std::string message = MustRejectAddress(value);
    EXPECT_THAT(message, HasSubstr("--grpc_listen"));
    EXPECT_THAT(message, HasSubstr("0 to 65535"));
  }
}

TEST(ParseListenAddressTest, PortMustBeDigitsOnly) {
  // A port is written in decimal digits; signs and spaces are typos.
  for (const char* value : {"127.0.0.1:+80", "127.0.0.1: 80", "127.0.0.1:80 ", "[::1]:+0"}) {
    SCOPED_TRACE(value);
    MustRejectAddress(value);
  }
}

TEST(ParseListenAddressTest, HostnamesOtherThanLocalhostAreRejected) {
  for (const char* value :
       {"example.com:80", "sidestream:8080", "local-host:80", "localhost.:80", "my.localhost:80"}) {
    SCOPED_TRACE(value);
    std::string message = MustRejectAddress(value);
    EXPECT_THAT(message, HasSubstr("--grpc_listen"));
    EXPECT_THAT(message, HasSubstr(value)) << "the message should quote the value";
  }
}

TEST(ParseListenAddressTest, UnbracketedIpv6IsRejected) {
  EXPECT_THAT(MustRejectAddress("::1:8080"), HasSubstr("--grpc_listen"));
  EXPECT_THAT(MustRejectAddress("[::1:8080"), HasSubstr("--grpc_listen"));
}

TEST(ParseListenAddressTest, BracketsHoldOnlyIpv6) {
  MustRejectAddress("[127.0.0.1]:80");
  MustRejectAddress("[localhost]:80");
  MustRejectAddress("[]:80");
}

TEST(ParseListenAddressTest, MalformedIpv4IsRejected) {
  for (const char* value :
       {"256.0.0.1:80", "1.2.3:80", "1.2.3.4.5:80", "1..3.4:80", "1.2.3.-4:80", "a.b.c.d:80"}) {
    SCOPED_TRACE(value);
    MustRejectAddress(value);
  }
}

// The contract: `host` is an IP address literal. inet_pton, which the
// servers' address parsing also relies on, is the reference.
TEST(ParseListenAddressTest, AcceptsExactlyTheAddressesInetPtonAccepts) {
  for (const char* host : {"127.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.+4", "1.2.3. 4",
                           "01.2.3.4", "1.2.3.04"}) {
    SCOPED_TRACE(host);
    in_addr v4;
    const bool valid = inet_pton(AF_INET, host, &v4) == 1;
    EXPECT_EQ(ParseListenAddress("http_listen", absl::StrCat(host, ":80")).ok(), valid);
  }
  for (const char* host : {"::1", "::", "fe80::1", "2001:db8::8:800:200c:417a", "::ffff:1.2.3.4",
                           ":", ":::", "1:2:3:4:5:6:7:8:9", "::1::2", "12345::1", "1.2.3.4:"}) {
    SCOPED_TRACE(host);
    in6_addr v6;
    const bool valid = inet_pton(AF_INET6, host, &v6) == 1;
    EXPECT_EQ(ParseListenAddress("http_listen", absl::StrCat("[", host, "]:80")).ok(), valid);
  }
}

// --- IsLoopbackHost -------------------------------------------------------------

TEST(IsLoopbackHostTest, Loopback) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.255.255.254"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost(MustParse("localhost:1").host));
  EXPECT_TRUE(IsLoopbackHost(MustParse("[::1]:1").host));
}

TEST(IsLoopbackHostTest, NotLoopback) {
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "128.0.0.1", "12.7.0.0.1",
                           "1.127.0.0", "::2", "fe80::1", ""}) {
    SCOPED_TRACE(host);
    EXPECT_FALSE(IsLoopbackHost(host));
  }
}

TEST(IsLoopbackHostTest, Ipv6LoopbackInLongForm) {
  // The same address as ::1, accepted by ParseListenAddress.
  ASSERT_TRUE(ParseListenAddress("grpc_listen", "[0:0:0:0:0:0:0:1]:80").ok());
  EXPECT_TRUE(IsLoopbackHost("0:0:0:0:0:0:0:1"));
  EXPECT_TRUE(IsLoopbackHost("0::1"));
}

// --- LoadWebhookSecrets -------------------------------------------------------

class LoadWebhookSecretsTest : public ::testing::Test {
 protected:
  std::string WriteFile(const std::string& name, const std::string& contents) {
    const std::string path = absl::StrCat(testing::TempDir(), "/", name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << contents;
    EXPECT_TRUE(out.good()) << "cannot write " << path;
    return path;
  }
  std::vector<std::string> warnings_;
};

TEST_F(LoadWebhookSecretsTest, FromFile) {
  const std::string path =
      WriteFile("secrets_ok",
                "# Stripe endpoints\nconnect-live=whsec_live_1\n\nplatform-test=whsec_test_2\n");
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets(path, std::nullopt, &warnings_);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_EQ(secrets->size(), 2u);
  EXPECT_EQ((*secrets)[0].label, "connect-live");
  EXPECT_EQ((*secrets)[0].secret, "whsec_live_1");
  EXPECT_EQ((*secrets)[1].label, "platform-test");
  EXPECT_EQ((*secrets)[1].secret, "whsec_test_2");
}

TEST_F(LoadWebhookSecretsTest, FromEnvironmentValue) {
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets("", std::string("live=whsec_a,whsec_b"), &warnings_);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_EQ(secrets->size(), 2u);
  EXPECT_EQ((*secrets)[0].label, "live");
  EXPECT_EQ((*secrets)[0].secret, "whsec_a");
  EXPECT_EQ((*secrets)[1].secret, "whsec_b");
  EXPECT_FALSE((*secrets)[1].label.empty());
}

TEST_F(LoadWebhookSecretsTest, WhitespaceIsTrimmedWithAWarningWithoutTheSecret) {
  const std::string path = WriteFile("secrets_ws", "live= whsec_padded \n");
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets(path, std::nullopt, &warnings_);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_EQ(secrets->at(0).secret, "whsec_padded");
  ASSERT_FALSE(warnings_.empty());
  for (const std::string& w : warnings_) EXPECT_THAT(w, Not(HasSubstr("whsec_padded")));
}

TEST_F(LoadWebhookSecretsTest, BothSourcesIsAnError) {
  const std::string path = WriteFile("secrets_both", "whsec_a\n");
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets(path, std::string("whsec_b"), &warnings_);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(secrets.status().message()), HasSubstr("--webhook_secrets_file"));
  EXPECT_THAT(std::string(secrets.status().message()), HasSubstr("SIDESTREAM_WEBHOOK_SECRETS"));
}

TEST_F(LoadWebhookSecretsTest, NeitherSourceIsFailedPreconditionWithAHint) {
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets("", std::nullopt, &warnings_);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(secrets.status().message());
  EXPECT_THAT(message, HasSubstr("--webhook_secrets_file"));
  EXPECT_THAT(message, HasSubstr("SIDESTREAM_WEBHOOK_SECRETS"));
  EXPECT_THAT(message, HasSubstr("whsec_"));
}

TEST_F(LoadWebhookSecretsTest, MissingFileIsNotFound) {
  const std::string path = absl::StrCat(testing::TempDir(), "/no_such_secrets_file");
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets(path, std::nullopt, &warnings_);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kNotFound) << secrets.status();
  EXPECT_THAT(std::string(secrets.status().message()), HasSubstr(path));
}

TEST_F(LoadWebhookSecretsTest, UnreadableFileIsPermissionDenied) {
  const std::string path = WriteFile("secrets_unreadable", "whsec_a\n");
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  // Whether the file is readable depends on who runs the test (root reads
  // it anyway): ask the OS, then expect the matching answer.
  const int fd = open(path.c_str(), O_RDONLY);
  const bool readable = fd >= 0;
  if (fd >= 0) close(fd);
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets(path, std::nullopt, &warnings_);
  if (readable) {
    EXPECT_TRUE(secrets.ok()) << secrets.status();
  } else {
    EXPECT_EQ(secrets.status().code(), absl::StatusCode::kPermissionDenied) << secrets.status();
  }
  chmod(path.c_str(), 0600);
}

TEST_F(LoadWebhookSecretsTest, DirectoryIsAReadErrorNamingTheFile) {
  // A directory cannot be read as a file.
  const std::string path = testing::TempDir();
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets(path, std::nullopt, &warnings_);
  ASSERT_FALSE(secrets.ok());
  EXPECT_THAT(std::string(secrets.status().message()), HasSubstr("cannot read"))
      << secrets.status();
}

TEST_F(LoadWebhookSecretsTest, BadEntriesNameTheSource) {
  const std::string path = WriteFile("secrets_dup", "a=whsec_1\na=whsec_2\n");
  absl::StatusOr<std::vector<WebhookSecret>> secrets =
      LoadWebhookSecrets(path, std::nullopt, &warnings_);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(secrets.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(secrets.status().message()), Not(HasSubstr("whsec_1")));

  secrets = LoadWebhookSecrets("", std::string("a=whsec_1,a=whsec_2"), &warnings_);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(secrets.status().message()), HasSubstr("SIDESTREAM_WEBHOOK_SECRETS"));
}

TEST_F(LoadWebhookSecretsTest, EmptyFileOrValueIsInvalidArgument) {
  const std::string path = WriteFile("secrets_empty", "# nothing yet\n\n");
  EXPECT_EQ(LoadWebhookSecrets(path, std::nullopt, &warnings_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadWebhookSecrets("", std::string(""), &warnings_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- ValidateServerOptions ----------------------------------------------------

ServerOptions ValidOptions() {
  ServerOptions options;
  options.secrets = {{"test", "whsec_test_secret"}};
  return options;
}

// Expects `mutate` to make the valid options invalid with `code`, the message
// naming `mentions`.
void ExpectInvalid(const std::function<void(ServerOptions&)>& mutate, absl::StatusCode code,
                   absl::string_view mentions) {
  ServerOptions options = ValidOptions();
  mutate(options);
  absl::Status status = ValidateServerOptions(options);
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(mentions)));
}

void ExpectValid(const std::function<void(ServerOptions&)>& mutate) {
  ServerOptions options = ValidOptions();
  mutate(options);
  absl::Status status = ValidateServerOptions(options);
  EXPECT_TRUE(status.ok()) << status;
}

TEST(ValidateServerOptionsTest, DefaultsWithASecretAreValid) {
  EXPECT_TRUE(ValidateServerOptions(ValidOptions()).ok());
}

TEST(ValidateServerOptionsTest, SecretsRequired) {
  ExpectInvalid([](ServerOptions& o) { o.secrets.clear(); }, absl::StatusCode::kFailedPrecondition,
                "secret");
}

TEST(ValidateServerOptionsTest, ToleranceMustBePositive) {
  for (absl::Duration d : {absl::ZeroDuration(), absl::Seconds(-1), -absl::InfiniteDuration()}) {
    SCOPED_TRACE(absl::FormatDuration(d));
    ExpectInvalid([d](ServerOptions& o) { o.signature_tolerance = d; },
                  absl::StatusCode::kInvalidArgument, "--signature_tolerance");
  }
  ExpectValid([](ServerOptions& o) { o.signature_tolerance = absl::Seconds(1); });
}

TEST(ValidateServerOptionsTest, RetentionMustBePositiveEvenWhenShortIsAllowed) {
  for (bool allow : {false, true}) {
    ExpectInvalid(
        [allow](ServerOptions& o) {
          o.retention = absl::ZeroDuration();
          o.allow_short_retention = allow;
        },
        absl::StatusCode::kInvalidArgument, "--retention");
  }
}

TEST(ValidateServerOptionsTest, RetentionBelow72HoursNeedsOptIn) {
  ExpectInvalid([](ServerOptions& o) { o.retention = absl::Hours(72) - absl::Seconds(1); },
                absl::StatusCode::kInvalidArgument, "--allow_short_retention");
  ExpectValid([](ServerOptions& o) { o.retention = absl::Hours(72); });
  ExpectValid([](ServerOptions& o) {
    o.retention = absl::Hours(1);
    o.allow_short_retention = true;
  });
}

TEST(ValidateServerOptionsTest, NonLoopbackWebhooksAreAllowedWithAWarning) {
  ExpectValid([](ServerOptions& o) { o.http = {"0.0.0.0", 8080}; });
  ServerOptions o = ValidOptions();
  o.http = {"0.0.0.0", 8080};
  std::vector<std::string> warnings = SecurityWarnings(o);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("clear text on 0.0.0.0"));
  o.http_tls = {"cert.pem", "key.pem"};
  EXPECT_TRUE(SecurityWarnings(o).empty());
}

TEST(ValidateServerOptionsTest, NonLoopbackGrpcOrAdminNeedsTlsOrTokensOrOptIn) {
  ExpectInvalid(
      [](ServerOptions& o) {
        o.grpc = {"10.0.0.5", 50051};
      },
      absl::StatusCode::kFailedPrecondition, "--grpc_listen");
  ExpectInvalid(
      [](ServerOptions& o) {
        o.admin = {"0.0.0.0", 9090};
      },
      absl::StatusCode::kFailedPrecondition, "--admin_listen");
  ExpectInvalid(
      [](ServerOptions& o) {
        o.grpc = {"::", 50051};
      },
      absl::StatusCode::kFailedPrecondition, "--allow_insecure_remote");
  // TLS on the listener, or tokens, or the explicit opt-out.
  ExpectValid([](ServerOptions& o) {
    o.grpc = {"::", 50051};
    o.grpc_tls = {"cert.pem", "key.pem"};
  });
  ExpectValid([](ServerOptions& o) {
    o.grpc = {"::", 50051};
    o.admin = {"0.0.0.0", 9090};
    o.grpc_tokens_file = "tokens";
  });
  ExpectValid([](ServerOptions& o) {
    o.admin = {"0.0.0.0", 9090};
    o.admin_tls = {"cert.pem", "key.pem"};
  });
  ExpectValid([](ServerOptions& o) {
    o.http = {"0.0.0.0", 8080};
    o.grpc = {"::", 50051};
    o.allow_insecure_remote = true;
  });
  ExpectValid([](ServerOptions& o) {
    o.http = {"::1", 0};
    o.grpc = {"127.0.0.2", 0};
  });
  // TLS on the other listener does not count.
  ExpectInvalid(
      [](ServerOptions& o) {
        o.grpc = {"10.0.0.5", 50051};
        o.http_tls = {"cert.pem", "key.pem"};
        o.admin_tls = {"cert.pem", "key.pem"};
      },
      absl::StatusCode::kFailedPrecondition, "--grpc_listen");
}

TEST(ValidateServerOptionsTest, InsecureRemoteAndTokensWithoutTlsAreWarnedAbout) {
  ServerOptions o = ValidOptions();
  o.grpc = {"10.0.0.5", 50051};
  o.allow_insecure_remote = true;
  std::vector<std::string> warnings = SecurityWarnings(o);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("--allow_insecure_remote"));
  o.grpc_tokens_file = "tokens";
  warnings = SecurityWarnings(o);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("tokens cross the network in clear text"));
  o.grpc_tokens_file.clear();
  o.grpc_tls = {"cert.pem", "key.pem"};
  warnings = SecurityWarnings(o);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("neither client certificates nor access tokens"));
  o.grpc_tls_client_ca_file = "ca.pem";
  EXPECT_TRUE(SecurityWarnings(o).empty());
}

TEST(ValidateServerOptionsTest, TlsFilesComeInPairs) {
  for (const char* prefix : {"http_tls", "grpc_tls", "admin_tls"}) {
    SCOPED_TRACE(prefix);
    ExpectInvalid(
        [prefix](ServerOptions& o) {
          TlsFiles* tls = absl::string_view(prefix) == "http_tls"   ? &o.http_tls
                          : absl::string_view(prefix) == "grpc_tls" ? &o.grpc_tls
                                                                    : &o.admin_tls;
          tls->cert_file = "cert.pem";
        },
        absl::StatusCode::kInvalidArgument, absl::StrCat("--", prefix, "_key_file"));
  }
  ExpectInvalid([](ServerOptions& o) { o.grpc_tls_client_ca_file = "ca.pem"; },
                absl::StatusCode::kInvalidArgument, "--grpc_tls_client_ca_file requires");
}

TEST(ValidateServerOptionsTest, ProxyHeaderNeedsTrustedProxiesAndAnAllowList) {
  ExpectInvalid([](ServerOptions& o) { o.trusted_proxy_header = "X-Forwarded-For"; },
                absl::StatusCode::kInvalidArgument, "needs --trusted_proxies");
  ExpectInvalid(
      [](ServerOptions& o) {
        o.trusted_proxy_header = "X-Forwarded-For";
        o.trusted_proxies = "10.0.0.0/8";
      },
      absl::StatusCode::kInvalidArgument, "--webhook_allowed_ips_file");
  ExpectInvalid([](ServerOptions& o) { o.trusted_proxies = "10.0.0.0/8"; },
                absl::StatusCode::kInvalidArgument, "needs --trusted_proxy_header");
  ExpectInvalid(
      [](ServerOptions& o) {
        o.trusted_proxy_header = "X-Forwarded-For: evil";
        o.trusted_proxies = "10.0.0.0/8";
        o.webhook_allowed_ips_file = "ips";
      },
      absl::StatusCode::kInvalidArgument, "is not a header name");
  ExpectValid([](ServerOptions& o) {
    o.trusted_proxy_header = "X-Forwarded-For";
    o.trusted_proxies = "10.0.0.0/8";
    o.webhook_allowed_ips_file = "ips";
  });
}

TEST(ValidateServerOptionsTest, WebhookPathMustStartWithSlash) {
  for (const char* path : {"", "webhook", " /webhook"}) {
    SCOPED_TRACE(path);
    ExpectInvalid([path](ServerOptions& o) { o.webhook_path = path; },
                  absl::StatusCode::kInvalidArgument, "--webhook_path");
  }
  ExpectValid([](ServerOptions& o) { o.webhook_path = "/"; });
}

TEST(ValidateServerOptionsTest, MaxBodyAtLeastOneKiB) {
  ExpectInvalid([](ServerOptions& o) { o.max_body_bytes = 1023; },
                absl::StatusCode::kInvalidArgument, "--max_body_bytes");
  ExpectInvalid([](ServerOptions& o) { o.max_body_bytes = 0; }, absl::StatusCode::kInvalidArgument,
                "--max_body_bytes");
  ExpectValid([](ServerOptions& o) { o.max_body_bytes = 1024; });
}

TEST(ValidateServerOptionsTest, ThreadCountsAtLeastOne) {
  ExpectInvalid([](ServerOptions& o) { o.http_threads = 0; }, absl::StatusCode::kInvalidArgument,
                "--http_threads");
  ExpectInvalid([](ServerOptions& o) { o.http_threads = -3; }, absl::StatusCode::kInvalidArgument,
                "--http_threads");
  ExpectInvalid([](ServerOptions& o) { o.reader_threads = 0; }, absl::StatusCode::kInvalidArgument,
                "--reader_threads");
  ExpectValid([](ServerOptions& o) {
    o.http_threads = 1;
    o.reader_threads = 1;
  });
}

TEST(ValidateServerOptionsTest, HttpTimeoutsMustBePositive) {
  ExpectInvalid([](ServerOptions& o) { o.http_idle_timeout = absl::ZeroDuration(); },
                absl::StatusCode::kInvalidArgument, "--http_idle_timeout");
  ExpectInvalid([](ServerOptions& o) { o.http_request_timeout = absl::Seconds(-1); },
                absl::StatusCode::kInvalidArgument, "--http_request_timeout");
}

TEST(ValidateServerOptionsTest, CheckpointIntervalAtLeastHalfASecond) {
  ExpectInvalid([](ServerOptions& o) { o.checkpoint_interval = absl::Milliseconds(499); },
                absl::StatusCode::kInvalidArgument, "--checkpoint_interval");
  ExpectValid([](ServerOptions& o) { o.checkpoint_interval = absl::Milliseconds(500); });
}

TEST(ValidateServerOptionsTest, HubWindowNotEmpty) {
  ExpectInvalid([](ServerOptions& o) { o.hub_max_events = 0; }, absl::StatusCode::kInvalidArgument,
                "--hub_window_events");
  ExpectInvalid([](ServerOptions& o) { o.hub_max_bytes = 0; }, absl::StatusCode::kInvalidArgument,
                "--hub_window_bytes");
}

TEST(ValidateServerOptionsTest, DataDirRequired) {
  ExpectInvalid([](ServerOptions& o) { o.data_dir = ""; }, absl::StatusCode::kInvalidArgument,
                "--data_dir");
}

TEST(ValidateServerOptionsTest, ReportsTheFirstProblem) {
  ServerOptions options = ValidOptions();
  options.secrets.clear();
  options.signature_tolerance = absl::ZeroDuration();
  options.http = {"0.0.0.0", 80};
  EXPECT_EQ(ValidateServerOptions(options).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ValidateServerOptions(options).message()), HasSubstr("secret"));
}

}  // namespace
}  // namespace sidestream
