// Webhook counters by outcome. Lock-free; read by Admin.GetStats.
#ifndef SIDESTREAM_SERVER_INGRESS_INGRESS_STATS_H_
#define SIDESTREAM_SERVER_INGRESS_INGRESS_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <iterator>

#include "server/common/rejection.h"
#include "sidestream/v1/admin_service.pb.h"

namespace sidestream {

class IngressStats {
 public:
  void CountAccepted() { accepted_.fetch_add(1, std::memory_order_relaxed); }
  void CountDuplicate() { duplicates_.fetch_add(1, std::memory_order_relaxed); }
  void CountRejected(RejectReason reason) {
    rejections_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }

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
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_INGRESS_INGRESS_STATS_H_
