// LatencyHistogram: a compact log-linear histogram in the style of
// HdrHistogram, for latencies in nanoseconds.
//
// Values below 2^kSubBucketBits are counted exactly; above, each power of two
// is split into 2^(kSubBucketBits-1) equal buckets, so any recorded value is
// reported within 1/128 (0.8%) of itself. Memory is fixed (about 60 KB) and
// Record() is a few instructions, so every request and delivery can be
// recorded without sampling.
//
// Not thread-safe: give each thread its own and Merge() at the end.
#ifndef SIDESTREAM_BENCH_HISTOGRAM_H_
#define SIDESTREAM_BENCH_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sidestream::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 8;

  LatencyHistogram();

  void Record(uint64_t value);
  void Merge(const LatencyHistogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  // 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // The value at `percentile` (0..100]: the smallest recorded value such that
  // at least that share of the values is at or below it, within the bucket
  // precision (never above max()). 0 when empty.
  uint64_t ValueAtPercentile(double percentile) const;

  // {"count":..,"p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..,"max_us":..,
  //  "mean_us":..}: nanoseconds reported as microseconds with 3 decimals.
  std::string ToJson() const;

  // Bucket arithmetic, public for the test.
  static size_t BucketIndex(uint64_t value);
  // The smallest and largest values that fall into bucket `index`.
  static uint64_t BucketLow(size_t index);
  static uint64_t BucketHigh(size_t index);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = 0;
  uint64_t max_ = 0;
  // Nanosecond sums stay far below 2^64 for any run of this suite (2^64 ns
  // is 584 years).
  uint64_t sum_ = 0;
};

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_HISTOGRAM_H_
