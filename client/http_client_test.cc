#include "client/http_client.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace sidestream {
namespace {

using ::testing::HasSubstr;

// A request as the test server received it.
struct ReceivedRequest {
  int connection = 0;  // 0 for the first accepted connection, 1 for the next...
  std::string request_line;
  HttpHeaders headers;
  std::string body;

  // The values of every header named `name` (case-insensitive).
  std::vector<std::string> Values(absl::string_view name) const {
    std::vector<std::string> values;
    for (const auto& [key, value] : headers) {
      if (absl::EqualsIgnoreCase(key, name)) values.push_back(value);
    }
    return values;
  }
};

// What the test server does with one request.
struct Reply {
  // Bytes written back verbatim; empty writes nothing.
  std::string raw;
  // Close the connection after writing `raw`.
  bool close = false;
};

// A tiny HTTP/1.1 server on plain POSIX sockets, bound to 127.0.0.1:0. It
// shares no code with the client under test. Connections are served one
// after the other on one thread; requests must carry Content-Length when
// they have a body (the client always does that).
class TestServer {
 public:
  explicit TestServer(std::function<Reply(const ReceivedRequest&)> handler)
      : handler_(std::move(handler)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(listen_fd_, 0) << strerror(errno);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
        << strerror(errno);
    EXPECT_EQ(listen(listen_fd_, 16), 0) << strerror(errno);
    socklen_t length = sizeof(address);
    EXPECT_EQ(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestServer() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      // Unblocks accept() and a recv() on an open connection.
      shutdown(listen_fd_, SHUT_RDWR);
      if (connection_fd_ >= 0) shutdown(connection_fd_, SHUT_RDWR);
    }
    thread_.join();
    close(listen_fd_);
  }

  std::string Url(absl::string_view target) const {
    return absl::StrCat("http://127.0.0.1:", port_, target);
  }
  uint16_t port() const { return port_; }

  std::vector<ReceivedRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  int connections_accepted() const {
    absl::MutexLock lock(&mu_);
    return connections_accepted_;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;  // Shut down by the destructor.
      int connection;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) {
          close(fd);
          return;
        }
        connection_fd_ = fd;
        connection = connections_accepted_++;
      }
      Serve(fd, connection);
      {
        absl::MutexLock lock(&mu_);
        connection_fd_ = -1;
      }
      close(fd);
    }
  }

  // Reads requests from `fd` until the client closes it or a reply says to
  // close.
  void Serve(int fd, int connection) {
    std::string buffer;
    for (;;) {
      size_t head_end;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadMore(fd, &buffer)) return;
      }
      ReceivedRequest request;
      request.connection = connection;
      std::vector<std::string> lines =
          absl::StrSplit(absl::string_view(buffer).substr(0, head_end), "\r\n");
      request.request_line = lines[0];
      size_t content_length = 0;
      for (size_t i = 1; i < lines.size(); ++i) {
        std::pair<std::string, std::string> field =
            absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
        field.second = std::string(absl::StripAsciiWhitespace(field.second));
        if (absl::EqualsIgnoreCase(field.first, "Content-Length")) {
          EXPECT_TRUE(absl::SimpleAtoi(field.second, &content_length)) << field.second;
        }
        request.headers.push_back(std::move(field));
      }
      buffer.erase(0, head_end + 4);
      while (buffer.size() < content_length) {
        if (!ReadMore(fd, &buffer)) return;
      }
      request.body = buffer.substr(0, content_length);
      buffer.erase(0, content_length);

      Reply reply = handler_(request);
      {
        absl::MutexLock lock(&mu_);
        requests_.push_back(std::move(request));
      }
      if (!WriteAll(fd, reply.raw) || reply.close) return;
    }
  }

  static bool ReadMore(int fd, std::string* buffer) {
    char chunk[4096];
    ssize_t n;
    do {
      n = recv(fd, chunk, sizeof(chunk), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buffer->append(chunk, static_cast<size_t>(n));
    return true;
  }

  static bool WriteAll(int fd, absl::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  const std::function<Reply(const ReceivedRequest&)> handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int connection_fd_ ABSL_GUARDED_BY(mu_) = -1;
  int connections_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
};

std::string Response(absl::string_view status_line, absl::string_view body,
                     absl::string_view extra_headers = "") {
  return absl::StrCat(status_line, "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                      "\r\n", body);
}

Reply Ok(absl::string_view body) { return Reply{Response("HTTP/1.1 200 OK", body)}; }

constexpr absl::Duration kTimeout = absl::Seconds(10);

TEST(HttpPostTest, SendsRequestLineHeadersAndBodyAndParsesResponse) {
  TestServer server([](const ReceivedRequest&) {
    return Reply{Response("HTTP/1.1 202 Accepted", R"({"ok":true})",
                          "Content-Type: application/json\r\nX-Request-Id: r-1\r\n")};
  });
  // Raw bytes with non-ASCII UTF-8: what is signed must arrive unchanged.
  const std::string body = "{\"id\":\"evt_1\",\"name\":\"Zo\xc3\xab \xe2\x82\xac\"}";
  absl::StatusOr<HttpResponse> response =
      HttpPost(server.Url("/webhook?src=test"),
               {{"Content-Type", "application/json; charset=utf-8"},
                {"User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
                {"Stripe-Signature", "t=1,v1=abc"}},
               body, kTimeout);
  ASSERT_TRUE(response.ok()) << response.status();

  EXPECT_EQ(response->status_code, 202);
  EXPECT_EQ(response->reason, "Accepted");
  ASSERT_NE(response->FindHeader("content-type"), nullptr);
  EXPECT_EQ(*response->FindHeader("content-type"), "application/json");
  ASSERT_NE(response->FindHeader("X-REQUEST-ID"), nullptr);
  EXPECT_EQ(*response->FindHeader("X-REQUEST-ID"), "r-1");
  EXPECT_EQ(response->FindHeader("X-Absent"), nullptr);
  EXPECT_EQ(response->body, R"({"ok":true})");

  std::vector<ReceivedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const ReceivedRequest& request = requests[0];
  EXPECT_EQ(request.request_line, "POST /webhook?src=test HTTP/1.1");
  EXPECT_THAT(request.Values("Host"),
              ::testing::ElementsAre(absl::StrCat("127.0.0.1:", server.port())));
  EXPECT_THAT(request.Values("Content-Type"),
              ::testing::ElementsAre("application/json; charset=utf-8"));
  EXPECT_THAT(request.Values("User-Agent"),
              ::testing::ElementsAre("Stripe/1.0 (+https://stripe.com/docs/webhooks)"));
  EXPECT_THAT(request.Values("Stripe-Signature"), ::testing::ElementsAre("t=1,v1=abc"));
  EXPECT_THAT(request.Values("Content-Length"), ::testing::ElementsAre(absl::StrCat(body.size())));
  EXPECT_THAT(request.Values("Connection"), ::testing::ElementsAre("close"));
  EXPECT_EQ(request.body, body);
}

TEST(HttpGetTest, SendsNoBody) {
  TestServer server([](const ReceivedRequest&) { return Ok("fine"); });
  absl::StatusOr<HttpResponse> response =
      HttpGet(server.Url("/healthz"), {{"Accept", "text/plain"}}, kTimeout);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(response->body, "fine");

  std::vector<ReceivedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].request_line, "GET /healthz HTTP/1.1");
  EXPECT_THAT(requests[0].Values("Accept"), ::testing::ElementsAre("text/plain"));
  EXPECT_TRUE(requests[0].Values("Content-Length").empty());
  EXPECT_EQ(requests[0].body, "");
}

TEST(HttpPostTest, CallerHostHeaderReplacesDerivedOne) {
  TestServer server([](const ReceivedRequest&) { return Ok(""); });
  ASSERT_TRUE(HttpPost(server.Url("/"), {{"Host", "hooks.example.com"}}, "x", kTimeout).ok());
  std::vector<ReceivedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(requests[0].Values("Host"), ::testing::ElementsAre("hooks.example.com"));
}

TEST(HttpPostTest, ChunkedResponseBodyIsJoined) {
  TestServer server([](const ReceivedRequest&) {
    return Reply{
        "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"};
  });
  absl::StatusOr<HttpResponse> response = HttpPost(server.Url("/webhook"), {}, "{}", kTimeout);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 400);
  EXPECT_EQ(response->body, "hello, world");
}

TEST(HttpPostTest, ConnectionRefusedIsUnavailable) {
  // A socket bound to a port but not listening: the kernel refuses
  // connections to it, and nobody else can take the port meanwhile.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);

  absl::StatusOr<HttpResponse> response =
      HttpPost(absl::StrCat("http://127.0.0.1:", port, "/webhook"), {}, "{}", kTimeout);
  close(fd);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
  EXPECT_THAT(response.status().message(), HasSubstr("refused"));
}

TEST(HttpPostTest, NoAnswerWithinTimeoutIsUnavailable) {
  // The server reads the request and never answers.
  TestServer server([](const ReceivedRequest&) { return Reply{}; });
  const absl::Duration timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> response = HttpPost(server.Url("/webhook"), {}, "{}", timeout);
  EXPECT_GE(absl::Now() - start, timeout);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("timed out"));
}

TEST(HttpPostTest, CloseWithoutAnswerOnFreshConnectionIsUnavailableAndNotRetried) {
  TestServer server([](const ReceivedRequest&) { return Reply{"", /*close=*/true}; });
  absl::StatusOr<HttpResponse> response = HttpPost(server.Url("/webhook"), {}, "{}", kTimeout);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("closed the connection"));
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(HttpPostTest, MalformedResponseIsInternal) {
  TestServer server([](const ReceivedRequest&) { return Reply{"SMTP ready\r\n\r\n", true}; });
  absl::StatusOr<HttpResponse> response = HttpPost(server.Url("/webhook"), {}, "{}", kTimeout);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(response.status().message(), HasSubstr("malformed HTTP response"));
}

TEST(HttpPostTest, HeaderWithLineBreakIsRejectedBeforeConnecting) {
  TestServer server([](const ReceivedRequest&) { return Ok(""); });
  absl::StatusOr<HttpResponse> response =
      HttpPost(server.Url("/"), {{"X-Evil", "a\r\nX-Injected: 1"}}, "", kTimeout);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.connections_accepted(), 0);
}

TEST(HttpPostTest, InvalidUrlIsInvalidArgument) {
  absl::StatusOr<HttpResponse> response =
      HttpPost("https://127.0.0.1:8443/webhook", {}, "{}", kTimeout);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(response.status().message(), HasSubstr("https is not supported"));
}

TEST(HttpConnectionTest, KeepAliveReusesOneConnection) {
  TestServer server([](const ReceivedRequest& request) { return Ok(request.body); });
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
      HttpConnection::Create(server.Url("/webhook"));
  ASSERT_TRUE(connection.ok()) << connection.status();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> response =
        (*connection)->Post({}, absl::StrCat("event ", i), kTimeout);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->body, absl::StrCat("event ", i));
  }
  EXPECT_EQ((*connection)->connections_opened(), 1);
  EXPECT_EQ(server.connections_accepted(), 1);
  std::vector<ReceivedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const ReceivedRequest& request : requests) {
    EXPECT_EQ(request.connection, 0);
    EXPECT_EQ(request.request_line, "POST /webhook HTTP/1.1");
    EXPECT_TRUE(request.Values("Connection").empty());
  }
}

TEST(HttpConnectionTest, ReconnectsAfterServerClosedIdleConnection) {
  // The server closes every connection after its answer without announcing
  // it, as an idle timeout does; the client either notices before sending
  // or resends the request on a fresh connection.
  TestServer server([](const ReceivedRequest& request) {
    return Reply{Response("HTTP/1.1 200 OK", request.body), /*close=*/true};
  });
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
      HttpConnection::Create(server.Url("/webhook"));
  ASSERT_TRUE(connection.ok()) << connection.status();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> response = (*connection)->Post({}, absl::StrCat(i), kTimeout);
    ASSERT_TRUE(response.ok()) << "request " << i << ": " << response.status();
    EXPECT_EQ(response->body, absl::StrCat(i));
  }
  EXPECT_EQ((*connection)->connections_opened(), 3);
  std::vector<ReceivedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(requests[i].connection, i);
    EXPECT_EQ(requests[i].body, absl::StrCat(i));
  }
}

TEST(HttpConnectionTest, HonoursConnectionCloseFromServer) {
  TestServer server([](const ReceivedRequest&) {
    return Reply{Response("HTTP/1.1 200 OK", "bye", "Connection: close\r\n"), /*close=*/true};
  });
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
      HttpConnection::Create(server.Url("/webhook"));
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_TRUE((*connection)->Post({}, "a", kTimeout).ok());
  ASSERT_TRUE((*connection)->Post({}, "b", kTimeout).ok());
  EXPECT_EQ((*connection)->connections_opened(), 2);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(HttpConnectionTest, CreateRejectsInvalidUrl) {
  EXPECT_EQ(HttpConnection::Create("127.0.0.1:8080/webhook").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseHttpUrlTest, AcceptsHostPortAndPath) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("http://127.0.0.1:8080/webhook");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->target, "/webhook");
}

TEST(ParseHttpUrlTest, DefaultsPortAndPath) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("HTTP://localhost");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "localhost");
  EXPECT_EQ(url->port, 80);
  EXPECT_EQ(url->target, "/");
}

TEST(ParseHttpUrlTest, KeepsQueryDropsFragmentAndUnbracketsIpv6) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("http://[::1]:9000?a=1#top");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 9000);
  EXPECT_EQ(url->target, "/?a=1");
}

TEST(ParseHttpUrlTest, RejectsWhatIsNotHttpHostPortPath) {
  for (absl::string_view bad :
       {"", "127.0.0.1:8080/webhook", "ftp://host/", "http://", "http:///path", "http://:80/",
        "http://host:/", "http://host:0/", "http://host:65536/", "http://host:80a/",
        "http://host:+80/", "http://user@host/", "http://host/a b", "http://::1:80/",
        "http://[::1/", "http://[::1]x/"}) {
    absl::StatusOr<HttpUrl> url = ParseHttpUrl(bad);
    EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument) << "\"" << bad << "\"";
  }
}

TEST(ParseHttpUrlTest, HttpsSaysItIsNotSupportedYet) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("https://hooks.example.com/webhook");
  EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(url.status().message(), HasSubstr("https is not supported yet"));
}

}  // namespace
}  // namespace sidestream
