#include "server/common/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sidestream {
namespace {

using ::testing::HasSubstr;

TEST(LatencyHistogramTest, CountsEachObservationInItsBucket) {
  LatencyHistogram h;
  h.Observe(absl::Microseconds(10));   // <= 25 µs
  h.Observe(absl::Microseconds(25));   // <= 25 µs (bounds are inclusive)
  h.Observe(absl::Microseconds(700));  // <= 1 ms
  h.Observe(absl::Seconds(60));        // +Inf
  const LatencyHistogram::Snapshot s = h.Read();
  ASSERT_EQ(s.cumulative.size(), LatencyHistogram::kBounds.size() + 1);
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.cumulative[0], 2u);                                     // 25 µs
  EXPECT_EQ(s.cumulative[4], 2u);                                     // 500 µs
  EXPECT_EQ(s.cumulative[5], 3u);                                     // 1 ms
  EXPECT_EQ(s.cumulative[LatencyHistogram::kBounds.size() - 1], 3u);  // 10 s
  EXPECT_EQ(s.cumulative.back(), 4u);                                 // +Inf
  EXPECT_NEAR(s.sum_seconds, 60.000735, 1e-9);
}

TEST(PrometheusWriterTest, WritesFamiliesSamplesAndEscapedLabels) {
  PrometheusWriter out;
  out.Family("x_total", "counter", "Help with \\ and\nnewline.");
  out.Sample("x_total", {}, uint64_t{18446744073709551615u});
  out.Sample("x_total", {{"reason", "a\"b\\c\nd"}, {"k", "v"}}, uint64_t{3});
  out.Family("g", "gauge", "A gauge.");
  out.Sample("g", {}, 0.000025);
  out.Sample("g", {}, 1.5);
  EXPECT_EQ(out.text(),
            "# HELP x_total Help with \\\\ and\\nnewline.\n"
            "# TYPE x_total counter\n"
            "x_total 18446744073709551615\n"
            "x_total{reason=\"a\\\"b\\\\c\\nd\",k=\"v\"} 3\n"
            "# HELP g A gauge.\n"
            "# TYPE g gauge\n"
            "g 2.5e-05\n"
            "g 1.5\n");
}

TEST(PrometheusWriterTest, HistogramHasBucketsSumAndCount) {
  PrometheusWriter out;
  out.Family("h_seconds", "histogram", "H.");
  out.Histogram("h_seconds", {}, {0.001, 0.01}, {1, 3, 4}, 4, 0.5);
  EXPECT_THAT(out.text(), HasSubstr("h_seconds_bucket{le=\"0.001\"} 1\n"
                                    "h_seconds_bucket{le=\"0.01\"} 3\n"
                                    "h_seconds_bucket{le=\"+Inf\"} 4\n"
                                    "h_seconds_sum 0.5\n"
                                    "h_seconds_count 4\n"));
}

}  // namespace
}  // namespace sidestream
