#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sidestream::bench {
namespace {

constexpr uint64_t kExactLimit = uint64_t{1} << LatencyHistogram::kSubBucketBits;
constexpr uint64_t kHalf = kExactLimit / 2;
// Magnitudes 1..(64 - kSubBucketBits) each hold kHalf buckets.
constexpr size_t kBucketCount = kExactLimit + (64 - LatencyHistogram::kSubBucketBits) * kHalf;

std::string Micros(uint64_t nanos) { return absl::StrFormat("%.3f", nanos / 1000.0); }

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBucketCount, 0) {}

size_t LatencyHistogram::BucketIndex(uint64_t value) {
  if (value < kExactLimit) return static_cast<size_t>(value);
  // value has bit_width >= kSubBucketBits + 1; shifting by `magnitude` keeps
  // its top kSubBucketBits bits, i.e. a number in [kHalf, kExactLimit).
  const int magnitude = std::bit_width(value) - kSubBucketBits;
  return static_cast<size_t>(kExactLimit + (magnitude - 1) * kHalf +
                             ((value >> magnitude) - kHalf));
}

uint64_t LatencyHistogram::BucketLow(size_t index) {
  if (index < kExactLimit) return index;
  const size_t magnitude = (index - kExactLimit) / kHalf + 1;
  const uint64_t top = (index - kExactLimit) % kHalf + kHalf;
  return top << magnitude;
}

uint64_t LatencyHistogram::BucketHigh(size_t index) {
  if (index < kExactLimit) return index;
  const size_t magnitude = (index - kExactLimit) / kHalf + 1;
  return BucketLow(index) + ((uint64_t{1} << magnitude) - 1);
}

void LatencyHistogram::Record(uint64_t value) {
  ++counts_[BucketIndex(value)];
  if (count_ == 0 || value < min_) min_ = value;
  max_ = std::max(max_, value);
  ++count_;
  sum_ += value;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void LatencyHistogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = 0;
  max_ = 0;
  sum_ = 0;
}

uint64_t LatencyHistogram::ValueAtPercentile(double percentile) const {
  if (count_ == 0) return 0;
  const double clamped = std::clamp(percentile, 0.0, 100.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(clamped / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      // The bucket's middle, within [min, max] of what was recorded.
      const uint64_t mid = BucketLow(i) + (BucketHigh(i) - BucketLow(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

std::string LatencyHistogram::ToJson() const {
  return absl::StrCat(
      "{\"count\":", count_, ",\"p50_us\":", Micros(ValueAtPercentile(50)),
      ",\"p90_us\":", Micros(ValueAtPercentile(90)), ",\"p99_us\":", Micros(ValueAtPercentile(99)),
      ",\"p999_us\":", Micros(ValueAtPercentile(99.9)), ",\"max_us\":", Micros(max()),
      ",\"mean_us\":", absl::StrFormat("%.3f", mean() / 1000.0), "}");
}

}  // namespace sidestream::bench
