// The one place where absl::Status becomes grpc::Status. The codes are the
// same canonical set, so the mapping is one to one.
#ifndef SIDESTREAM_SERVER_RPC_STATUS_UTIL_H_
#define SIDESTREAM_SERVER_RPC_STATUS_UTIL_H_

#include "absl/status/status.h"
#include <grpcpp/support/status.h>

namespace sidestream {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_RPC_STATUS_UTIL_H_
