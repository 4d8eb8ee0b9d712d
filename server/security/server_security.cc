#include "server/security/server_security.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "server/security/tls_files.h"

namespace sidestream {
namespace {

std::string TokenNames(const SecurityFiles& files) {
  if (files.tokens == nullptr) return "(none: open access)";
  std::vector<std::string> names;
  for (const Token& t : files.tokens->tokens()) names.push_back(t.name);
  return absl::StrJoin(names, ",");
}

}  // namespace

absl::StatusOr<SecurityFiles> LoadSecurityFiles(const ServerOptions& options,
                                                const std::vector<WebhookSecret>& secrets) {
  SecurityFiles files;
  absl::StatusOr<SignatureVerifier> verifier =
      SignatureVerifier::Create(secrets, options.signature_tolerance);
  if (!verifier.ok()) return verifier.status();
  files.verifier = std::make_shared<const SignatureVerifier>(*std::move(verifier));
  for (const WebhookSecret& s : secrets) files.secret_labels.push_back(s.label);

  if (!options.grpc_tokens_file.empty()) {
    absl::StatusOr<TokenSet> tokens = TokenSet::Load(options.grpc_tokens_file);
    if (!tokens.ok()) return tokens.status();
    files.tokens = std::make_shared<const TokenSet>(*std::move(tokens));
  }

  if (!options.webhook_allowed_ips_file.empty()) {
    auto policy = std::make_shared<WebhookSourcePolicy>();
    absl::StatusOr<CidrList> allowed =
        CidrList::Load(options.webhook_allowed_ips_file, "--webhook_allowed_ips_file");
    if (!allowed.ok()) return allowed.status();
    policy->allowed = *std::move(allowed);
    absl::StatusOr<CidrList> proxies =
        CidrList::ParseCommaList(options.trusted_proxies, "--trusted_proxies");
    if (!proxies.ok()) return proxies.status();
    policy->trusted_proxies = *std::move(proxies);
    policy->proxy_header = absl::AsciiStrToLower(options.trusted_proxy_header);
    files.source_policy = std::move(policy);
  }

  if (options.grpc_tls.enabled()) {
    absl::StatusOr<std::string> cert =
        CheckCertificateAndKey(options.grpc_tls.cert_file, options.grpc_tls.key_file, "grpc_tls");
    if (!cert.ok()) return cert.status();
    files.grpc_certificate = *std::move(cert);
    if (!options.grpc_tls_client_ca_file.empty()) {
      absl::StatusOr<std::string> ca =
          CheckCaFile(options.grpc_tls_client_ca_file, "grpc_tls_client_ca_file");
      if (!ca.ok()) return ca.status();
      files.grpc_client_ca = *std::move(ca);
    }
  }
  return files;
}

std::vector<std::string> DescribeChanges(const SecurityFiles& before, const SecurityFiles& after) {
  std::vector<std::string> changes;
  if (before.secret_labels != after.secret_labels) {
    changes.push_back(absl::StrCat("webhook secrets: ", absl::StrJoin(before.secret_labels, ","),
                                   " -> ", absl::StrJoin(after.secret_labels, ",")));
  } else {
    // Same labels, maybe new values: say so without telling which.
    changes.push_back(
        absl::StrCat("webhook secrets re-read: ", absl::StrJoin(after.secret_labels, ",")));
  }
  const std::string tokens_before = TokenNames(before);
  const std::string tokens_after = TokenNames(after);
  if (tokens_before != tokens_after) {
    changes.push_back(absl::StrCat("access tokens: ", tokens_before, " -> ", tokens_after));
  } else if (after.tokens != nullptr) {
    changes.push_back(absl::StrCat("access tokens re-read: ", tokens_after));
  }
  if (after.source_policy != nullptr) {
    changes.push_back(
        absl::StrCat("webhook allow-list: ",
                     before.source_policy == nullptr ? 0 : before.source_policy->allowed.size(),
                     " -> ", after.source_policy->allowed.size(), " network(s)"));
  }
  if (before.grpc_certificate != after.grpc_certificate) {
    changes.push_back(absl::StrCat("grpc certificate files: ", after.grpc_certificate,
                                   " (picked up by new connections within "
                                   "--tls_reload_interval)"));
  }
  if (before.grpc_client_ca != after.grpc_client_ca) {
    changes.push_back(absl::StrCat("grpc client CA file: ", after.grpc_client_ca));
  }
  return changes;
}

std::shared_ptr<grpc::ServerCredentials> GrpcServerCredentials(const ServerOptions& options) {
  if (!options.grpc_tls.enabled()) return grpc::InsecureServerCredentials();
  const unsigned int refresh_seconds = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(options.tls_reload_interval)));
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (options.grpc_tls_client_ca_file.empty()) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        options.grpc_tls.key_file, options.grpc_tls.cert_file, refresh_seconds);
  } else {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        options.grpc_tls.key_file, options.grpc_tls.cert_file, options.grpc_tls_client_ca_file,
        refresh_seconds);
  }
  // gRPC's TLS stack negotiates TLS 1.2 or 1.3 only (HTTP/2 requires 1.2+).
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (!options.grpc_tls_client_ca_file.empty()) {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace sidestream
