#include "server/ingress/ingress_stats.h"

#include <string>

namespace sidestream {

static_assert(static_cast<size_t>(RejectReason::kStoreUnavailable) + 1 ==
                  std::size(kAllRejectReasons),
              "kAllRejectReasons must list every reason in enum order");

v1::IngressStats IngressStats::ToProto() const {
  v1::IngressStats stats;
  stats.set_accepted(accepted());
  stats.set_duplicates(duplicates());
  for (RejectReason reason : kAllRejectReasons) {
    (*stats.mutable_rejections())[std::string(RejectReasonName(reason))] = rejected(reason);
  }
  return stats;
}

}  // namespace sidestream
