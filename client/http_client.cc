// The only file of the client side that includes Boost.Beast: it is slow to
// compile, and the rest of the client only needs strings in and out.
//
// Each request runs Beast's asynchronous operations on a private io_context
// until they complete; the tcp_stream's expiry, set to the request's
// deadline, makes a slow connect, write or read complete with a timeout
// error. That gives a synchronous call with one deadline for the whole
// exchange, which Beast's synchronous operations cannot do.
#include "client/http_client.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace sidestream {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Larger responses are refused (INTERNAL): Sidestream answers webhooks with
// a few bytes, and a test server must not make a load generator swap.
constexpr uint64_t kMaxResponseBodyBytes = 64 << 20;

// Longer timeouts are shortened to this, so that the deadline arithmetic on
// steady_clock cannot overflow (absl::InfiniteDuration() is allowed).
constexpr absl::Duration kMaxTimeout = absl::Hours(24 * 365);

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::StrContains("!#$%&'*+-.^_`|~", c);
}

bool HasControlOrSpace(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Header names must be tokens and values must not contain CR, LF or NUL:
// otherwise a caller's string could inject extra header lines.
absl::Status ValidateHeaders(const HttpHeaders& headers) {
  for (const auto& [name, value] : headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid HTTP header name \"", absl::CEscape(name), "\""));
    }
    if (value.find_first_of("\r\n\0", 0, 3) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("HTTP header ", name, " has a line break or NUL in its value"));
    }
  }
  return absl::OkStatus();
}

bool HasHeader(const HttpHeaders& headers, absl::string_view name) {
  for (const auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, name)) return true;
  }
  return false;
}

// "host:port", with brackets around an IPv6 address.
std::string HostPort(const HttpUrl& url) {
  if (absl::StrContains(url.host, ':')) return absl::StrCat("[", url.host, "]:", url.port);
  return absl::StrCat(url.host, ":", url.port);
}

absl::Status NetworkError(absl::string_view what, const HttpUrl& url, const beast::error_code& ec,
                          absl::Duration timeout) {
  if (ec == beast::error::timeout) {
    return absl::UnavailableError(absl::StrCat("timed out after ", absl::FormatDuration(timeout),
                                               " ", what, " ", HostPort(url)));
  }
  return absl::UnavailableError(absl::StrCat(what, " ", HostPort(url), ": ", ec.message()));
}

absl::Status ReadError(const HttpUrl& url, const beast::error_code& ec, absl::Duration timeout) {
  if (ec == http::error::end_of_stream) {
    return absl::UnavailableError(
        absl::StrCat(HostPort(url), " closed the connection without answering"));
  }
  if (ec == http::error::partial_message) {
    return absl::UnavailableError(
        absl::StrCat(HostPort(url), " closed the connection in the middle of its response"));
  }
  if (ec == http::error::body_limit) {
    return absl::InternalError(absl::StrCat("response from ", HostPort(url), " is larger than ",
                                            kMaxResponseBodyBytes, " bytes"));
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return absl::InternalError(
        absl::StrCat("malformed HTTP response from ", HostPort(url), ": ", ec.message()));
  }
  return NetworkError("reading the response from", url, ec, timeout);
}

// Whether an idle keep-alive connection can carry another request: the peer
// has not closed or reset it, and has sent nothing unasked. Peeks without
// blocking.
bool IdleConnectionUsable(tcp::socket& socket) {
  beast::error_code ec;
  socket.non_blocking(true, ec);
  if (ec) return false;
  char byte;
  socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
  beast::error_code ignored;
  socket.non_blocking(false, ignored);
  return ec == asio::error::would_block;
}

}  // namespace

const std::string* HttpResponse::FindHeader(absl::string_view name) const {
  for (const auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, name)) return &header.second;
  }
  return nullptr;
}

absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url) {
  auto invalid = [url](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid URL \"", absl::CHexEscape(url), "\": ", why, " (expected http://host:port/path)"));
  };
  absl::string_view rest = url;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "https is not supported yet: \"", url,
        "\"; use http:// (for example to the ingress directly, or to a local TLS proxy)"));
  }
  if (!absl::StartsWithIgnoreCase(rest, "http://")) return invalid("the scheme must be http://");
  rest.remove_prefix(7);

  size_t authority_end = rest.find_first_of("/?#");
  absl::string_view authority = rest.substr(0, authority_end);
  absl::string_view target =
      authority_end == absl::string_view::npos ? "" : rest.substr(authority_end);
  target = target.substr(0, target.find('#'));  // A fragment is never sent.
  if (authority.empty()) return invalid("no host");
  if (absl::StrContains(authority, '@')) return invalid("user names are not supported");
  if (HasControlOrSpace(authority) || HasControlOrSpace(target)) {
    return invalid("spaces and control characters are not allowed");
  }

  HttpUrl out;
  absl::string_view port_text;
  bool has_port = false;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos || close == 1) return invalid("bad IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid("junk after the IPv6 address");
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    if (absl::StrContains(port_text, ':')) return invalid("IPv6 addresses need brackets");
  }
  if (out.host.empty()) return invalid("no host");
  if (has_port) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535 ||
        !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit)) {
      return invalid("the port must be a number from 1 to 65535");
    }
    out.port = static_cast<uint16_t>(port);
  }
  if (target.empty() || target.front() == '?') {
    out.target = absl::StrCat("/", target);
  } else {
    out.target = std::string(target);
  }
  return out;
}

namespace {

// One TCP connection to one URL and the io_context that drives it.
struct BeastConnection {
  explicit BeastConnection(HttpUrl url) : url(std::move(url)), stream(ioc) {}
  ~BeastConnection() {
    if (open) Close();
  }

  // Sends one request and reads its response, reconnecting as the class
  // comment describes. `keep_alive` false asks the server to close the
  // connection after answering.
  absl::StatusOr<HttpResponse> RoundTrip(http::verb method, const HttpHeaders& headers,
                                         absl::string_view body, absl::Duration timeout,
                                         bool keep_alive);
  absl::Status Connect(std::chrono::steady_clock::time_point deadline, absl::Duration timeout);
  void Close();

  // Runs the operations started on `ioc` to completion. They are bounded by
  // the stream's expiry, so this returns by the deadline.
  void RunToCompletion() {
    ioc.restart();
    ioc.run();
  }

  const HttpUrl url;
  asio::io_context ioc;
  beast::tcp_stream stream;
  // Bytes read past the end of the last response; reused by the next read.
  beast::flat_buffer buffer;
  bool open = false;
  int connections_opened = 0;
};

}  // namespace

struct HttpConnection::Impl {
  explicit Impl(HttpUrl url) : connection(std::move(url)) {}
  BeastConnection connection;
};

absl::Status BeastConnection::Connect(std::chrono::steady_clock::time_point deadline,
                                      absl::Duration timeout) {
  beast::error_code ec;
  std::vector<tcp::endpoint> endpoints;
  asio::ip::address address = asio::ip::make_address(url.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, url.port);
  } else {
    // Names go through the system resolver, which is synchronous and bounded
    // by its own timeouts (resolv.conf), not by `timeout`.
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot resolve host \"", url.host, "\": ", ec.message()));
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }

  stream.expires_at(deadline);
  stream.async_connect(
      endpoints, [&ec](const beast::error_code& result, const tcp::endpoint&) { ec = result; });
  RunToCompletion();
  if (ec) {
    Close();
    return NetworkError("connecting to", url, ec, timeout);
  }
  beast::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  open = true;
  ++connections_opened;
  return absl::OkStatus();
}

void BeastConnection::Close() {
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.close();
  buffer.clear();
  open = false;
}

absl::StatusOr<HttpResponse> BeastConnection::RoundTrip(http::verb method,
                                                        const HttpHeaders& headers,
                                                        absl::string_view body,
                                                        absl::Duration timeout, bool keep_alive) {
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the HTTP timeout must be positive");
  }
  if (absl::Status valid = ValidateHeaders(headers); !valid.ok()) return valid;
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(std::min(timeout, kMaxTimeout));

  http::request<http::string_body> request(method, url.target, 11);
  if (!HasHeader(headers, "Host")) {
    // The default port is left out, as browsers do; some servers compare.
    request.set(http::field::host,
                url.port == 80 && !absl::StrContains(url.host, ':') ? url.host : HostPort(url));
  }
  for (const auto& [name, value] : headers) request.insert(name, value);
  request.body() = std::string(body);
  request.keep_alive(keep_alive);
  request.prepare_payload();

  // At most two attempts: the second only when a reused connection proved
  // dead before the server answered anything.
  for (int attempt = 1;; ++attempt) {
    if (open && (buffer.size() > 0 || !IdleConnectionUsable(stream.socket()))) Close();
    const bool reused = open;
    if (!open) {
      if (absl::Status connected = Connect(deadline, timeout); !connected.ok()) return connected;
    }
    const bool may_retry = reused && attempt == 1;

    beast::error_code ec;
    stream.expires_at(deadline);
    http::async_write(stream, request,
                      [&ec](const beast::error_code& result, size_t) { ec = result; });
    RunToCompletion();
    if (ec) {
      Close();
      if (may_retry && ec != beast::error::timeout) continue;
      return NetworkError("sending the request to", url, ec, timeout);
    }

    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBodyBytes);
    http::async_read(stream, buffer, parser,
                     [&ec](const beast::error_code& result, size_t) { ec = result; });
    RunToCompletion();
    if (ec) {
      const bool answered_something = parser.got_some();
      Close();
      if (may_retry && !answered_something && ec != beast::error::timeout) continue;
      return ReadError(url, ec, timeout);
    }

    http::response<http::string_body> message = parser.release();
    HttpResponse response;
    response.status_code = static_cast<int>(message.result_int());
    response.reason = std::string(message.reason());
    for (const auto& field : message) {
      response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    response.body = std::move(message.body());
    if (!keep_alive || !message.keep_alive()) Close();
    return response;
  }
}

HttpConnection::HttpConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpConnection::~HttpConnection() = default;

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::Create(absl::string_view url) {
  absl::StatusOr<HttpUrl> parsed = ParseHttpUrl(url);
  if (!parsed.ok()) return parsed.status();
  return std::unique_ptr<HttpConnection>(
      new HttpConnection(std::make_unique<Impl>(*std::move(parsed))));
}

absl::StatusOr<HttpResponse> HttpConnection::Post(const HttpHeaders& headers,
                                                  absl::string_view body, absl::Duration timeout) {
  return impl_->connection.RoundTrip(http::verb::post, headers, body, timeout, /*keep_alive=*/true);
}

absl::StatusOr<HttpResponse> HttpConnection::Get(const HttpHeaders& headers,
                                                 absl::Duration timeout) {
  return impl_->connection.RoundTrip(http::verb::get, headers, "", timeout, /*keep_alive=*/true);
}

int HttpConnection::connections_opened() const { return impl_->connection.connections_opened; }

absl::StatusOr<HttpResponse> HttpPost(absl::string_view url, const HttpHeaders& headers,
                                      absl::string_view body, absl::Duration timeout) {
  absl::StatusOr<HttpUrl> parsed = ParseHttpUrl(url);
  if (!parsed.ok()) return parsed.status();
  BeastConnection connection(*std::move(parsed));
  return connection.RoundTrip(http::verb::post, headers, body, timeout, /*keep_alive=*/false);
}

absl::StatusOr<HttpResponse> HttpGet(absl::string_view url, const HttpHeaders& headers,
                                     absl::Duration timeout) {
  absl::StatusOr<HttpUrl> parsed = ParseHttpUrl(url);
  if (!parsed.ok()) return parsed.status();
  BeastConnection connection(*std::move(parsed));
  return connection.RoundTrip(http::verb::get, headers, "", timeout, /*keep_alive=*/false);
}

}  // namespace sidestream
