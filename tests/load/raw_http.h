// RawHttpConnection: a plain TCP connection to the webhook port, driven byte
// by byte, for what an HTTP client library would never send: malformed and
// ambiguous requests, trickled headers, pipelined batches, binary garbage.
// Also a small parser for the server's responses (status line, headers,
// Content-Length bodies; the server never answers chunked).
#ifndef SIDESTREAM_TESTS_LOAD_RAW_HTTP_H_
#define SIDESTREAM_TESTS_LOAD_RAW_HTTP_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sidestream::testing {

struct RawHttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The value of `"error":"..."` in a JSON error body, or empty.
  std::string ErrorReason() const;
  // The first header named `name` (case-insensitive), or empty.
  std::string Header(absl::string_view name) const;
};

// What came back on a connection.
struct RawReadResult {
  std::vector<RawHttpResponse> responses;
  // The peer closed (FIN or RST) before or after the responses.
  bool closed = false;
  // Bytes that did not form a complete response (garbage, or cut short).
  std::string unparsed;
};

// Parses complete responses from the front of `bytes` and removes them.
// Informational (1xx) responses are kept as responses of their own.
std::vector<RawHttpResponse> ParseHttpResponses(std::string* bytes);

// One IPv4 loopback connection. Not thread-safe.
class RawHttpConnection {
 public:
  // Connects to "host:port" at once (blocking). See connected().
  explicit RawHttpConnection(absl::string_view address);
  ~RawHttpConnection();
  RawHttpConnection(const RawHttpConnection&) = delete;
  RawHttpConnection& operator=(const RawHttpConnection&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  // Sends every byte; false when the peer closed or reset the connection
  // first (or the send did not finish within `timeout`).
  bool Send(absl::string_view bytes, absl::Duration timeout = absl::Seconds(10));

  // Reads until `count` complete responses arrived, the peer closed, or
  // `timeout` passed.
  RawReadResult ReadResponses(size_t count, absl::Duration timeout);

  // Reads (and keeps) everything until the peer closes or `timeout`
  // passes; `closed` tells which.
  RawReadResult ReadUntilClosed(absl::Duration timeout);

  // Without blocking: true when the peer has closed (or reset) the
  // connection and nothing else is pending.
  bool PeerClosedNow();

  // Closes abruptly: the peer sees a reset (RST), not an orderly close.
  void Reset();

 private:
  // Waits up to `timeout` for bytes; appends them to buffer_. Returns false
  // on close/reset (closed_ set) or timeout.
  bool ReadMore(absl::Duration timeout);

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

}  // namespace sidestream::testing

#endif  // SIDESTREAM_TESTS_LOAD_RAW_HTTP_H_
