#include "client/cli/json_output.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include <google/protobuf/util/json_util.h>

namespace sidestream::cli {
namespace {

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print ", message.GetTypeName(), " as JSON: ", status.ToString()));
  }
  return out;
}

absl::Time ToAbslTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

std::string FormatTime(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", ToAbslTime(timestamp), absl::UTCTimeZone());
}

const char* OriginName(v1::Origin origin) {
  switch (origin) {
    case v1::ORIGIN_PLATFORM:
      return "platform";
    case v1::ORIGIN_CONNECT:
      return "connect";
    default:
      return "any";
  }
}

const char* LivemodeName(v1::Livemode livemode) {
  switch (livemode) {
    case v1::LIVEMODE_LIVE:
      return "live";
    case v1::LIVEMODE_TEST:
      return "test";
    default:
      return "any";
  }
}

// "types=payout.* origin=connect", or "everything" for an empty filter.
std::string DescribeFilter(const v1::EventFilter& filter) {
  std::vector<std::string> parts;
  if (!filter.types().empty())
    parts.push_back(absl::StrCat("types=", absl::StrJoin(filter.types(), ",")));
  if (!filter.accounts().empty()) {
    parts.push_back(absl::StrCat("accounts=", absl::StrJoin(filter.accounts(), ",")));
  }
  if (filter.origin() == v1::ORIGIN_PLATFORM || filter.origin() == v1::ORIGIN_CONNECT) {
    parts.push_back(absl::StrCat("origin=", OriginName(filter.origin())));
  }
  if (filter.livemode() == v1::LIVEMODE_LIVE || filter.livemode() == v1::LIVEMODE_TEST) {
    parts.push_back(absl::StrCat("mode=", LivemodeName(filter.livemode())));
  }
  return parts.empty() ? "everything" : absl::StrJoin(parts, " ");
}

}  // namespace

absl::StatusOr<std::string> ToJsonLine(const google::protobuf::Message& message) {
  return ToJson(message, /*pretty=*/false);
}

absl::StatusOr<std::string> ToPrettyJson(const google::protobuf::Message& message) {
  absl::StatusOr<std::string> json = ToJson(message, /*pretty=*/true);
  if (json.ok() && (json->empty() || json->back() != '\n')) json->push_back('\n');
  return json;
}

double HistogramQuantile(const v1::LatencyHistogram& histogram, double q) {
  if (histogram.count() == 0) return 0;
  const double rank = q * static_cast<double>(histogram.count());
  double lower = 0, largest_finite = 0;
  uint64_t below = 0;
  for (const v1::LatencyBucket& bucket : histogram.buckets()) {
    const double upper = bucket.upper_bound_seconds();
    const uint64_t cumulative = bucket.cumulative_count();
    if (static_cast<double>(cumulative) >= rank) {
      if (std::isinf(upper)) return largest_finite;
      const uint64_t in_bucket = cumulative - below;
      if (in_bucket == 0) return upper;
      return lower +
             (upper - lower) * (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
    }
    if (!std::isinf(upper)) largest_finite = upper;
    lower = upper;
    below = cumulative;
  }
  return largest_finite;
}

namespace {

std::string FormatLatency(const v1::LatencyHistogram& histogram) {
  if (histogram.count() == 0) return "no samples";
  auto ms = [&](double q) {
    return absl::StrFormat("%.3f ms", HistogramQuantile(histogram, q) * 1000);
  };
  return absl::StrCat("p50 ", ms(0.5), ", p99 ", ms(0.99), " (", histogram.count(),
                      " samples, estimated from buckets)");
}

}  // namespace

std::string FormatStatsTable(const v1::GetStatsResponse& stats, absl::Time now) {
  std::string out;
  absl::StrAppend(&out, "Sidestream ", stats.version().empty() ? "?" : stats.version());
  if (stats.has_start_time()) {
    const absl::Duration uptime =
        absl::Trunc(now - ToAbslTime(stats.start_time()), absl::Seconds(1));
    absl::StrAppend(&out, ", started ", FormatTime(stats.start_time()), " (up ",
                    absl::FormatDuration(uptime), ")");
  }
  absl::StrAppend(&out, "\n", stats.ready() ? "ready" : "NOT READY (see /readyz)");
  if (stats.has_process()) {
    const v1::ProcessStats& p = stats.process();
    absl::StrAppendFormat(&out, "; RSS %.1f MiB, CPU %.1f s, %d open files",
                          static_cast<double>(p.resident_memory_bytes()) / (1 << 20),
                          p.cpu_seconds(), p.open_fds());
  }
  absl::StrAppend(&out, "\n\nIngress\n");
  absl::StrAppendFormat(&out, "  %-12s %d\n", "accepted", stats.ingress().accepted());
  absl::StrAppendFormat(&out, "  %-12s %d\n", "duplicates", stats.ingress().duplicates());
  // Map order is unspecified: sort reasons for a stable display.
  std::vector<std::pair<std::string, uint64_t>> rejections(stats.ingress().rejections().begin(),
                                                           stats.ingress().rejections().end());
  std::sort(rejections.begin(), rejections.end());
  if (rejections.empty()) {
    absl::StrAppendFormat(&out, "  %-12s %s\n", "rejected", "none");
  }
  for (const auto& [reason, count] : rejections) {
    absl::StrAppendFormat(&out, "  %-12s %-28s %d\n", "rejected", reason, count);
  }

  absl::StrAppendFormat(&out, "  %-12s %s\n", "verify",
                        FormatLatency(stats.ingress().verify_latency()));
  absl::StrAppendFormat(&out, "  %-12s %s\n", "append",
                        FormatLatency(stats.ingress().append_latency()));

  const v1::LogStats& log = stats.log();
  absl::StrAppend(&out, "\nLog",
                  log.backend().empty() ? "" : absl::StrCat(" (", log.backend(), ")"), "\n");
  absl::StrAppendFormat(&out, "  %-12s %s\n", "epoch",
                        log.log_epoch().empty() ? "-" : log.log_epoch());
  if (log.event_count() == 0) {
    absl::StrAppendFormat(&out, "  %-12s none (head %d)\n", "sequences", log.last_sequence());
  } else {
    absl::StrAppendFormat(&out, "  %-12s %d .. %d\n", "sequences", log.first_sequence(),
                          log.last_sequence());
  }
  absl::StrAppendFormat(&out, "  %-12s %d\n", "events", log.event_count());
  absl::StrAppendFormat(&out, "  %-12s %d\n", "bytes", log.event_bytes());
  absl::StrAppendFormat(&out, "  %-12s %d\n", "trimmed", log.trimmed_events());
  if (log.commits() > 0) {
    absl::StrAppendFormat(
        &out, "  %-12s %d (%.1f appends each on average)\n", "commits", log.commits(),
        static_cast<double>(log.committed_appends()) / static_cast<double>(log.commits()));
  }
  if (!log.writable() && stats.has_log()) {
    absl::StrAppendFormat(&out, "  %-12s NO: %s\n", "writable", log.last_error());
  }

  const v1::DeliveryStats& delivery = stats.delivery();
  absl::StrAppend(&out, "\nDelivery\n");
  absl::StrAppendFormat(&out, "  %-12s %d sent, %d bytes, %d checkpoints\n", "events",
                        delivery.events_sent(), delivery.bytes_sent(), delivery.checkpoints_sent());
  absl::StrAppendFormat(&out, "  %-12s %d reads, %d events\n", "catch-up", delivery.log_reads(),
                        delivery.log_read_events());
  absl::StrAppendFormat(&out, "  %-12s %d opened since start\n", "streams",
                        delivery.subscriptions_opened());

  absl::StrAppend(&out, "\nSubscriptions: ", stats.subscriptions_size(), "\n");
  if (stats.subscriptions_size() == 0) return out;
  size_t peer_width = 4;
  for (const v1::SubscriptionStats& s : stats.subscriptions()) {
    peer_width = std::max(peer_width, s.peer().size());
  }
  const int width = static_cast<int>(peer_width);
  absl::StrAppendFormat(&out, "  %-*s %10s %8s %10s  %-11s %-20s  %s\n", width, "PEER", "CURSOR",
                        "LAG", "SENT", "STATE", "SINCE", "FILTER");
  for (const v1::SubscriptionStats& s : stats.subscriptions()) {
    absl::StrAppendFormat(&out, "  %-*s %10d %8d %10d  %-11s %-20s  %s\n", width, s.peer(),
                          s.cursor(), s.lag(), s.events_sent(),
                          s.catching_up() ? "catching-up" : "live", FormatTime(s.start_time()),
                          DescribeFilter(s.filter()));
  }
  return out;
}

}  // namespace sidestream::cli
