// Drives an HTTP/1.1 webhook endpoint over K keep-alive connections, either
// at a fixed rate or flat out, and measures acknowledgement latency.
//
// Fixed rate: request i is due at start + i/rate (spread over the sender
// threads). A due request goes out on the next idle connection; its latency
// is measured from when it was DUE, not from when a connection was free, so
// a stalled server shows up in the percentiles instead of silently slowing
// the generator down (no coordinated omission). Flat out: every connection
// sends its next request as soon as the previous answer arrived.
//
// Raw non-blocking sockets and epoll, one loop per sender thread; each
// connection has at most one request in flight (as Stripe does).
#ifndef SIDESTREAM_BENCH_HTTP_DRIVER_H_
#define SIDESTREAM_BENCH_HTTP_DRIVER_H_

#include <cstdint>
#include <map>
#include <string>

#include "bench/histogram.h"
#include "bench/webhook_requests.h"

namespace sidestream::bench {

struct HttpLoadOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 16;
  // Sender threads; connections are split among them.
  int threads = 1;
  // Requests per second over all connections; 0 = flat out.
  double rate = 0;
  // Monotonic times (NowNs()): sending starts at `start_ns`; requests due
  // (or, flat out, sent) in [measure_from_ns, stop_ns) are measured; nothing
  // is sent from `stop_ns` on.
  int64_t start_ns = 0;
  int64_t measure_from_ns = 0;
  int64_t stop_ns = 0;
  // Stop after this many requests in total (0: no limit). For bursts.
  uint64_t max_requests = 0;
  // How long to wait for answers still owed at the end.
  int64_t drain_ns = 5'000'000'000;
  // Most due requests queued for a free connection before further ones are
  // counted as `missed` (bounds memory when the target cannot keep up).
  size_t max_queued = 1'000'000;
  const RequestPool* requests = nullptr;  // required
  SendTimes* send_times = nullptr;        // optional: records each due time
};

struct HttpLoadResult {
  uint64_t sent = 0;
  // Answers to measured requests, any status.
  uint64_t measured_answers = 0;
  uint64_t measured_ok = 0;
  // Every answer by HTTP status (measured or not).
  std::map<int, uint64_t> status_counts;
  // Socket errors and connections the target closed (each is reconnected).
  uint64_t io_errors = 0;
  // Due requests dropped because max_queued were already waiting.
  uint64_t missed = 0;
  // Due in the window but never sent (no free connection before stop_ns).
  uint64_t unsent = 0;
  // Requests still unanswered after the drain.
  uint64_t unanswered = 0;
  LatencyHistogram ack_latency;
  // First send and last answer, for bursts.
  int64_t first_send_ns = 0;
  int64_t last_answer_ns = 0;
};

// Runs until stop_ns (or max_requests are answered), then drains. Blocks.
HttpLoadResult RunHttpLoad(const HttpLoadOptions& options);

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_HTTP_DRIVER_H_
