// The sidestream.v1.Admin gRPC service: ingress counters, log state, open
// subscriptions, delivery totals and the process, for operators (grpcurl,
// sidestream-cli stats). The same collection feeds /metrics.
#ifndef SIDESTREAM_SERVER_RPC_ADMIN_SERVICE_H_
#define SIDESTREAM_SERVER_RPC_ADMIN_SERVICE_H_

#include "server/ops/stats.h"
#include "server/security/tokens.h"
#include "sidestream/v1/admin_service.grpc.pb.h"

namespace sidestream {

class AdminService final : public v1::Admin::CallbackService {
 public:
  // Callers need an admin token (PERMISSION_DENIED otherwise) when tokens
  // are configured. `authorizer` is not owned and must outlive the service.
  AdminService(StatsSources sources, const Authorizer* authorizer)
      : sources_(std::move(sources)), authorizer_(authorizer) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;

 private:
  const StatsSources sources_;
  const Authorizer* const authorizer_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_RPC_ADMIN_SERVICE_H_
