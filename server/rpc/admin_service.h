// The sidestream.v1.Admin gRPC service: ingress counters, log state and open
// subscriptions, for operators (grpcurl, sidestream-cli stats).
#ifndef SIDESTREAM_SERVER_RPC_ADMIN_SERVICE_H_
#define SIDESTREAM_SERVER_RPC_ADMIN_SERVICE_H_

#include "server/ingress/ingress_stats.h"
#include "server/log/event_log.h"
#include "server/rpc/subscription.h"
#include "sidestream/v1/admin_service.grpc.pb.h"

namespace sidestream {

class AdminService final : public v1::Admin::CallbackService {
 public:
  AdminService(EventLog* log, const IngressStats* ingress, SubscriptionRegistry* registry,
               absl::Time start_time)
      : log_(log), ingress_(ingress), registry_(registry), start_time_(start_time) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;

 private:
  EventLog* const log_;
  const IngressStats* const ingress_;
  SubscriptionRegistry* const registry_;
  const absl::Time start_time_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_RPC_ADMIN_SERVICE_H_
