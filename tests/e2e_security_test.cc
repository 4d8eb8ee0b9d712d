// End-to-end tests of the security features on the real binary: TLS and
// mutual TLS on gRPC, HTTPS on the webhook listener, access tokens and their
// scopes, the insecure-remote guard, the webhook source allow-list, and
// SIGHUP rotation of secrets and certificates under an open stream.
//
// Certificates are generated per test with the `openssl` command-line tool:
// two unrelated CAs, each with a server certificate for 127.0.0.1 and a
// client certificate. The HTTPS client is OpenSSL used directly, so the test
// controls trust and protocol versions.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include "server/verify/stripe_signature.h"
#include "sidestream/v1/admin_service.grpc.pb.h"
#include "sidestream/v1/events_service.grpc.pb.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_certs.h"

namespace sidestream::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSecretA[] = "whsec_rotation_secret_A";
constexpr char kSecretB[] = "whsec_rotation_secret_B";
constexpr char kAdminToken[] = "admin-token-0123456789abcdef0123456789";
constexpr char kBillingToken[] = "billing-token-0123456789abcdef012345678";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// --- gRPC clients -----------------------------------------------------------

std::shared_ptr<grpc::Channel> Channel(const std::string& target,
                                       std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  // A private subchannel pool: a new channel makes a new connection (and
  // handshake) instead of sharing another channel's.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, creds, args);
}

std::shared_ptr<grpc::ChannelCredentials> TlsCreds(const std::string& ca,
                                                   const std::string& client_cert = "",
                                                   const std::string& client_key = "") {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(ca);
  if (!client_cert.empty()) {
    options.pem_cert_chain = ReadFile(client_cert);
    options.pem_private_key = ReadFile(client_key);
  }
  return grpc::SslCredentials(options);
}

void Authorize(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

grpc::Status GetStats(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
  grpc::ClientContext ctx;
  Authorize(&ctx, token);
  v1::GetStatsResponse response;
  return v1::Admin::NewStub(channel)->GetStats(&ctx, v1::GetStatsRequest(), &response);
}

grpc::Status GetEvent(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                      const std::string& id) {
  grpc::ClientContext ctx;
  Authorize(&ctx, token);
  v1::GetEventRequest request;
  request.set_id(id);
  v1::GetEventResponse response;
  return v1::Events::NewStub(channel)->GetEvent(&ctx, request, &response);
}

grpc::Status ListEvents(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
                        const v1::EventFilter& filter, v1::ListEventsResponse* response) {
  grpc::ClientContext ctx;
  Authorize(&ctx, token);
  v1::ListEventsRequest request;
  *request.mutable_filter() = filter;
  return v1::Events::NewStub(channel)->ListEvents(&ctx, request, response);
}

// One Subscribe call read on a thread, over any channel, with a token.
class Stream {
 public:
  Stream(std::shared_ptr<grpc::Channel> channel, v1::SubscribeRequest request,
         const std::string& token = "")
      : stub_(v1::Events::NewStub(channel)) {
    if (!token.empty()) context_.AddMetadata("authorization", "Bearer " + token);
    thread_ = std::thread([this, request] {
      auto reader = stub_->Subscribe(&context_, request);
      v1::SubscribeResponse item;
      while (reader->Read(&item)) {
        absl::MutexLock lock(&mu_);
        if (item.has_event()) events_.push_back(item.event());
        if (item.has_caught_up()) caught_up_ = true;
      }
      grpc::Status status = reader->Finish();
      absl::MutexLock lock(&mu_);
      status_ = status;
      ended_ = true;
    });
  }
  ~Stream() {
    context_.TryCancel();
    thread_.join();
  }

  bool WaitForEvents(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto cond = [this, n]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= n || ended_; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout) && events_.size() >= n;
  }
  bool WaitForCaughtUp(absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return caught_up_ || ended_; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout) && caught_up_;
  }
  // The status the stream ended with; nullopt when it did not end in time.
  std::optional<grpc::Status> WaitForEnd(absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout)) return std::nullopt;
    return status_;
  }
  bool ended() {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  std::vector<std::string> ids() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const v1::Event& e : events_) ids.push_back(e.id());
    return ids;
  }

 private:
  std::unique_ptr<v1::Events::Stub> stub_;
  grpc::ClientContext context_;
  absl::Mutex mu_;
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  bool caught_up_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

v1::SubscribeRequest Latest(v1::EventFilter filter = {}) {
  v1::SubscribeRequest request;
  request.set_position(v1::START_POSITION_LATEST);
  *request.mutable_filter() = std::move(filter);
  return request;
}

// --- HTTPS client (OpenSSL directly) ----------------------------------------

struct HttpsResult {
  std::string error;  // empty when the exchange completed
  int status = 0;
  std::string body;
  std::string server_subject;  // the certificate the server presented
};

int PortOf(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) << address;
  return port;
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "handshake failed" : out;
}

// Sends `request` (complete HTTP/1.1 bytes, "Connection: close") over TLS,
// trusting only `ca_file` and checking the certificate is for 127.0.0.1.
// `max_version` (such as TLS1_1_VERSION) caps the protocol, with the
// client's own security level lowered so that only the server can refuse.
HttpsResult HttpsExchange(const std::string& address, const std::string& ca_file,
                          const std::string& request, int max_version = 0) {
  HttpsResult result;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(PortOf(address)));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    result.error = "connect failed";
    return result;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
  if (max_version != 0) {
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
  }
  SSL* ssl = SSL_new(ctx);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
  SSL_set_fd(ssl, fd);
  ERR_clear_error();
  if (SSL_connect(ssl) != 1) {
    result.error = OpenSslErrors();
  } else {
    if (X509* cert = SSL_get1_peer_certificate(ssl)) {
      char name[256] = {};
      X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof(name));
      result.server_subject = name;
      X509_free(cert);
    }
    std::string response;
    if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) <= 0) {
      result.error = "write failed";
    } else {
      char buf[4096];
      int n;
      while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) response.append(buf, n);
      const size_t split = response.find("\r\n\r\n");
      if (!absl::StartsWith(response, "HTTP/1.1 ") || split == std::string::npos ||
          !absl::SimpleAtoi(response.substr(9, 3), &result.status)) {
        result.error = "no HTTP response";
      } else {
        result.body = response.substr(split + 4);
      }
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return result;
}

std::string WebhookRequest(const std::string& body, const std::string& secret) {
  return absl::StrCat(
      "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Stripe-Signature: ",
      MakeStripeSignatureHeader({secret}, absl::ToUnixSeconds(absl::Now()), body),
      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

// --- fixture ----------------------------------------------------------------

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("security");
    ASSERT_FALSE(dir_.empty());
  }

  void MakeCertificates() {
    absl::StatusOr<Pki> one = MakePki(dir_, "one");
    ASSERT_TRUE(one.ok()) << one.status();
    one_ = *one;
    absl::StatusOr<Pki> two = MakePki(dir_, "two");
    ASSERT_TRUE(two.ok()) << two.status();
    two_ = *two;
  }

  // Starts the server with the secrets in a file (so that SIGHUP can
  // rotate them) and `args`.
  void StartServer(std::vector<std::string> args,
                   const std::string& secrets_file_text = absl::StrCat("a=", kSecretA, "\n")) {
    secrets_file_ = dir_ + "/secrets";
    WriteFile(secrets_file_, secrets_file_text);
    ServerProcessOptions options;
    options.data_dir = dir_ + "/data";
    options.secrets = "";
    options.args = std::move(args);
    options.args.push_back("--webhook_secrets_file=" + secrets_file_);
    options.args.push_back("--log_level=debug");
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Sends SIGHUP and waits for the server to log the outcome. The log is
  // the only signal that the reload happened; it is polled with a deadline.
  void Reload(const std::string& expected_log = "reload: webhook secrets") {
    const size_t before = Count(server_->StderrText(), expected_log);
    ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (Count(server_->StderrText(), expected_log) <= before) {
      ASSERT_LT(absl::Now(), deadline) << "no \"" << expected_log << "\" after SIGHUP:\n"
                                       << server_->StderrText();
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  static size_t Count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
      ++n;
    }
    return n;
  }

  int PostPlain(const std::string& id, const std::string& secret, std::string* body = nullptr,
                const std::string& type = "invoice.paid", const std::string& account = "acct_1",
                bool live = true) {
    absl::StatusOr<HttpResponse> r =
        PostWebhook(server_->webhook_url(), SampleBody(type, account, live, id), secret);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return 0;
    if (body != nullptr) *body = r->body;
    return r->status_code;
  }

  std::string dir_;
  std::string secrets_file_;
  Pki one_, two_;
  std::unique_ptr<ServerProcess> server_;
};

// --- gRPC TLS ---------------------------------------------------------------

TEST_F(SecurityTest, GrpcTlsServesClientsThatTrustItsCaAndNoOthers) {
  MakeCertificates();
  StartServer(
      {"--grpc_tls_cert_file=" + one_.server_cert, "--grpc_tls_key_file=" + one_.server_key});
  EXPECT_TRUE(GetStats(Channel(server_->grpc_address(), TlsCreds(one_.ca)), "").ok());

  grpc::Status wrong_ca = GetStats(Channel(server_->grpc_address(), TlsCreds(two_.ca)), "");
  EXPECT_EQ(wrong_ca.error_code(), grpc::StatusCode::UNAVAILABLE) << wrong_ca.error_message();
  grpc::Status plain =
      GetStats(Channel(server_->grpc_address(), grpc::InsecureChannelCredentials()), "");
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();
}

TEST_F(SecurityTest, GrpcMutualTlsNeedsAClientCertificateFromTheClientCa) {
  MakeCertificates();
  StartServer({"--grpc_tls_cert_file=" + one_.server_cert, "--grpc_tls_key_file=" + one_.server_key,
               "--grpc_tls_client_ca_file=" + one_.ca});
  const std::string target = server_->grpc_address();
  EXPECT_TRUE(
      GetStats(Channel(target, TlsCreds(one_.ca, one_.client_cert, one_.client_key)), "").ok());

  grpc::Status no_cert = GetStats(Channel(target, TlsCreds(one_.ca)), "");
  EXPECT_EQ(no_cert.error_code(), grpc::StatusCode::UNAVAILABLE) << no_cert.error_message();
  grpc::Status other_ca =
      GetStats(Channel(target, TlsCreds(one_.ca, two_.client_cert, two_.client_key)), "");
  EXPECT_EQ(other_ca.error_code(), grpc::StatusCode::UNAVAILABLE) << other_ca.error_message();
}

// --- HTTPS webhooks ---------------------------------------------------------

TEST_F(SecurityTest, HttpsWebhookListenerAcceptsTls12AndLaterOnly) {
  MakeCertificates();
  StartServer(
      {"--http_tls_cert_file=" + one_.server_cert, "--http_tls_key_file=" + one_.server_key});
  const std::string body = SampleBody("invoice.paid", "acct_1", true, "evt_https_1");

  HttpsResult ok = HttpsExchange(server_->http_address(), one_.ca, WebhookRequest(body, kSecretA));
  ASSERT_EQ(ok.error, "");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_THAT(ok.server_subject, HasSubstr("one server"));

  // A client that does not trust the certificate cannot complete the handshake.
  HttpsResult untrusted =
      HttpsExchange(server_->http_address(), two_.ca, WebhookRequest(body, kSecretA));
  EXPECT_THAT(untrusted.error, HasSubstr("certificate verify failed"));

  // TLS 1.1 is refused by the server; the same client capped at 1.2 works.
  HttpsResult old = HttpsExchange(server_->http_address(), one_.ca, WebhookRequest(body, kSecretA),
                                  TLS1_1_VERSION);
  EXPECT_THAT(old.error, HasSubstr("alert protocol version"));  // the server's alert
  EXPECT_EQ(old.status, 0);
  HttpsResult tls12 = HttpsExchange(server_->http_address(), one_.ca,
                                    WebhookRequest(body, kSecretA), TLS1_2_VERSION);
  EXPECT_EQ(tls12.error, "");
  EXPECT_EQ(tls12.status, 200);

  // Plain HTTP to the HTTPS port gets no HTTP answer, and the server lives on.
  absl::StatusOr<HttpResponse> plain = PostWebhook(server_->webhook_url(), body, kSecretA);
  EXPECT_FALSE(plain.ok() && plain->status_code == 200);
  HttpsResult again =
      HttpsExchange(server_->http_address(), one_.ca, WebhookRequest(body, kSecretA));
  EXPECT_EQ(again.status, 200) << again.error;
}

// --- access tokens ----------------------------------------------------------

class TokenTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    const std::string tokens = dir_ + "/tokens";
    WriteFile(tokens, absl::StrCat("# test tokens\n", "name=ops token=", kAdminToken,
                                   " admin=true\n", "name=billing token=", kBillingToken,
                                   " accounts=acct_1 types=invoice.* livemode=live\n"));
    StartServer({"--grpc_tokens_file=" + tokens});
    channel_ = Channel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  }

  static v1::EventFilter BillingFilter() {
    v1::EventFilter f;
    f.add_accounts("acct_1");
    f.add_types("invoice.*");
    f.set_livemode(v1::LIVEMODE_LIVE);
    return f;
  }

  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(TokenTest, MissingOrWrongTokenIsUnauthenticated) {
  for (const std::string& token :
       {std::string(), std::string("not-a-configured-token-xxxxxxxxxxxx")}) {
    SCOPED_TRACE(token);
    EXPECT_EQ(GetStats(channel_, token).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(GetEvent(channel_, token, "evt_x").error_code(), grpc::StatusCode::UNAUTHENTICATED);
    v1::ListEventsResponse list;
    EXPECT_EQ(ListEvents(channel_, token, {}, &list).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    Stream stream(channel_, Latest(), token);
    std::optional<grpc::Status> end = stream.WaitForEnd();
    ASSERT_TRUE(end.has_value());
    EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_F(TokenTest, HealthNeedsNoToken) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = grpc::health::v1::Health::NewStub(channel_)->Check(&ctx, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(TokenTest, AdminNeedsAnAdminToken) {
  EXPECT_TRUE(GetStats(channel_, kAdminToken).ok());
  grpc::Status billing = GetStats(channel_, kBillingToken);
  EXPECT_EQ(billing.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(billing.error_message(), HasSubstr("\"billing\""));
}

TEST_F(TokenTest, ScopedTokenSubscribesWithinItsScopeAndGetsOnlyThoseEvents) {
  Stream billing(channel_, Latest(BillingFilter()), kBillingToken);
  Stream ops(channel_, Latest(), kAdminToken);
  ASSERT_TRUE(billing.WaitForCaughtUp());
  ASSERT_TRUE(ops.WaitForCaughtUp());
  EXPECT_EQ(PostPlain("evt_in_scope", kSecretA, nullptr, "invoice.paid", "acct_1", true), 200);
  EXPECT_EQ(PostPlain("evt_other_account", kSecretA, nullptr, "invoice.paid", "acct_2", true), 200);
  EXPECT_EQ(PostPlain("evt_test_mode", kSecretA, nullptr, "invoice.paid", "acct_1", false), 200);
  EXPECT_EQ(PostPlain("evt_other_type", kSecretA, nullptr, "charge.succeeded", "acct_1", true),
            200);
  ASSERT_TRUE(ops.WaitForEvents(4));
  ASSERT_TRUE(billing.WaitForEvents(1));
  // Everything ops saw has been delivered, so billing's one event is final.
  EXPECT_THAT(billing.ids(), ::testing::ElementsAre("evt_in_scope"));
}

TEST_F(TokenTest, FiltersBeyondTheScopeArePermissionDeniedNamingTheToken) {
  std::vector<v1::EventFilter> beyond;
  beyond.push_back([] {  // omits accounts: every account
    v1::EventFilter f = BillingFilter();
    f.clear_accounts();
    return f;
  }());
  beyond.push_back([] {
    v1::EventFilter f = BillingFilter();
    f.add_accounts("acct_2");
    return f;
  }());
  beyond.push_back([] {
    v1::EventFilter f = BillingFilter();
    f.add_types("charge.succeeded");
    return f;
  }());
  beyond.push_back([] {
    v1::EventFilter f = BillingFilter();
    f.set_livemode(v1::LIVEMODE_ANY);
    return f;
  }());
  for (const v1::EventFilter& filter : beyond) {
    SCOPED_TRACE(filter.ShortDebugString());
    Stream stream(channel_, Latest(filter), kBillingToken);
    std::optional<grpc::Status> end = stream.WaitForEnd();
    ASSERT_TRUE(end.has_value());
    EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(end->error_message(), HasSubstr("token \"billing\""));
    v1::ListEventsResponse list;
    EXPECT_EQ(ListEvents(channel_, kBillingToken, filter, &list).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // The admin token has no scope limits.
  v1::ListEventsResponse list;
  EXPECT_TRUE(ListEvents(channel_, kAdminToken, beyond[0], &list).ok());
}

TEST_F(TokenTest, GetEventOutsideTheScopeReadsAsNotFound) {
  ASSERT_EQ(PostPlain("evt_mine", kSecretA, nullptr, "invoice.paid", "acct_1", true), 200);
  ASSERT_EQ(PostPlain("evt_theirs", kSecretA, nullptr, "invoice.paid", "acct_2", true), 200);
  EXPECT_TRUE(GetEvent(channel_, kBillingToken, "evt_mine").ok());
  grpc::Status theirs = GetEvent(channel_, kBillingToken, "evt_theirs");
  grpc::Status missing = GetEvent(channel_, kBillingToken, "evt_never_stored");
  EXPECT_EQ(theirs.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(absl::StrReplaceAll(theirs.error_message(), {{"evt_theirs", "ID"}}),
            absl::StrReplaceAll(missing.error_message(), {{"evt_never_stored", "ID"}}));
  EXPECT_TRUE(GetEvent(channel_, kAdminToken, "evt_theirs").ok());
  v1::ListEventsResponse list;
  ASSERT_TRUE(ListEvents(channel_, kBillingToken, BillingFilter(), &list).ok());
  ASSERT_EQ(list.events_size(), 1);
  EXPECT_EQ(list.events(0).id(), "evt_mine");
}

// --- secure by default ------------------------------------------------------

TEST_F(SecurityTest, RemoteGrpcWithoutTlsOrTokensRefusesToStart) {
  const std::string data = dir_ + "/data";
  const std::vector<std::string> env = {"SIDESTREAM_WEBHOOK_SECRETS=a=whsec_x"};
  for (const std::string& listen :
       {std::string("--grpc_listen=0.0.0.0:0"), std::string("--admin_listen=0.0.0.0:0")}) {
    SCOPED_TRACE(listen);
    ServerProcess::Exit exit = ServerProcess::RunToExit(
        {"--data_dir=" + data, "--http_listen=127.0.0.1:0", "--grpc_listen=127.0.0.1:0",
         "--admin_listen=127.0.0.1:0", listen},
        env, absl::Seconds(30));
    EXPECT_NE(exit.code, 0);
    EXPECT_THAT(exit.stderr_text, HasSubstr("--allow_insecure_remote"));
    EXPECT_THAT(exit.stderr_text, HasSubstr("neither TLS nor access tokens"));
  }
}

TEST_F(SecurityTest, InsecureRemoteOptOutStartsWithAWarning) {
  StartServer({"--grpc_listen=0.0.0.0:0", "--allow_insecure_remote"});
  EXPECT_THAT(server_->StderrText(), HasSubstr("anyone who can reach it can read every event"));
}

TEST_F(SecurityTest, RemoteWebhookListenerWithoutTlsStartsWithAWarning) {
  ServerProcessOptions options;
  options.data_dir = dir_ + "/data";
  options.http_listen = "0.0.0.0:0";
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT((*server)->StderrText(), HasSubstr("webhooks are received in clear text"));
}

// --- webhook source allow-list ----------------------------------------------

TEST_F(SecurityTest, AllowListRefusesOtherSourcesAndIsReloadedOnSighup) {
  const std::string ips = dir_ + "/ips";
  WriteFile(ips, "# Stripe's addresses would go here\n10.0.0.0/8\n");
  StartServer({"--webhook_allowed_ips_file=" + ips});
  std::string body;
  EXPECT_EQ(PostPlain("evt_refused", kSecretA, &body), 403);
  EXPECT_THAT(body, HasSubstr("\"error\":\"source_not_allowed\""));
  EXPECT_THAT(body, HasSubstr("127.0.0.1"));

  WriteFile(ips, "10.0.0.0/8\n127.0.0.1\n");
  Reload("reload: webhook allow-list");
  EXPECT_EQ(PostPlain("evt_allowed", kSecretA), 200);
}

TEST_F(SecurityTest, ProxyHeaderIsBelievedFromTrustedProxiesOnly) {
  const std::string ips = dir_ + "/ips";
  WriteFile(ips, "3.18.12.63\n");
  StartServer({"--webhook_allowed_ips_file=" + ips, "--trusted_proxies=127.0.0.0/8",
               "--trusted_proxy_header=X-Forwarded-For"});
  auto post = [&](const std::string& forwarded_for, const std::string& id) {
    const std::string body = SampleBody("invoice.paid", "acct_1", true, id);
    HttpHeaders headers = {
        {"Content-Type", "application/json"},
        {"Stripe-Signature",
         MakeStripeSignatureHeader({kSecretA}, absl::ToUnixSeconds(absl::Now()), body)}};
    if (!forwarded_for.empty()) headers.emplace_back("X-Forwarded-For", forwarded_for);
    absl::StatusOr<HttpResponse> r =
        HttpPost(server_->webhook_url(), headers, body, absl::Seconds(30));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->status_code : 0;
  };
  EXPECT_EQ(post("3.18.12.63", "evt_proxy_1"), 200);
  // The right-most entry is what the trusted proxy saw; the rest is the
  // client's own claim.
  EXPECT_EQ(post("3.18.12.63, 6.6.6.6", "evt_proxy_2"), 403);
  EXPECT_EQ(post("6.6.6.6, 3.18.12.63", "evt_proxy_3"), 200);
  EXPECT_EQ(post("", "evt_proxy_4"), 403);
}

// --- rotation ---------------------------------------------------------------

TEST_F(SecurityTest, SighupRotatesSecretsWithoutDroppingAStream) {
  StartServer({});
  const auto channel = Channel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  Stream stream(channel, Latest());
  ASSERT_TRUE(stream.WaitForCaughtUp());
  EXPECT_EQ(PostPlain("evt_a_only", kSecretA), 200);
  EXPECT_EQ(PostPlain("evt_b_too_early", kSecretB), 400);

  // During the roll both secrets verify.
  WriteFile(secrets_file_, absl::StrCat("a=", kSecretA, "\nb=", kSecretB, "\n"));
  Reload();
  EXPECT_THAT(server_->StderrText(), ::testing::Not(HasSubstr(kSecretB)));
  EXPECT_EQ(PostPlain("evt_b_during_roll", kSecretB), 200);
  EXPECT_EQ(PostPlain("evt_a_during_roll", kSecretA), 200);

  // Then only the new one.
  WriteFile(secrets_file_, absl::StrCat("b=", kSecretB, "\n"));
  Reload();
  EXPECT_EQ(PostPlain("evt_a_retired", kSecretA), 400);
  EXPECT_EQ(PostPlain("evt_b_only", kSecretB), 200);

  ASSERT_TRUE(stream.WaitForEvents(4));
  EXPECT_THAT(stream.ids(), ::testing::ElementsAre("evt_a_only", "evt_b_during_roll",
                                                   "evt_a_during_roll", "evt_b_only"));
  EXPECT_FALSE(stream.ended());
}

TEST_F(SecurityTest, BadReloadKeepsThePreviousSettings) {
  const std::string tokens = dir_ + "/tokens";
  WriteFile(tokens, absl::StrCat("name=ops token=", kAdminToken, " admin=true\n"));
  StartServer({"--grpc_tokens_file=" + tokens});
  WriteFile(tokens, "name=ops token=short\n");
  WriteFile(secrets_file_, absl::StrCat("b=", kSecretB, "\n"));
  Reload("reload failed");
  EXPECT_THAT(server_->StderrText(), HasSubstr("line 1: token must be"));
  // Neither the new secrets nor the broken tokens took effect.
  EXPECT_EQ(PostPlain("evt_still_a", kSecretA), 200);
  const auto channel = Channel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  EXPECT_TRUE(GetStats(channel, kAdminToken).ok());
}

TEST_F(SecurityTest, CertificatesRotateWithoutDroppingAStream) {
  MakeCertificates();
  // The certificate files the server reads; they start as CA one's.
  const std::string cert = dir_ + "/live-cert.pem";
  const std::string key = dir_ + "/live-key.pem";
  WriteFile(cert, ReadFile(one_.server_cert));
  WriteFile(key, ReadFile(one_.server_key));
  StartServer({"--grpc_tls_cert_file=" + cert, "--grpc_tls_key_file=" + key,
               "--http_tls_cert_file=" + cert, "--http_tls_key_file=" + key,
               "--tls_reload_interval=1s"});
  Stream stream(Channel(server_->grpc_address(), TlsCreds(one_.ca)), Latest());
  ASSERT_TRUE(stream.WaitForCaughtUp());
  const std::string body1 = SampleBody("invoice.paid", "acct_1", true, "evt_before_rotation");
  HttpsResult before =
      HttpsExchange(server_->http_address(), one_.ca, WebhookRequest(body1, kSecretA));
  ASSERT_EQ(before.status, 200) << before.error;
  EXPECT_THAT(before.server_subject, HasSubstr("one server"));

  // Rotate to CA two's certificate (key first, then certificate: each file
  // is replaced atomically, the pair is briefly inconsistent, as in real
  // rotations; the server keeps the old pair until the new one matches).
  WriteFile(key, ReadFile(two_.server_key));
  WriteFile(cert, ReadFile(two_.server_cert));
  Reload("certificate");

  // HTTPS: new connections get the new certificate right after SIGHUP.
  const std::string body2 = SampleBody("invoice.paid", "acct_1", true, "evt_after_rotation");
  HttpsResult after =
      HttpsExchange(server_->http_address(), two_.ca, WebhookRequest(body2, kSecretA));
  ASSERT_EQ(after.status, 200) << after.error;
  EXPECT_THAT(after.server_subject, HasSubstr("two server"));
  EXPECT_NE(HttpsExchange(server_->http_address(), one_.ca, WebhookRequest(body2, kSecretA)).error,
            "");

  // gRPC: the library's file watcher picks the files up within
  // --tls_reload_interval; there is no event to wait on, so new channels
  // are tried until one trusting only CA two connects (with a deadline).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  grpc::Status status;
  do {
    status = GetStats(Channel(server_->grpc_address(), TlsCreds(two_.ca)), "");
    if (!status.ok()) absl::SleepFor(absl::Milliseconds(200));
  } while (!status.ok() && absl::Now() < deadline);
  EXPECT_TRUE(status.ok()) << status.error_message();

  // The stream opened under the old certificate is still there and live.
  ASSERT_TRUE(stream.WaitForEvents(2));
  EXPECT_THAT(stream.ids(), ::testing::ElementsAre("evt_before_rotation", "evt_after_rotation"));
  EXPECT_FALSE(stream.ended());
}

}  // namespace
}  // namespace sidestream::testing
