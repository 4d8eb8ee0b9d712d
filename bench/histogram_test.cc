#include "bench/histogram.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace sidestream::bench {
namespace {

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_EQ(h.ValueAtPercentile(50), 50u);
  EXPECT_EQ(h.ValueAtPercentile(99), 99u);
  EXPECT_EQ(h.ValueAtPercentile(100), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogramTest, BucketsTileTheRangeWithBoundedRelativeError) {
  // Every bucket starts right after the previous one ends; the first 256
  // hold one value each, the others are within 1/128 of their values.
  for (size_t i = 1; i < LatencyHistogram::BucketIndex(std::numeric_limits<uint64_t>::max()); ++i) {
    ASSERT_EQ(LatencyHistogram::BucketLow(i), LatencyHistogram::BucketHigh(i - 1) + 1) << i;
    const uint64_t low = LatencyHistogram::BucketLow(i);
    const uint64_t width = LatencyHistogram::BucketHigh(i) - low + 1;
    if (i < 256) {
      ASSERT_EQ(width, 1u) << i;
    } else {
      ASSERT_LE(static_cast<double>(width) / static_cast<double>(low), 1.0 / 128 + 1e-12) << i;
    }
  }
  for (uint64_t v : {uint64_t{255}, uint64_t{256}, uint64_t{1000}, uint64_t{123456789},
                     std::numeric_limits<uint64_t>::max()}) {
    const size_t i = LatencyHistogram::BucketIndex(v);
    EXPECT_LE(LatencyHistogram::BucketLow(i), v);
    EXPECT_GE(LatencyHistogram::BucketHigh(i), v);
  }
}

TEST(LatencyHistogramTest, PercentilesOfALongTailAreWithinPrecision) {
  // 990 fast values (100 us) and 10 slow ones (50 ms): p50 and p99 are fast,
  // p99.9 and max are slow.
  LatencyHistogram h;
  for (int i = 0; i < 990; ++i) h.Record(100'000);
  for (int i = 0; i < 10; ++i) h.Record(50'000'000);
  EXPECT_NEAR(static_cast<double>(h.ValueAtPercentile(50)), 100'000, 100'000 / 128.0);
  EXPECT_NEAR(static_cast<double>(h.ValueAtPercentile(99)), 100'000, 100'000 / 128.0);
  EXPECT_NEAR(static_cast<double>(h.ValueAtPercentile(99.9)), 50'000'000, 50'000'000 / 128.0);
  EXPECT_EQ(h.max(), 50'000'000u);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (uint64_t v = 1; v < 100000; v += 7) {
    (v % 2 == 0 ? a : b).Record(v * 13);
    all.Record(v * 13);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double p : {10.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(a.ValueAtPercentile(p), all.ValueAtPercentile(p)) << p;
  }
  a.Reset();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.ValueAtPercentile(50), 0u);
}

TEST(LatencyHistogramTest, JsonReportsMicroseconds) {
  LatencyHistogram h;
  h.Record(1500);
  EXPECT_EQ(h.ToJson(),
            "{\"count\":1,\"p50_us\":1.500,\"p90_us\":1.500,\"p99_us\":1.500,"
            "\"p999_us\":1.500,\"max_us\":1.500,\"mean_us\":1.500}");
}

}  // namespace
}  // namespace sidestream::bench
