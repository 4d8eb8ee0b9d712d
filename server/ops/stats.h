// One picture of the server's state, for Admin.GetStats and /metrics.
//
// CollectStats reads every component's counters into a GetStatsResponse;
// RenderPrometheus turns that same message into the Prometheus text format.
// Both views come from one collection, so `sidestream-cli stats` and a
// scrape can never disagree on what a figure means.
#ifndef SIDESTREAM_SERVER_OPS_STATS_H_
#define SIDESTREAM_SERVER_OPS_STATS_H_

#include <functional>
#include <string>

#include "absl/time/time.h"

#include "server/ingress/ingress_stats.h"
#include "server/log/event_log.h"
#include "server/rpc/subscription.h"
#include "sidestream/v1/admin_service.pb.h"

namespace sidestream {

// Whether the server should receive traffic, and if not, why.
struct Readiness {
  bool ready = true;
  std::string reason;  // empty when ready
};

// Where the figures come from. Pointers are not owned.
struct StatsSources {
  const IngressStats* ingress = nullptr;
  EventLog* log = nullptr;
  const SubscriptionRegistry* registry = nullptr;
  const DeliveryCounters* delivery = nullptr;
  absl::Time start_time;
  std::function<Readiness()> readiness;
};

// Reads /proc/self: RSS, CPU time, open descriptors. Zeros where /proc is
// not readable.
v1::ProcessStats ReadProcessStats(absl::Time start_time);

v1::GetStatsResponse CollectStats(const StatsSources& sources);

// The Prometheus text exposition (format 0.0.4) of `stats`. Metric names
// follow Prometheus conventions: sidestream_ prefix, _total for counters,
// base units (_seconds, _bytes); process_* as the official clients name
// them. docs/operations.md lists every metric.
std::string RenderPrometheus(const v1::GetStatsResponse& stats);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_OPS_STATS_H_
