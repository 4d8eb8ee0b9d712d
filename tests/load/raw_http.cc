#include "tests/load/raw_http.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace sidestream::testing {
namespace {

int ToPollMillis(absl::Duration d) {
  const int64_t ms = absl::ToInt64Milliseconds(d);
  return ms < 0 ? 0 : static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

}  // namespace

std::string RawHttpResponse::ErrorReason() const {
  constexpr char kKey[] = "\"error\":\"";
  const size_t at = body.find(kKey);
  if (at == std::string::npos) return "";
  const size_t start = at + sizeof(kKey) - 1;
  const size_t end = body.find('"', start);
  return end == std::string::npos ? "" : body.substr(start, end - start);
}

std::string RawHttpResponse::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

std::vector<RawHttpResponse> ParseHttpResponses(std::string* bytes) {
  std::vector<RawHttpResponse> out;
  while (true) {
    const size_t end_of_head = bytes->find("\r\n\r\n");
    if (end_of_head == std::string::npos) break;
    std::vector<std::string> lines =
        absl::StrSplit(absl::string_view(*bytes).substr(0, end_of_head), "\r\n");
    RawHttpResponse response;
    // "HTTP/1.1 400 Bad Request"
    std::vector<absl::string_view> status_line = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
    if (status_line.size() < 2 || !absl::StartsWith(status_line[0], "HTTP/") ||
        !absl::SimpleAtoi(status_line[1], &response.status)) {
      break;  // not HTTP: leave it for the caller to see
    }
    size_t content_length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      std::string name = lines[i].substr(0, colon);
      std::string value(absl::StripAsciiWhitespace(absl::string_view(lines[i]).substr(colon + 1)));
      if (absl::EqualsIgnoreCase(name, "Content-Length")) {
        (void)absl::SimpleAtoi(value, &content_length);
      }
      response.headers.emplace_back(std::move(name), std::move(value));
    }
    const size_t body_start = end_of_head + 4;
    if (bytes->size() < body_start + content_length) break;  // body not complete yet
    response.body = bytes->substr(body_start, content_length);
    bytes->erase(0, body_start + content_length);
    out.push_back(std::move(response));
  }
  return out;
}

RawHttpConnection::RawHttpConnection(absl::string_view address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, std::string(address.substr(0, colon)).c_str(), &addr.sin_addr) != 1) {
    return;
  }
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

RawHttpConnection::~RawHttpConnection() {
  if (fd_ >= 0) close(fd_);
}

bool RawHttpConnection::Send(absl::string_view bytes, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!bytes.empty()) {
    pollfd p{fd_, POLLOUT, 0};
    if (poll(&p, 1, ToPollMillis(deadline - absl::Now())) <= 0) return false;
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool RawHttpConnection::ReadMore(absl::Duration timeout) {
  if (closed_) return false;
  pollfd p{fd_, POLLIN, 0};
  const int ready = poll(&p, 1, ToPollMillis(timeout));
  if (ready <= 0) return false;
  char buf[16384];
  const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return true;
    closed_ = true;  // FIN (0) or RST (ECONNRESET)
    return false;
  }
  buffer_.append(buf, static_cast<size_t>(n));
  return true;
}

RawReadResult RawHttpConnection::ReadResponses(size_t count, absl::Duration timeout) {
  RawReadResult result;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    for (RawHttpResponse& r : ParseHttpResponses(&buffer_))
      result.responses.push_back(std::move(r));
    if (result.responses.size() >= count) break;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    if (!ReadMore(left) && closed_) break;
  }
  for (RawHttpResponse& r : ParseHttpResponses(&buffer_)) result.responses.push_back(std::move(r));
  result.closed = closed_;
  result.unparsed = buffer_;
  return result;
}

RawReadResult RawHttpConnection::ReadUntilClosed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!closed_) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    ReadMore(left);
  }
  RawReadResult result;
  result.responses = ParseHttpResponses(&buffer_);
  result.closed = closed_;
  result.unparsed = buffer_;
  return result;
}

bool RawHttpConnection::PeerClosedNow() {
  if (closed_) return true;
  char byte;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return closed_ = true;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return closed_ = true;
  return false;
}

void RawHttpConnection::Reset() {
  if (fd_ < 0) return;
  linger abort{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
  close(fd_);
  fd_ = -1;
  closed_ = true;
}

}  // namespace sidestream::testing
