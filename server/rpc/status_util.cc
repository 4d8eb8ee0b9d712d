#include "server/rpc/status_util.h"

#include <string>

namespace sidestream {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // Messages may quote request fields (an id, a filter entry, an epoch) of
  // any length. The message travels percent-encoded in metadata, and a
  // client refuses metadata above its limit (8 KiB by default), losing the
  // code: it would see RESOURCE_EXHAUSTED instead. Keep messages short, cut
  // on a UTF-8 boundary.
  constexpr size_t kMaxMessageBytes = 1024;
  absl::string_view message = status.message();
  if (message.size() > kMaxMessageBytes) {
    size_t cut = kMaxMessageBytes;
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
    return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                        std::string(message.substr(0, cut)) + "...");
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(message));
}

}  // namespace sidestream
