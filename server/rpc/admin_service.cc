#include "server/rpc/admin_service.h"

#include "server/rpc/call_auth.h"
#include "server/rpc/status_util.h"

namespace sidestream {

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* context,
                                                 const v1::GetStatsRequest* request,
                                                 v1::GetStatsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<const Token>> token = AuthenticateCall(*authorizer_, *context);
  absl::Status allowed = token.ok() ? (*token)->CheckAdmin() : token.status();
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  *response = CollectStats(sources_);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace sidestream
