#include "bench/http_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

namespace sidestream::bench {
namespace {

// -1 on failure. Blocking connect (loopback is immediate), then non-blocking
// with Nagle off, as an HTTP client would.
int Connect(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return -1;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      return fd;
    }
    close(fd);
  }
  return -1;
}

// A complete response at the start of `in`: its status and length, or
// nullopt when more bytes are needed. Only what the targets send is
// understood: a status line, headers and a Content-Length body.
struct Parsed {
  int status = 0;
  size_t length = 0;
};
std::optional<Parsed> ParseResponse(absl::string_view in) {
  const size_t header_end = in.find("\r\n\r\n");
  if (header_end == absl::string_view::npos) return std::nullopt;
  Parsed parsed;
  // "HTTP/1.1 200 OK"
  if (in.size() < 12 || !absl::SimpleAtoi(in.substr(9, 3), &parsed.status)) parsed.status = -1;
  size_t body = 0;
  absl::string_view headers = in.substr(0, header_end);
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t eol = headers.find("\r\n", pos);
    if (eol == absl::string_view::npos) eol = headers.size();
    absl::string_view line = headers.substr(pos, eol - pos);
    if (line.size() > 15 && absl::EqualsIgnoreCase(line.substr(0, 15), "content-length:")) {
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(15)), &body);
    }
    pos = eol + 2;
  }
  parsed.length = header_end + 4 + body;
  if (in.size() < parsed.length) return std::nullopt;
  return parsed;
}

struct Connection {
  int fd = -1;
  bool busy = false;
  bool want_write = false;
  const std::string* out = nullptr;
  std::string scratch;
  size_t written = 0;
  std::string in;
  int64_t due_ns = 0;
  bool measured = false;
};

class Sender {
 public:
  Sender(const HttpLoadOptions& options, int id, int connections, std::atomic<uint64_t>* next_index)
      : options_(options), id_(id), next_index_(next_index), connections_(connections) {}

  HttpLoadResult Run();

 private:
  bool Open(size_t i);
  void Send(size_t i, uint64_t index, int64_t due, int64_t now);
  void Write(size_t i);
  void Read(size_t i, int64_t now);
  void Fail(size_t i);
  void Watch(size_t i, bool write);

  const HttpLoadOptions& options_;
  const int id_;
  std::atomic<uint64_t>* next_index_;
  std::vector<Connection> connections_;
  std::vector<size_t> idle_;
  size_t busy_ = 0;
  int epoll_ = -1;
  HttpLoadResult result_;
};

bool Sender::Open(size_t i) {
  Connection& c = connections_[i];
  c = Connection();
  c.fd = Connect(options_.host, options_.port);
  if (c.fd < 0) return false;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = i;
  epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
  idle_.push_back(i);
  return true;
}

void Sender::Watch(size_t i, bool write) {
  Connection& c = connections_[i];
  if (c.want_write == write) return;
  c.want_write = write;
  epoll_event ev{};
  ev.events = write ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
  ev.data.u64 = i;
  epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Sender::Send(size_t i, uint64_t index, int64_t due, int64_t now) {
  Connection& c = connections_[i];
  c.out = &options_.requests->Get(index, &c.scratch);
  c.written = 0;
  c.due_ns = due;
  c.measured = due >= options_.measure_from_ns && due < options_.stop_ns;
  c.busy = true;
  ++busy_;
  if (options_.send_times != nullptr) options_.send_times->Set(index, due);
  ++result_.sent;
  if (result_.first_send_ns == 0) result_.first_send_ns = now;
  Write(i);
}

void Sender::Write(size_t i) {
  Connection& c = connections_[i];
  while (c.written < c.out->size()) {
    const ssize_t n =
        send(c.fd, c.out->data() + c.written, c.out->size() - c.written, MSG_NOSIGNAL);
    if (n > 0) {
      c.written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      Watch(i, true);
      return;
    }
    Fail(i);
    return;
  }
  Watch(i, false);
}

void Sender::Read(size_t i, int64_t now) {
  Connection& c = connections_[i];
  char buf[16384];
  while (true) {
    const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Fail(i);  // closed by the target, or a socket error
    return;
  }
  while (std::optional<Parsed> parsed = ParseResponse(c.in)) {
    c.in.erase(0, parsed->length);
    if (!c.busy) continue;  // an answer nobody asked for: ignore it
    ++result_.status_counts[parsed->status];
    if (c.measured) {
      ++result_.measured_answers;
      if (parsed->status == 200) ++result_.measured_ok;
      result_.ack_latency.Record(static_cast<uint64_t>(std::max<int64_t>(now - c.due_ns, 0)));
    }
    result_.last_answer_ns = now;
    c.busy = false;
    --busy_;
    idle_.push_back(i);
  }
}

void Sender::Fail(size_t i) {
  Connection& c = connections_[i];
  ++result_.io_errors;
  if (c.busy) --busy_;
  epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
  idle_.erase(std::remove(idle_.begin(), idle_.end(), i), idle_.end());
  Open(i);
}

HttpLoadResult Sender::Run() {
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < connections_.size(); ++i) {
    if (!Open(i)) ++result_.io_errors;
  }
  const bool fixed_rate = options_.rate > 0;
  // This thread's share of the schedule: every `threads`-th slot.
  const double slot_ns = fixed_rate ? 1e9 / options_.rate : 0;
  const double interval_ns = slot_ns * options_.threads;
  double next_due = static_cast<double>(options_.start_ns) + slot_ns * id_;
  std::deque<int64_t> queued;
  bool sending = true;
  int64_t drain_until = 0;
  std::vector<epoll_event> events(std::max<size_t>(connections_.size(), 1));

  while (true) {
    int64_t now = NowNs();
    if (sending && now >= options_.stop_ns) sending = false;
    if (sending && fixed_rate) {
      while (next_due <= static_cast<double>(now) && next_due < options_.stop_ns) {
        const int64_t due = static_cast<int64_t>(next_due);
        if (queued.size() < options_.max_queued) {
          queued.push_back(due);
        } else if (due >= options_.measure_from_ns) {
          ++result_.missed;
        }
        next_due += interval_ns;
      }
    }
    while (sending && !idle_.empty() && (!fixed_rate || !queued.empty())) {
      const uint64_t index = next_index_->fetch_add(1);
      if (options_.max_requests > 0 && index >= options_.max_requests) {
        sending = false;
        break;
      }
      const int64_t due = fixed_rate ? queued.front() : now;
      if (fixed_rate) queued.pop_front();
      const size_t i = idle_.back();
      idle_.pop_back();
      Send(i, index, due, now);
    }
    if (!sending && drain_until == 0) drain_until = now + options_.drain_ns;
    if (!sending && (busy_ == 0 || now >= drain_until)) break;

    int64_t wait_ns;
    if (!sending) {
      wait_ns = drain_until - now;
    } else if (fixed_rate && !idle_.empty()) {
      wait_ns = static_cast<int64_t>(next_due) - now;
    } else {
      wait_ns = options_.stop_ns - now;
    }
    wait_ns = std::clamp<int64_t>(wait_ns, 0, 100'000'000);
    timespec timeout{wait_ns / 1'000'000'000, wait_ns % 1'000'000'000};
    const int n =
        epoll_pwait2(epoll_, events.data(), static_cast<int>(events.size()), &timeout, nullptr);
    now = NowNs();
    for (int e = 0; e < n; ++e) {
      const size_t i = events[e].data.u64;
      if (connections_[i].fd < 0) continue;
      if ((events[e].events & EPOLLOUT) && connections_[i].busy) Write(i);
      if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Read(i, now);
    }
  }
  for (int64_t due : queued) {
    if (due >= options_.measure_from_ns) ++result_.unsent;
  }
  result_.unanswered = busy_;
  for (Connection& c : connections_) {
    if (c.fd >= 0) close(c.fd);
  }
  close(epoll_);
  return std::move(result_);
}

}  // namespace

HttpLoadResult RunHttpLoad(const HttpLoadOptions& options) {
  const int threads = std::max(1, std::min(options.threads, options.connections));
  HttpLoadOptions shared = options;
  shared.threads = threads;
  std::atomic<uint64_t> next_index{0};
  std::vector<HttpLoadResult> results(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    const int connections = options.connections / threads + (t < options.connections % threads);
    workers.emplace_back([&, t, connections] {
      Sender sender(shared, t, connections, &next_index);
      results[t] = sender.Run();
    });
  }
  for (std::thread& w : workers) w.join();
  HttpLoadResult total = std::move(results[0]);
  for (int t = 1; t < threads; ++t) {
    const HttpLoadResult& r = results[t];
    total.sent += r.sent;
    total.measured_answers += r.measured_answers;
    total.measured_ok += r.measured_ok;
    for (const auto& [status, count] : r.status_counts) total.status_counts[status] += count;
    total.io_errors += r.io_errors;
    total.missed += r.missed;
    total.unsent += r.unsent;
    total.unanswered += r.unanswered;
    total.ack_latency.Merge(r.ack_latency);
    if (r.first_send_ns != 0 &&
        (total.first_send_ns == 0 || r.first_send_ns < total.first_send_ns)) {
      total.first_send_ns = r.first_send_ns;
    }
    total.last_answer_ns = std::max(total.last_answer_ns, r.last_answer_ns);
  }
  return total;
}

}  // namespace sidestream::bench
