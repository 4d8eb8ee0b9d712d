#include "server/ingress/ingress_stats.h"

#include <limits>
#include <string>

namespace sidestream {

static_assert(static_cast<size_t>(kAllRejectReasons[std::size(kAllRejectReasons) - 1]) + 1 ==
                  std::size(kAllRejectReasons),
              "kAllRejectReasons must list every reason in enum order");

void LatencyHistogramProto(const LatencyHistogram::Snapshot& snapshot, v1::LatencyHistogram* out) {
  out->set_count(snapshot.count);
  out->set_sum_seconds(snapshot.sum_seconds);
  for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
    v1::LatencyBucket* bucket = out->add_buckets();
    bucket->set_upper_bound_seconds(i < LatencyHistogram::kBounds.size()
                                        ? LatencyHistogram::kBounds[i]
                                        : std::numeric_limits<double>::infinity());
    bucket->set_cumulative_count(snapshot.cumulative[i]);
  }
}

v1::IngressStats IngressStats::ToProto() const {
  v1::IngressStats stats;
  stats.set_accepted(accepted());
  stats.set_duplicates(duplicates());
  for (RejectReason reason : kAllRejectReasons) {
    (*stats.mutable_rejections())[std::string(RejectReasonName(reason))] = rejected(reason);
  }
  LatencyHistogramProto(verify_latency_.Read(), stats.mutable_verify_latency());
  LatencyHistogramProto(append_latency_.Read(), stats.mutable_append_latency());
  return stats;
}

}  // namespace sidestream
