// Authentication of a gRPC call: the "authorization: Bearer <token>"
// metadata checked against the Authorizer. Every Events and Admin method
// calls it first; health and reflection do not (see docs/operations.md,
// "Access tokens").
#ifndef SIDESTREAM_SERVER_RPC_CALL_AUTH_H_
#define SIDESTREAM_SERVER_RPC_CALL_AUTH_H_

#include <memory>

#include "absl/status/statusor.h"
#include <grpcpp/server_context.h>

#include "server/security/tokens.h"

namespace sidestream {

// The caller's token (Authorizer::Open() with open access);
// UNAUTHENTICATED when the metadata is missing or wrong. Failures are
// logged at debug level with the peer, never with the presented value.
absl::StatusOr<std::shared_ptr<const Token>> AuthenticateCall(
    const Authorizer& authorizer, const grpc::ServerContextBase& context);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_RPC_CALL_AUTH_H_
