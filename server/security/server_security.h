// The server's security settings that live in files (signing secrets,
// access tokens, the webhook source allow-list, certificates), loaded as
// one unit: at start-up, and again on reload (SIGHUP), where everything is
// validated before anything is swapped.
#ifndef SIDESTREAM_SERVER_SECURITY_SERVER_SECURITY_H_
#define SIDESTREAM_SERVER_SECURITY_SERVER_SECURITY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <grpcpp/security/server_credentials.h>

#include "server/config.h"
#include "server/security/ip_allow_list.h"
#include "server/security/tokens.h"
#include "server/verify/stripe_signature.h"

namespace sidestream {

// One consistent snapshot of the file-based settings.
struct SecurityFiles {
  // The verifier for the configured secrets, and their labels (never the
  // secrets) for logs.
  std::shared_ptr<const SignatureVerifier> verifier;
  std::vector<std::string> secret_labels;
  // Null: open access (no --grpc_tokens_file).
  std::shared_ptr<const TokenSet> tokens;
  // Null: webhooks from any source.
  std::shared_ptr<const WebhookSourcePolicy> source_policy;
  // Descriptions of the certificates in the files (for logs), "" when off.
  std::string grpc_certificate;
  std::string grpc_client_ca;
};

// Loads everything. `secrets` are the ones main() loaded (the file or the
// environment); on reload pass the file's fresh content, or the same
// secrets when they came from the environment. Errors name the flag and
// file; nothing is half-loaded.
absl::StatusOr<SecurityFiles> LoadSecurityFiles(const ServerOptions& options,
                                                const std::vector<WebhookSecret>& secrets);

// One line per difference between `before` and `after` ("webhook secrets:
// live,old -> live,new"), for the reload log. Never secret values.
std::vector<std::string> DescribeChanges(const SecurityFiles& before, const SecurityFiles& after);

// Credentials for the gRPC listener: insecure, or TLS with certificates the
// gRPC library re-reads from the files every `tls_reload_interval` (mTLS
// when a client CA is set: client certificates required and verified).
std::shared_ptr<grpc::ServerCredentials> GrpcServerCredentials(const ServerOptions& options);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_SECURITY_SERVER_SECURITY_H_
