// Metrics building blocks: a lock-free latency histogram, and a writer of
// the Prometheus text exposition format (version 0.0.4).
//
// Debian 12 packages no C++ Prometheus client, and what Sidestream exports
// is small: counters and gauges read from the components' own statistics at
// scrape time, and two latency histograms. So the format is written here,
// following https://prometheus.io/docs/instrumenting/exposition_formats/.
#ifndef SIDESTREAM_SERVER_COMMON_METRICS_H_
#define SIDESTREAM_SERVER_COMMON_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sidestream {

// Latency histogram with fixed buckets from 25 µs to 10 s. Observe is
// wait-free (a few relaxed atomic adds); reads are consistent enough for
// monitoring (a scrape may see an observation in `count` before its bucket).
class LatencyHistogram {
 public:
  // Upper bounds in seconds; an implicit +Inf bucket follows.
  static constexpr std::array<double, 18> kBounds = {
      0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,    0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};

  void Observe(absl::Duration latency);

  struct Snapshot {
    // Cumulative: counts[i] observations were <= kBounds[i]; the last entry
    // (index kBounds.size()) is the +Inf bucket, equal to `count`.
    std::vector<uint64_t> cumulative;
    uint64_t count = 0;
    double sum_seconds = 0;
  };
  Snapshot Read() const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};
};

// Builds an exposition. Call Family once per metric name, then its samples.
// Label values are escaped; names are the caller's constants.
class PrometheusWriter {
 public:
  using Labels = std::initializer_list<std::pair<absl::string_view, absl::string_view>>;

  // "# HELP name help" and "# TYPE name type" (counter, gauge, histogram).
  void Family(absl::string_view name, absl::string_view type, absl::string_view help);
  void Sample(absl::string_view name, Labels labels, uint64_t value);
  void Sample(absl::string_view name, Labels labels, double value);
  // name_bucket{le=...}, name_sum and name_count, from cumulative buckets
  // with the given upper bounds (+Inf appended).
  void Histogram(absl::string_view name, Labels labels, const std::vector<double>& bounds,
                 const std::vector<uint64_t>& cumulative, uint64_t count, double sum);

  const std::string& text() const { return text_; }
  std::string Take() { return std::move(text_); }

 private:
  void AppendSeries(absl::string_view name, Labels labels, absl::string_view extra_label = {},
                    absl::string_view extra_value = {});
  std::string text_;
};

// The media type of the text exposition.
inline constexpr absl::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_METRICS_H_
