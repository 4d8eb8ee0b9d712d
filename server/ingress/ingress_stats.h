// Webhook counters by outcome and latency histograms. Lock-free; read by
// Admin.GetStats and /metrics.
#ifndef SIDESTREAM_SERVER_INGRESS_INGRESS_STATS_H_
#define SIDESTREAM_SERVER_INGRESS_INGRESS_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <iterator>

#include "server/common/metrics.h"
#include "server/common/rejection.h"
#include "sidestream/v1/admin_service.pb.h"

namespace sidestream {

// `snapshot` in the API's form (buckets with their bounds).
void LatencyHistogramProto(const LatencyHistogram::Snapshot& snapshot, v1::LatencyHistogram* out);

class IngressStats {
 public:
  void CountAccepted() { accepted_.fetch_add(1, std::memory_order_relaxed); }
  void CountDuplicate() { duplicates_.fetch_add(1, std::memory_order_relaxed); }
  void CountRejected(RejectReason reason) {
    rejections_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }

  // Time to check a Stripe-Signature, and from append to durable.
  void ObserveVerify(absl::Duration latency) { verify_latency_.Observe(latency); }
  void ObserveAppend(absl::Duration latency) { append_latency_.Observe(latency); }

  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
  uint64_t rejected(RejectReason reason) const {
    return rejections_[static_cast<size_t>(reason)].load(std::memory_order_relaxed);
  }

  // Every counter, rejections included (zeros too, so dashboards see every
  // reason).
  v1::IngressStats ToProto() const;

 private:
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> duplicates_{0};
  std::array<std::atomic<uint64_t>, std::size(kAllRejectReasons)> rejections_{};
  LatencyHistogram verify_latency_;
  LatencyHistogram append_latency_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_INGRESS_INGRESS_STATS_H_
