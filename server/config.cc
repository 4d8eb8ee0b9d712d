#include "server/config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

namespace sidestream {
namespace {

// Parses an IP address literal exactly as the listeners will (inet_pton):
// no leading zeros, signs or spaces; every IPv6 spelling.
bool ParseIp(absl::string_view host, int family, void* out) {
  const std::string text(host);
  return inet_pton(family, text.c_str(), out) == 1;
}

bool IsIpv4(absl::string_view host) {
  in_addr addr;
  return ParseIp(host, AF_INET, &addr);
}

bool IsIpv6(absl::string_view host) {
  in6_addr addr;
  return ParseIp(host, AF_INET6, &addr);
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view flag, absl::string_view value) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", value, ": ", why,
                                                   " (expected HOST:PORT, e.g. 127.0.0.1:8080 "
                                                   "or [::1]:8080; port 0 picks a free port)"));
  };
  ListenAddress address;
  absl::string_view host, port;
  if (absl::StartsWith(value, "[")) {
    size_t close = value.find("]:");
    if (close == absl::string_view::npos) return bad("missing \"]:PORT\"");
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
    if (!IsIpv6(host)) return bad("not an IPv6 address");
  } else {
    size_t colon = value.rfind(':');
    if (colon == absl::string_view::npos) return bad("missing port");
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
    if (host == "localhost") host = "127.0.0.1";
    if (!IsIpv4(host)) return bad("host must be an IP address or localhost");
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(port, &address.port) || address.port > 65535) {
    return bad("port must be 0 to 65535");
  }
  address.host = std::string(host);
  return address;
}

bool IsLoopbackHost(absl::string_view host) {
  in_addr v4;
  if (ParseIp(host, AF_INET, &v4)) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  return ParseIp(host, AF_INET6, &v6) && IN6_IS_ADDR_LOOPBACK(&v6);
}

absl::StatusOr<std::vector<WebhookSecret>> LoadWebhookSecrets(
    const std::string& file, const std::optional<std::string>& env_value,
    std::vector<std::string>* warnings) {
  if (!file.empty() && env_value.has_value()) {
    return absl::InvalidArgumentError(
        "both --webhook_secrets_file and SIDESTREAM_WEBHOOK_SECRETS are set; use one");
  }
  if (file.empty() && !env_value.has_value()) {
    return absl::FailedPreconditionError(
        "no webhook signing secret configured: set --webhook_secrets_file to a file with lines "
        "of label=whsec_... (from the Stripe dashboard or `stripe listen`), or the environment "
        "variable SIDESTREAM_WEBHOOK_SECRETS to a comma list of them. Secrets are never taken "
        "from the command line.");
  }
  std::string text;
  std::string source;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      const int err = errno;
      std::string msg =
          absl::StrCat("cannot read --webhook_secrets_file ", file, ": ", std::strerror(err));
      return err == EACCES ? absl::PermissionDeniedError(msg) : absl::NotFoundError(msg);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    // A directory opens but does not read; an I/O error mid-way would load
    // only some of the secrets. Either way: refuse, naming the file.
    struct stat st;
    if (stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || in.bad()) {
      return absl::FailedPreconditionError(absl::StrCat("cannot read --webhook_secrets_file ", file,
                                                        ": not a readable regular file"));
    }
    text = ss.str();
    source = file;
  } else {
    text = *env_value;
    source = "SIDESTREAM_WEBHOOK_SECRETS";
  }
  absl::StatusOr<std::vector<WebhookSecret>> secrets = ParseWebhookSecrets(text, warnings);
  if (!secrets.ok()) {
    return absl::Status(secrets.status().code(),
                        absl::StrCat(source, ": ", secrets.status().message()));
  }
  return secrets;
}

absl::Status ValidateServerOptions(const ServerOptions& options) {
  if (options.secrets.empty()) {
    return absl::FailedPreconditionError("no webhook signing secret configured");
  }
  if (options.signature_tolerance <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--signature_tolerance must be positive (e.g. 300s); a tolerance of zero would not "
        "disable the timestamp check, it would refuse every webhook");
  }
  if (options.log_backend != "sqlite" && options.log_backend != "jetstream") {
    return absl::InvalidArgumentError(
        absl::StrCat("--log=", options.log_backend, " is not a backend: use sqlite or jetstream"));
  }
  if (options.log_backend == "jetstream") {
    if (options.nats_urls.empty()) {
      return absl::InvalidArgumentError(
          "--log=jetstream needs --nats_url (a comma list such as nats://127.0.0.1:4222)");
    }
    for (const std::string& url : options.nats_urls) {
      if (!absl::StartsWith(url, "nats://") && !absl::StartsWith(url, "tls://")) {
        return absl::InvalidArgumentError(
            absl::StrCat("--nats_url ", url, " must start with nats:// or tls://"));
      }
    }
    if (options.nats_replicas < 1 || options.nats_replicas > 5) {
      return absl::InvalidArgumentError("--nats_replicas must be between 1 and 5");
    }
    if (options.nats_timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--nats_timeout must be positive (e.g. 5s)");
    }
    if (options.nats_tls_client.cert_file.empty() != options.nats_tls_client.key_file.empty()) {
      return absl::InvalidArgumentError("--nats_tls_cert_file and --nats_tls_key_file go together");
    }
  }
  if (options.retention <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--retention must be positive (e.g. 168h)");
  }
  if (options.retention < absl::Hours(72) && !options.allow_short_retention) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--retention=", absl::FormatDuration(options.retention),
        " is shorter than Stripe's 3-day retry horizon (72h); events could be lost to a "
        "subscriber that is down that long. Use --allow_short_retention to force it."));
  }
  if (options.webhook_path.empty() || options.webhook_path[0] != '/') {
    return absl::InvalidArgumentError("--webhook_path must start with '/'");
  }
  if (options.max_body_bytes < 1024) {
    return absl::InvalidArgumentError("--max_body_bytes must be at least 1024");
  }
  if (options.http_threads < 1) {
    return absl::InvalidArgumentError("--http_threads must be at least 1");
  }
  if (options.http_idle_timeout <= absl::ZeroDuration() ||
      options.http_request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--http_idle_timeout and --http_request_timeout must be positive");
  }
  if (options.checkpoint_interval < absl::Milliseconds(500)) {
    return absl::InvalidArgumentError("--checkpoint_interval must be at least 500ms");
  }
  if (options.hub_max_events < 1 || options.hub_max_bytes < 1) {
    return absl::InvalidArgumentError("--hub_window_events and --hub_window_bytes must be >= 1");
  }
  if (options.reader_threads < 1) {
    return absl::InvalidArgumentError("--reader_threads must be at least 1");
  }
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("--data_dir must not be empty");
  }
  for (const auto& [prefix, tls] :
       {std::pair<const char*, const TlsFiles*>{"http_tls", &options.http_tls},
        {"grpc_tls", &options.grpc_tls},
        {"admin_tls", &options.admin_tls}}) {
    if (tls->cert_file.empty() != tls->key_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", prefix, "_cert_file and --", prefix,
                       "_key_file must be set together (TLS needs "
                       "both the certificate chain and its private key)"));
    }
  }
  if (!options.grpc_tls_client_ca_file.empty() && !options.grpc_tls.enabled()) {
    return absl::InvalidArgumentError(
        "--grpc_tls_client_ca_file requires --grpc_tls_cert_file and --grpc_tls_key_file "
        "(client certificates are checked only over TLS)");
  }
  if (options.tls_reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--tls_reload_interval must be at least 1s");
  }
  if (!options.trusted_proxy_header.empty()) {
    const std::string& h = options.trusted_proxy_header;
    if (!std::all_of(h.begin(), h.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_'; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--trusted_proxy_header=", h, " is not a header name (such as X-Forwarded-For)"));
    }
    if (options.trusted_proxies.empty()) {
      return absl::InvalidArgumentError(
          "--trusted_proxy_header needs --trusted_proxies (the networks of the proxies whose "
          "header is believed); otherwise any client could claim any address");
    }
    if (options.webhook_allowed_ips_file.empty()) {
      return absl::InvalidArgumentError(
          "--trusted_proxy_header only matters with --webhook_allowed_ips_file; set both or "
          "neither");
    }
  } else if (!options.trusted_proxies.empty()) {
    return absl::InvalidArgumentError(
        "--trusted_proxies needs --trusted_proxy_header (the header those proxies set, such as "
        "X-Forwarded-For)");
  }
  // Webhooks may arrive in clear text from anywhere: each one is
  // authenticated by its signature, and TLS often ends at the ingress.
  // gRPC and admin serve data: remote only with TLS or tokens.
  const bool tokens = !options.grpc_tokens_file.empty();
  for (const auto& [flag, address, tls] :
       {std::tuple<const char*, const ListenAddress*, bool>{"grpc_listen", &options.grpc,
                                                            options.grpc_tls.enabled()},
        {"admin_listen", &options.admin, options.admin_tls.enabled()}}) {
    if (!IsLoopbackHost(address->host) && !tls && !tokens && !options.allow_insecure_remote) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--", flag, " listens on ", address->host,
          ", which is not loopback, with neither TLS nor access tokens: anyone who can reach it "
          "could read every event. Configure TLS (--",
          absl::string_view(flag).substr(0, absl::string_view(flag).find('_')),
          "_tls_cert_file and _key_file) and/or --grpc_tokens_file, listen on 127.0.0.1, or "
          "pass --allow_insecure_remote to accept the risk."));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> SecurityWarnings(const ServerOptions& options) {
  std::vector<std::string> warnings;
  const bool tokens = !options.grpc_tokens_file.empty();
  if (!IsLoopbackHost(options.http.host) && !options.http_tls.enabled()) {
    warnings.push_back(absl::StrCat(
        "webhooks are received in clear text on ", options.http.host,
        " (not loopback); fine behind a TLS-terminating ingress, since every webhook is "
        "signature-checked, otherwise set --http_tls_cert_file and --http_tls_key_file"));
  }
  for (const auto& [flag, address, tls] :
       {std::tuple<const char*, const ListenAddress*, bool>{"grpc_listen", &options.grpc,
                                                            options.grpc_tls.enabled()},
        {"admin_listen", &options.admin, options.admin_tls.enabled()}}) {
    if (IsLoopbackHost(address->host)) continue;
    if (!tls && !tokens) {
      warnings.push_back(absl::StrCat(
          "--allow_insecure_remote: --", flag, " listens on ", address->host,
          " with neither TLS nor access tokens; anyone who can reach it can read every event"));
    } else if (!tls) {
      warnings.push_back(absl::StrCat("--", flag, " listens on ", address->host,
                                      " without TLS: access tokens cross the network in clear "
                                      "text"));
    }
  }
  if (!IsLoopbackHost(options.grpc.host) && options.grpc_tls.enabled() && !tokens &&
      options.grpc_tls_client_ca_file.empty()) {
    warnings.push_back(absl::StrCat(
        "--grpc_listen listens on ", options.grpc.host,
        " with TLS but neither client certificates nor access tokens: any client that can "
        "reach it can read every event (set --grpc_tls_client_ca_file or --grpc_tokens_file)"));
  }
  return warnings;
}

}  // namespace sidestream
