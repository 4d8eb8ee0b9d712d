// The sidestream.v1.Events gRPC service.
//
// Subscribe is registered as a raw (ByteBuffer) callback method so that
// stored events go out as shared, pre-serialized slices; the request is
// parsed by hand. Unary RPCs that read the log run on the reader WorkQueue so
// that gRPC's callback threads never block on disk.
#ifndef SIDESTREAM_SERVER_RPC_EVENTS_SERVICE_H_
#define SIDESTREAM_SERVER_RPC_EVENTS_SERVICE_H_

#include "server/rpc/subscription.h"
#include "server/security/tokens.h"
#include "sidestream/v1/events_service.grpc.pb.h"

namespace sidestream {

// Resolves the start of a Subscribe or ListEvents call against the log:
// a cursor, or a time still to resolve. INVALID_ARGUMENT for an unknown
// position; FAILED_PRECONDITION for a cursor of another epoch or beyond the
// head; OUT_OF_RANGE for a cursor older than retention (naming the oldest
// available sequence); UNAVAILABLE while the log has no epoch (not open
// yet). `default_position` applies when no start is set.
absl::StatusOr<Subscription::Start> ResolveStart(const LogInfo& info, uint64_t hub_head,
                                                 bool has_after_sequence, uint64_t after_sequence,
                                                 const google::protobuf::Timestamp* start_time,
                                                 bool has_position, v1::StartPosition position,
                                                 v1::StartPosition default_position,
                                                 absl::string_view log_epoch);

// Every method first authenticates the call (UNAUTHENTICATED), then checks
// the request against the token's scope: a Subscribe or ListEvents filter
// beyond it is PERMISSION_DENIED; GetEvent of an event outside it is
// NOT_FOUND, exactly as for an id that is not stored, so a scoped token
// cannot learn which other events exist.
class EventsService final
    : public v1::Events::WithRawCallbackMethod_Subscribe<v1::Events::CallbackService> {
 public:
  // `authorizer` is not owned and must outlive the service.
  EventsService(SubscriptionEnv env, SubscriptionRegistry* registry, const Authorizer* authorizer)
      : env_(env), registry_(registry), authorizer_(authorizer) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* GetEvent(grpc::CallbackServerContext* context,
                                     const v1::GetEventRequest* request,
                                     v1::GetEventResponse* response) override;
  grpc::ServerUnaryReactor* ListEvents(grpc::CallbackServerContext* context,
                                       const v1::ListEventsRequest* request,
                                       v1::ListEventsResponse* response) override;

 private:
  const SubscriptionEnv env_;
  SubscriptionRegistry* const registry_;
  const Authorizer* const authorizer_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_RPC_EVENTS_SERVICE_H_
