// A small synchronous HTTP/1.1 client over plain TCP, for the CLI, tests and
// benchmarks that POST webhooks to Sidestream's ingress.
//
// Only plain http:// is supported; https is not (yet). Every call takes a
// timeout that covers the whole exchange: connect, sending the request and
// reading the complete response. Host names (IP addresses need none) are
// resolved by the system resolver, bounded by its own timeouts.
//
// Errors:
//   INVALID_ARGUMENT  the URL is not http://host[:port][/path].
//   UNAVAILABLE       the server could not be reached, closed the connection
//                     before answering, or did not answer within the
//                     timeout. Safe to retry for idempotent requests (a
//                     webhook POST is: the server dedups by event id).
//   INTERNAL          the server answered with something that is not HTTP.
//
// Example:
//   absl::StatusOr<HttpResponse> response = HttpPost(
//       "http://127.0.0.1:8080/webhook", {{"Content-Type", "application/json"}},
//       body, absl::Seconds(10));
//   if (!response.ok()) return response.status();
//   if (response->status_code != 200) ...
#ifndef SIDESTREAM_CLIENT_HTTP_CLIENT_H_
#define SIDESTREAM_CLIENT_HTTP_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sidestream {

// Header fields in the order they are sent or were received. Names keep the
// case they were given; lookups are case-insensitive.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status_code = 0;
  // The reason phrase, such as "OK". May be empty.
  std::string reason;
  HttpHeaders headers;
  // The complete body, with any chunked transfer coding removed.
  std::string body;

  // The value of the first header named `name` (case-insensitive), or null.
  const std::string* FindHeader(absl::string_view name) const;
};

// The parts of an http:// URL that a request needs.
struct HttpUrl {
  // Host name or IP address; IPv6 addresses without the brackets.
  std::string host;
  uint16_t port = 80;
  // The request target: path and query, such as "/webhook?x=1". Never empty.
  std::string target;
};

// Parses "http://host[:port][/path[?query]]". The port defaults to 80 and
// the path to "/". IPv6 hosts are written in brackets ("http://[::1]:8080/").
// INVALID_ARGUMENT for anything else, including https:// (not supported).
absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url);

// Sends one request on a fresh connection and closes it afterwards
// ("Connection: close"). `headers` are sent as given after Host (which is
// derived from the URL unless `headers` has one); Content-Length is set from
// the body. Any status code is a successful exchange: the caller checks
// `status_code`.
absl::StatusOr<HttpResponse> HttpPost(absl::string_view url, const HttpHeaders& headers,
                                      absl::string_view body, absl::Duration timeout);
absl::StatusOr<HttpResponse> HttpGet(absl::string_view url, const HttpHeaders& headers,
                                     absl::Duration timeout);

// One keep-alive connection to one URL, reused across requests; for load
// generators and tests that send many requests.
//
// The connection is opened on the first request. When the server has closed
// it in the meantime (idle timeout, "Connection: close", restart), the next
// request opens a new one. A request whose reused connection turns out to be
// dead before any byte of the response arrived is sent once more on a fresh
// connection, as browsers and Go's net/http do; for webhooks that is safe
// because the server dedups by event id.
//
// Not thread-safe: use one HttpConnection per thread.
class HttpConnection {
 public:
  // INVALID_ARGUMENT for a malformed URL (see ParseHttpUrl). Does not
  // connect.
  static absl::StatusOr<std::unique_ptr<HttpConnection>> Create(absl::string_view url);

  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // POST / GET to the URL given to Create(). Same contract as HttpPost, but
  // the connection stays open when the server allows it.
  absl::StatusOr<HttpResponse> Post(const HttpHeaders& headers, absl::string_view body,
                                    absl::Duration timeout);
  absl::StatusOr<HttpResponse> Get(const HttpHeaders& headers, absl::Duration timeout);

  // Number of TCP connections opened so far (1 when every request reused the
  // first one).
  int connections_opened() const;

 private:
  struct Impl;  // Holds the Boost.Asio objects, which this header hides.

  explicit HttpConnection(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_CLIENT_HTTP_CLIENT_H_
