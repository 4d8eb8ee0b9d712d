#include "client/cli/json_output.h"

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "sidestream/v1/event.pb.h"

namespace sidestream::cli {
namespace {

using ::testing::HasSubstr;

TEST(ToJsonLineTest, OneLineWithProtoFieldNames) {
  v1::Event event;
  event.set_sequence(42);
  event.set_id("evt_1");
  event.set_type("payout.failed");
  event.set_object_id("po_1");
  (*event.mutable_data_object()->mutable_fields())["amount"].set_number_value(1100);
  absl::StatusOr<std::string> json = ToJsonLine(event);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->find('\n'), std::string::npos);
  EXPECT_THAT(*json, HasSubstr(R"("object_id":"po_1")"));
  EXPECT_THAT(*json, HasSubstr(R"("data_object":{"amount":1100})"));
  // proto3 JSON writes 64-bit integers as strings.
  EXPECT_THAT(*json, HasSubstr(R"("sequence":"42")"));
}

TEST(ToPrettyJsonTest, IndentedAndEndsWithNewline) {
  v1::LogStats log;
  log.set_backend("sqlite");
  absl::StatusOr<std::string> json = ToPrettyJson(log);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, "{\n \"backend\": \"sqlite\"\n}\n");
}

TEST(FormatStatsTableTest, ShowsCountersLogAndSubscriptions) {
  v1::GetStatsResponse stats;
  stats.set_version("0.1.0");
  stats.mutable_start_time()->set_seconds(1718877600);
  stats.mutable_ingress()->set_accepted(120);
  stats.mutable_ingress()->set_duplicates(3);
  (*stats.mutable_ingress()->mutable_rejections())["signature_mismatch"] = 2;
  (*stats.mutable_ingress()->mutable_rejections())["invalid_json"] = 1;
  stats.mutable_log()->set_backend("sqlite");
  stats.mutable_log()->set_log_epoch("ep1");
  stats.mutable_log()->set_first_sequence(1);
  stats.mutable_log()->set_last_sequence(123);
  stats.mutable_log()->set_event_count(123);
  v1::SubscriptionStats* subscription = stats.add_subscriptions();
  subscription->set_peer("ipv4:127.0.0.1:53211");
  subscription->set_cursor(120);
  subscription->set_lag(3);
  subscription->set_events_sent(7);
  subscription->set_catching_up(true);
  subscription->mutable_filter()->add_types("payout.*");
  subscription->mutable_filter()->set_origin(v1::ORIGIN_CONNECT);

  const std::string table =
      FormatStatsTable(stats, absl::FromUnixSeconds(1718877600) + absl::Minutes(90));
  EXPECT_THAT(table, HasSubstr("Sidestream 0.1.0, started 2024-06-20T10:00:00Z (up 1h30m)"));
  EXPECT_THAT(table, HasSubstr("accepted     120"));
  EXPECT_THAT(table, HasSubstr("duplicates   3"));
  // Rejection reasons sorted by name.
  EXPECT_LT(table.find("invalid_json"), table.find("signature_mismatch"));
  EXPECT_THAT(table, HasSubstr("Log (sqlite)"));
  EXPECT_THAT(table, HasSubstr("1 .. 123"));
  EXPECT_THAT(table, HasSubstr("Subscriptions: 1"));
  EXPECT_THAT(table, HasSubstr("ipv4:127.0.0.1:53211"));
  EXPECT_THAT(table, HasSubstr("catching-up"));
  EXPECT_THAT(table, HasSubstr("types=payout.* origin=connect"));
}

TEST(FormatStatsTableTest, ShowsReadinessLatencyDeliveryAndProcess) {
  v1::GetStatsResponse stats;
  stats.set_ready(true);
  stats.mutable_process()->set_resident_memory_bytes(21 << 20);
  v1::LatencyHistogram* append = stats.mutable_ingress()->mutable_append_latency();
  append->set_count(100);
  for (auto [bound, cumulative] : std::vector<std::pair<double, uint64_t>>{
           {0.001, 0}, {0.0025, 100}, {std::numeric_limits<double>::infinity(), 100}}) {
    v1::LatencyBucket* bucket = append->add_buckets();
    bucket->set_upper_bound_seconds(bound);
    bucket->set_cumulative_count(cumulative);
  }
  stats.mutable_delivery()->set_events_sent(42);
  stats.mutable_log()->set_writable(true);
  const std::string table = FormatStatsTable(stats, absl::UnixEpoch());
  EXPECT_THAT(table, HasSubstr("ready; RSS 21.0 MiB"));
  EXPECT_THAT(table, HasSubstr("append       p50 1.750 ms, p99 2.485 ms (100 samples"));
  EXPECT_THAT(table, HasSubstr("verify       no samples"));
  EXPECT_THAT(table, HasSubstr("events       42 sent"));
}

TEST(HistogramQuantileTest, InterpolatesInsideTheBucketLikePrometheus) {
  v1::LatencyHistogram h;
  EXPECT_EQ(HistogramQuantile(h, 0.5), 0);
  h.set_count(10);
  for (auto [bound, cumulative] : std::vector<std::pair<double, uint64_t>>{
           {0.001, 5}, {0.01, 8}, {std::numeric_limits<double>::infinity(), 10}}) {
    v1::LatencyBucket* bucket = h.add_buckets();
    bucket->set_upper_bound_seconds(bound);
    bucket->set_cumulative_count(cumulative);
  }
  EXPECT_NEAR(HistogramQuantile(h, 0.5), 0.001, 1e-12);   // top of the first bucket
  EXPECT_NEAR(HistogramQuantile(h, 0.2), 0.0004, 1e-12);  // 2 of 5 in [0, 1 ms]
  EXPECT_NEAR(HistogramQuantile(h, 0.65), 0.001 + 0.009 * 0.5, 1e-12);
  EXPECT_EQ(HistogramQuantile(h, 0.99), 0.01);  // in +Inf: the largest finite bound
}

TEST(FormatStatsTableTest, EmptyServer) {
  const std::string table = FormatStatsTable(v1::GetStatsResponse(), absl::UnixEpoch());
  EXPECT_THAT(table, HasSubstr("rejected     none"));
  EXPECT_THAT(table, HasSubstr("none (head 0)"));
  EXPECT_THAT(table, HasSubstr("Subscriptions: 0"));
}

}  // namespace
}  // namespace sidestream::cli
