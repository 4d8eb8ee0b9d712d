#include "server/ops/stats.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::GetStatsResponse SampleStats() {
  IngressStats ingress;
  ingress.CountAccepted();
  ingress.CountAccepted();
  ingress.CountDuplicate();
  ingress.CountRejected(RejectReason::kSignatureMismatch);
  ingress.ObserveVerify(absl::Microseconds(3));
  ingress.ObserveAppend(absl::Milliseconds(2));
  v1::GetStatsResponse stats;
  *stats.mutable_ingress() = ingress.ToProto();
  stats.set_version("1.2.3");
  stats.set_ready(true);
  stats.mutable_log()->set_log_epoch("ep\"och");
  stats.mutable_log()->set_backend("sqlite");
  stats.mutable_log()->set_last_sequence(7);
  stats.mutable_log()->set_writable(true);
  stats.mutable_delivery()->set_events_sent(5);
  v1::SubscriptionStats* sub = stats.add_subscriptions();
  sub->set_id(9);
  sub->set_peer("ipv4:127.0.0.1:4000");
  sub->set_lag(3);
  *stats.mutable_process() = ReadProcessStats(absl::Now() - absl::Seconds(2));
  return stats;
}

TEST(RenderPrometheusTest, CountsOutcomesAndReasons) {
  const std::string text = RenderPrometheus(SampleStats());
  EXPECT_THAT(text, HasSubstr("sidestream_webhooks_total{outcome=\"accepted\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_webhooks_total{outcome=\"duplicate\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_webhooks_total{outcome=\"rejected\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("sidestream_webhooks_rejected_total{reason=\"signature_mismatch\"} 1\n"));
  // Every reason is present, zeros included, so dashboards see them all.
  EXPECT_THAT(text, HasSubstr("sidestream_webhooks_rejected_total{reason=\"shutting_down\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_build_info{version=\"1.2.3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_ready 1\n"));
}

TEST(RenderPrometheusTest, HistogramsLogDeliveryAndProcess) {
  const std::string text = RenderPrometheus(SampleStats());
  EXPECT_THAT(text, HasSubstr("# TYPE sidestream_webhook_append_duration_seconds histogram\n"));
  EXPECT_THAT(text,
              HasSubstr("sidestream_webhook_append_duration_seconds_bucket{le=\"0.001\"} 0\n"
                        "sidestream_webhook_append_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_webhook_append_duration_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_webhook_verify_duration_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_log_info{epoch=\"ep\\\"och\",backend=\"sqlite\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_log_last_sequence 7\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_events_sent_total 5\n"));
  EXPECT_THAT(text, HasSubstr("sidestream_subscription_lag_events{subscription=\"9\",peer=\"ipv4:"
                              "127.0.0.1:4000\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_resident_memory_bytes gauge\n"));
  EXPECT_THAT(text, Not(HasSubstr("process_resident_memory_bytes 0\n")));
}

TEST(RenderPrometheusTest, EveryFamilyIsDeclaredOnceAndEveryLineIsWellFormed) {
  const std::string text = RenderPrometheus(SampleStats());
  std::set<std::string> families;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      ASSERT_EQ(parts.size(), 4u) << line;
      EXPECT_TRUE(families.insert(parts[2]).second) << "declared twice: " << parts[2];
      continue;
    }
    if (absl::StartsWith(line, "# HELP ")) continue;
    // name[{labels}] value
    const size_t space = line.rfind(' ');
    ASSERT_NE(space, absl::string_view::npos) << line;
    const absl::string_view series = line.substr(0, space);
    const absl::string_view name = series.substr(0, series.find('{'));
    bool declared = false;
    for (const std::string& family : families) {
      if (name == family || name == family + "_bucket" || name == family + "_sum" ||
          name == family + "_count") {
        declared = true;
      }
    }
    EXPECT_TRUE(declared) << "sample before its # TYPE: " << line;
  }
}

TEST(ReadProcessStatsTest, SeesThisProcess) {
  const v1::ProcessStats process = ReadProcessStats(absl::Now() - absl::Seconds(5));
  EXPECT_GT(process.resident_memory_bytes(), 1u << 20);
  EXPECT_GT(process.open_fds(), 2u);  // at least stdin, stdout, stderr
  EXPECT_GE(process.uptime_seconds(), 5.0);
  EXPECT_GT(process.cpu_seconds(), 0.0);
}

}  // namespace
}  // namespace sidestream
