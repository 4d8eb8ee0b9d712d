#include "server/config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

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
  for (const auto& [flag, address] :
       {std::pair<const char*, const ListenAddress*>{"http_listen", &options.http},
        {"grpc_listen", &options.grpc}}) {
    if (!IsLoopbackHost(address->host) && !options.allow_insecure_remote) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--", flag, " listens on ", address->host,
          ", which is not loopback, and TLS is not configured: events and signing would cross "
          "the network in clear text. Listen on 127.0.0.1 (behind a TLS-terminating proxy) or "
          "pass --allow_insecure_remote to accept the risk."));
    }
  }
  return absl::OkStatus();
}

}  // namespace sidestream
