// gRPC stream readers for the load generator: S Subscribe streams (or any
// server-streaming method that sends SubscribeResponse-shaped bytes, such as
// the raw gRPC baseline), each on its own connection, some stalled on
// purpose.
//
// Readers take messages as raw bytes and pick out only what they need (the
// item kind and the event id) so the client costs as little CPU as
// possible: Sidestream and the raw baseline are read by the same code.
#ifndef SIDESTREAM_BENCH_SUBSCRIBERS_H_
#define SIDESTREAM_BENCH_SUBSCRIBERS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "bench/histogram.h"
#include "bench/webhook_requests.h"

namespace sidestream::bench {

struct SubscriberSpec {
  // A serialized request message (sidestream.v1.SubscribeRequest for
  // Sidestream).
  std::string request;
  // Reads the first message (so it is known to be registered), then stops
  // reading: the server must buffer or back off, never slow the others.
  bool stalled = false;
  // A label for the report, such as "all" or "payout.*".
  std::string label;
};

struct SubscriberTotals {
  uint64_t streams = 0;
  uint64_t stalled = 0;
  // Events received by streams that are not stalled, in the window.
  uint64_t deliveries = 0;
  uint64_t bytes = 0;
  uint64_t checkpoints = 0;
  // Streams that ended before being cancelled, and how.
  uint64_t ended_early = 0;
  std::string first_error;
  // Receipt time of the first and last event counted.
  int64_t first_event_ns = 0;
  int64_t last_event_ns = 0;
  // When the last stream received its caught_up item (0: not all did).
  int64_t caught_up_ns = 0;
  bool all_caught_up = true;
  // Receipt minus due send time, for events whose due time is in the window.
  LatencyHistogram end_to_end;
  // Events counted per stream, in spec order.
  std::vector<uint64_t> per_stream;
};

class SubscriberSet {
 public:
  // Opens the streams at once. `target` is host:port; `method` the full
  // method name ("/sidestream.v1.Events/Subscribe"). `send_times` may be
  // null (no end-to-end latency).
  SubscriberSet(const std::string& target, const std::string& method,
                std::vector<SubscriberSpec> specs, const SendTimes* send_times);
  ~SubscriberSet();  // cancels every stream and waits for them to end

  // True once every stream received its first message (or `timeout`).
  bool WaitForFirstMessages(absl::Duration timeout);
  // True once every stream that is not stalled counted at least
  // `per_stream` events (or `timeout`).
  bool WaitForEvents(uint64_t per_stream, absl::Duration timeout);
  // True once every stream received a caught_up item (or `timeout`).
  bool WaitForCaughtUp(absl::Duration timeout);

  // Events are counted (deliveries, end-to-end) when received in
  // [from_ns, until_ns). Set before the load starts.
  void SetWindow(int64_t from_ns, int64_t until_ns);

  SubscriberTotals Totals() const;

  class Stream;

 private:
  std::vector<std::unique_ptr<Stream>> streams_;
  std::atomic<int64_t> window_from_{0};
  std::atomic<int64_t> window_until_{INT64_MAX};
};

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_SUBSCRIBERS_H_
