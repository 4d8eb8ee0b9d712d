#include "server/rpc/call_auth.h"

#include <optional>

#include "server/common/logging.h"

namespace sidestream {

absl::StatusOr<std::shared_ptr<const Token>> AuthenticateCall(
    const Authorizer& authorizer, const grpc::ServerContextBase& context) {
  std::optional<absl::string_view> header;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    header = absl::string_view(it->second.data(), it->second.size());
  }
  absl::StatusOr<std::shared_ptr<const Token>> token = authorizer.Authenticate(header);
  if (!token.ok()) {
    LOG_DEBUG("grpc call refused: peer=", context.peer(), " ", token.status().message());
  }
  return token;
}

}  // namespace sidestream
