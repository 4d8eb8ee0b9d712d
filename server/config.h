// Server configuration: the options struct main() fills from flags and the
// environment, and the parsing and validation that turn user input into it
// (with messages that say what to fix).
#ifndef SIDESTREAM_SERVER_CONFIG_H_
#define SIDESTREAM_SERVER_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "server/verify/stripe_signature.h"

namespace sidestream {

struct ListenAddress {
  std::string host;  // an IP address literal, without brackets
  int port = 0;      // 0 picks a free port
};

// Parses "HOST:PORT": "127.0.0.1:8080", "[::1]:0", "0.0.0.0:8080",
// "localhost:8080" (taken as 127.0.0.1). INVALID_ARGUMENT naming `flag`.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view flag, absl::string_view value);

// True for 127.0.0.0/8 and ::1.
bool IsLoopbackHost(absl::string_view host);

// Loads the webhook signing secrets from a file (lines of "label=whsec_..."
// or "whsec_...") and/or the value of SIDESTREAM_WEBHOOK_SECRETS (a comma
// list of the same entries; nullopt when unset). Exactly one source must be
// given. FAILED_PRECONDITION with a hint when neither is; INVALID_ARGUMENT
// for bad entries; NOT_FOUND / PERMISSION_DENIED when the file can't be read.
absl::StatusOr<std::vector<WebhookSecret>> LoadWebhookSecrets(
    const std::string& file, const std::optional<std::string>& env_value,
    std::vector<std::string>* warnings);

struct ServerOptions {
  ListenAddress http{"127.0.0.1", 8080};
  ListenAddress grpc{"127.0.0.1", 50051};
  // Where the embedded log keeps its database.
  std::string data_dir = "data";
  std::string webhook_path = "/webhook";
  std::vector<WebhookSecret> secrets;
  absl::Duration signature_tolerance = absl::Seconds(300);
  absl::Duration retention = absl::Hours(24 * 7);
  bool allow_short_retention = false;
  uint64_t log_max_bytes = 0;
  uint64_t max_body_bytes = 1 << 20;
  int http_threads = 1;
  // A keep-alive connection may wait this long for its next request.
  absl::Duration http_idle_timeout = absl::Seconds(60);
  // A request must arrive completely within this time of its first byte.
  absl::Duration http_request_timeout = absl::Seconds(10);
  // Permits a non-loopback listen address without TLS (not yet supported).
  bool allow_insecure_remote = false;
  // A Subscribe stream with nothing to send gets a checkpoint this often.
  absl::Duration checkpoint_interval = absl::Seconds(5);
  // Recent events kept in memory for live subscribers.
  size_t hub_max_events = 8192;
  uint64_t hub_max_bytes = 64ull << 20;
  // Threads for log reads (catch-up subscribers, GetEvent, ListEvents).
  int reader_threads = 2;
};

// Checks the combination (a clear message for the first problem found):
// secrets present, tolerance > 0, retention > 0 and >= 72h unless allowed,
// non-loopback addresses only with allow_insecure_remote, webhook path
// starting with '/', max body >= 1 KiB, thread counts >= 1.
absl::Status ValidateServerOptions(const ServerOptions& options);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_CONFIG_H_
