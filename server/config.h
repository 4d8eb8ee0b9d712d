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

// A certificate chain and its private key (PEM files); TLS is on when both
// are set.
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  bool enabled() const { return !cert_file.empty() && !key_file.empty(); }
};

struct ServerOptions {
  ListenAddress http{"127.0.0.1", 8080};
  ListenAddress grpc{"127.0.0.1", 50051};
  // Probes (/healthz, /readyz) and /metrics.
  ListenAddress admin{"127.0.0.1", 9090};
  // SIGTERM: how long in-flight webhooks and gRPC calls may take to finish.
  absl::Duration shutdown_grace = absl::Seconds(20);
  // Where the embedded log keeps its database.
  std::string data_dir = "data";
  // Event log backend: "sqlite" (embedded, in data_dir) or "jetstream" (a
  // NATS JetStream stream shared by several instances; docs/distributed.md).
  std::string log_backend = "sqlite";
  // JetStream: server URLs, stream, subject prefix, replicas, credentials,
  // TLS and the timeout of connects, API calls and PubAcks.
  std::vector<std::string> nats_urls;
  std::string nats_stream = "SIDESTREAM_EVENTS";
  std::string nats_subject_prefix = "sidestream.events";
  int nats_replicas = 1;
  std::string nats_creds_file;
  std::string nats_tls_ca_file;
  TlsFiles nats_tls_client;
  absl::Duration nats_timeout = absl::Seconds(5);
  std::string webhook_path = "/webhook";
  std::vector<WebhookSecret> secrets;
  // The file `secrets` came from, re-read on reload; empty when they came
  // from the environment (then they cannot change without a restart).
  std::string webhook_secrets_file;
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
  // Permits a non-loopback gRPC or admin address with neither TLS nor
  // tokens (a warning is logged at start-up).
  bool allow_insecure_remote = false;

  // Security (docs/operations.md). TLS on a listener when both its
  // certificate and key file are set; certificates are re-read on SIGHUP and
  // when the files change (checked every `tls_reload_interval`).
  TlsFiles http_tls;
  TlsFiles grpc_tls;
  // Set: gRPC clients must present a certificate signed by one of these CAs.
  std::string grpc_tls_client_ca_file;
  TlsFiles admin_tls;
  absl::Duration tls_reload_interval = absl::Seconds(10);
  // Bearer tokens for gRPC (and /metrics); empty: open access, loopback only.
  std::string grpc_tokens_file;
  // Networks allowed to post webhooks; empty: any source.
  std::string webhook_allowed_ips_file;
  // Comma list of proxy networks whose `trusted_proxy_header` is believed.
  std::string trusted_proxies;
  // Such as "X-Forwarded-For"; empty: the TCP peer is the client.
  std::string trusted_proxy_header;
  // A Subscribe stream with nothing to send gets a checkpoint this often.
  absl::Duration checkpoint_interval = absl::Seconds(5);
  // Recent events kept in memory for live subscribers.
  size_t hub_max_events = 8192;
  uint64_t hub_max_bytes = 32ull << 20;
  // Threads for log reads (catch-up subscribers, GetEvent, ListEvents).
  int reader_threads = 2;
};

// Checks the combination (a clear message for the first problem found):
// secrets present, tolerance > 0, retention > 0 and >= 72h unless allowed,
// non-loopback addresses only with allow_insecure_remote, webhook path
// starting with '/', max body >= 1 KiB, thread counts >= 1.
absl::Status ValidateServerOptions(const ServerOptions& options);

// What is legal but worth a warning at start-up (one line each): webhooks
// in clear text on a non-loopback address, a remote gRPC or admin listener
// opened with --allow_insecure_remote, tokens crossing the network without
// TLS, remote gRPC with TLS but no way to tell clients apart.
std::vector<std::string> SecurityWarnings(const ServerOptions& options);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_CONFIG_H_
