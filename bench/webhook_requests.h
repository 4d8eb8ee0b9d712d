// Signed webhook requests for the load generator: realistic Stripe events
// (client/sample_events.h) of chosen sizes, each with a unique id that
// encodes its index, so that a subscriber that receives the event can find
// when it was meant to be sent (end-to-end latency).
#ifndef SIDESTREAM_BENCH_WEBHOOK_REQUESTS_H_
#define SIDESTREAM_BENCH_WEBHOOK_REQUESTS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sidestream::bench {

// Event ids are kEventIdPrefix followed by kEventIdDigits decimal digits of
// the event's index.
inline constexpr absl::string_view kEventIdPrefix = "evt_1LoadGen";
inline constexpr size_t kEventIdDigits = 12;

std::string EventId(uint64_t index);
// The index in an id made by EventId(), or nullopt for any other id.
std::optional<uint64_t> ParseEventIndex(absl::string_view id);

// The connected accounts the generated Connect events belong to; a quarter
// of the events are the platform's own (no account).
const std::vector<std::string>& LoadAccounts();

struct WebhookRequestOptions {
  // Body sizes in bytes, used in turn (event i has sizes[i % n]). A size
  // smaller than an event type's natural size gives the natural size.
  std::vector<size_t> sizes = {3072};
  std::string secret;
  // Host header value, such as "127.0.0.1:8080".
  std::string host;
  std::string path = "/webhook";
};

// Builds complete HTTP/1.1 requests (headers and body) for event indices.
// Immutable after Create(); Build() is safe from many threads.
class WebhookRequestFactory {
 public:
  static absl::StatusOr<WebhookRequestFactory> Create(const WebhookRequestOptions& options);

  // The request for event `index`, signed as Stripe would at `signed_at`
  // (Unix seconds).
  std::string Build(uint64_t index, int64_t signed_at) const;

  // Just the body of event `index`.
  std::string Body(uint64_t index) const;

  // Mean body size over the templates.
  size_t mean_body_bytes() const;

 private:
  struct Template {
    std::string body;
    size_t id_digits_at;  // offset of the id's digits in `body`
  };
  WebhookRequestFactory() = default;

  WebhookRequestOptions options_;
  std::vector<Template> templates_;
};

// Pre-built requests for indices [0, size), signed once, so the load
// generator spends no time signing while it measures. Past the pool, a
// request is either built on the spot (unique ids; needed where the target
// deduplicates) or taken from the pool again (`reuse`, for baselines that
// do not look at ids). Thread-safe.
class RequestPool {
 public:
  RequestPool(const WebhookRequestFactory* factory, size_t size, bool reuse, int64_t signed_at);

  // The request for `index`. Either points into the pool or fills `scratch`
  // and points to it.
  const std::string& Get(uint64_t index, std::string* scratch) const;

  // How many requests were built on the spot because the pool ran out.
  uint64_t built_on_the_spot() const { return built_on_the_spot_.load(); }

 private:
  const WebhookRequestFactory* factory_;
  bool reuse_;
  std::vector<std::string> requests_;
  mutable std::atomic<uint64_t> built_on_the_spot_{0};
};

// When each event was meant to be sent (monotonic nanoseconds), by index;
// written by the HTTP senders, read by the subscribers. Indices past the
// capacity are not tracked.
class SendTimes {
 public:
  explicit SendTimes(size_t capacity);
  void Set(uint64_t index, int64_t ns);
  // 0 when unknown.
  int64_t Get(uint64_t index) const;

 private:
  size_t capacity_;
  std::unique_ptr<std::atomic<int64_t>[]> times_;
};

// Monotonic clock in nanoseconds, the one every latency in the suite uses.
int64_t NowNs();

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_WEBHOOK_REQUESTS_H_
