#include "server/rpc/admin_service.h"

#include "server/common/time_proto.h"

namespace sidestream {

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* context,
                                                 const v1::GetStatsRequest* request,
                                                 v1::GetStatsResponse* response) {
  *response->mutable_ingress() = ingress_->ToProto();
  const LogInfo info = log_->Info();
  v1::LogStats* log = response->mutable_log();
  log->set_log_epoch(info.epoch);
  log->set_first_sequence(info.event_count == 0 ? 0 : info.first_sequence);
  log->set_last_sequence(info.last_sequence);
  log->set_event_count(info.event_count);
  log->set_event_bytes(info.event_bytes);
  log->set_backend(info.backend);
  for (v1::SubscriptionStats& s : registry_->Stats()) {
    *response->add_subscriptions() = std::move(s);
  }
  *response->mutable_start_time() = TimestampProto(start_time_);
  response->set_version(SIDESTREAM_VERSION);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace sidestream
