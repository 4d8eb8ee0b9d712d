// sidestream: the server binary. Flags (each also settable through the
// environment as SIDESTREAM_<FLAG_NAME>; a flag on the command line wins)
// become ServerOptions; everything else lives in the server library.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

#include "server/common/logging.h"
#include "server/common/process_tuning.h"
#include "server/common/thread_name.h"
#include "server/config.h"
#include "server/server.h"

ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "Address for Stripe's webhook POSTs, HOST:PORT (port 0 picks a free port). Loopback "
          "by default: put a TLS-terminating proxy or ingress in front.");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:50051",
          "Address of the gRPC API (Events, Admin, health, reflection), HOST:PORT.");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9090",
          "Address of the admin HTTP listener, HOST:PORT: /healthz (liveness), /readyz "
          "(readiness) and /metrics (Prometheus). Keep it off the webhook port.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(20),
          "On SIGTERM or SIGINT, how long in-flight webhooks and gRPC calls may take to finish "
          "before the process exits. A second signal exits at once.");
ABSL_FLAG(std::string, data_dir, "data",
          "Directory of the embedded event log (created if missing).");
ABSL_FLAG(std::string, webhook_path, "/webhook", "HTTP path that accepts Stripe webhooks.");
ABSL_FLAG(std::string, webhook_secrets_file, "",
          "File with the webhook signing secrets, one per line: label=whsec_... or whsec_... "
          "Alternatively set SIDESTREAM_WEBHOOK_SECRETS to a comma list. Never on the command "
          "line.");
ABSL_FLAG(absl::Duration, signature_tolerance, absl::Seconds(300),
          "Largest accepted difference between a webhook's signed timestamp and now, past or "
          "future. Must be positive.");
ABSL_FLAG(absl::Duration, retention, absl::Hours(24 * 7),
          "How long events are kept. At least 72h (Stripe's retry horizon) unless "
          "--allow_short_retention.");
ABSL_FLAG(bool, allow_short_retention, false, "Permit --retention below 72h.");
ABSL_FLAG(uint64_t, log_max_bytes, 0,
          "Trim the oldest events when the stored events exceed this many bytes. 0 = no limit.");
ABSL_FLAG(std::string, log, "sqlite",
          "Event log backend: sqlite (embedded, in --data_dir) or jetstream (a NATS JetStream "
          "stream shared by several instances; see docs/distributed.md).");
ABSL_FLAG(std::string, nats_url, "",
          "With --log=jetstream: comma list of NATS server URLs, such as "
          "nats://127.0.0.1:4222 (tls:// for TLS).");
ABSL_FLAG(std::string, nats_stream, "SIDESTREAM_EVENTS",
          "With --log=jetstream: the stream, created when missing and otherwise checked "
          "against these flags.");
ABSL_FLAG(std::string, nats_subject_prefix, "sidestream.events",
          "With --log=jetstream: subjects are PREFIX.<live|test>.<account|_platform>.<event "
          "id>.<type tokens>.");
ABSL_FLAG(int, nats_replicas, 1,
          "With --log=jetstream: copies of each event in the NATS cluster (3 on a three-node "
          "cluster).");
ABSL_FLAG(std::string, nats_creds_file, "",
          "With --log=jetstream: NATS credentials file (JWT and NKey seed).");
ABSL_FLAG(std::string, nats_tls_ca_file, "",
          "With --log=jetstream: PEM CA certificates of the NATS servers; enables TLS.");
ABSL_FLAG(std::string, nats_tls_cert_file, "",
          "With --log=jetstream: PEM client certificate for NATS (with --nats_tls_key_file).");
ABSL_FLAG(std::string, nats_tls_key_file, "", "PEM private key of --nats_tls_cert_file.");
ABSL_FLAG(absl::Duration, nats_timeout, absl::Seconds(5),
          "With --log=jetstream: timeout of the connect, of JetStream API calls and of each "
          "publish acknowledgement (a webhook not acknowledged in time gets 503).");
ABSL_FLAG(uint64_t, max_body_bytes, 1 << 20, "Largest accepted webhook body; larger ones get 413.");
ABSL_FLAG(int, http_threads, 1, "HTTP event-loop threads.");
ABSL_FLAG(absl::Duration, http_idle_timeout, absl::Seconds(60),
          "How long a keep-alive HTTP connection may wait for its next request.");
ABSL_FLAG(absl::Duration, http_request_timeout, absl::Seconds(10),
          "How long a request may take to arrive once it started (a client trickling headers "
          "or body is cut off).");
ABSL_FLAG(bool, allow_insecure_remote, false,
          "Permit a non-loopback --grpc_listen or --admin_listen with neither TLS nor "
          "--grpc_tokens_file (a warning is logged). Anyone who can reach it can read events.");
ABSL_FLAG(std::string, http_tls_cert_file, "",
          "PEM certificate chain for the webhook listener; with --http_tls_key_file it serves "
          "HTTPS (TLS 1.2+). Re-read on SIGHUP and when the file changes.");
ABSL_FLAG(std::string, http_tls_key_file, "", "PEM private key of --http_tls_cert_file.");
ABSL_FLAG(std::string, grpc_tls_cert_file, "",
          "PEM certificate chain for the gRPC listener; with --grpc_tls_key_file it serves TLS. "
          "Re-read when the file changes (within --tls_reload_interval).");
ABSL_FLAG(std::string, grpc_tls_key_file, "", "PEM private key of --grpc_tls_cert_file.");
ABSL_FLAG(std::string, grpc_tls_client_ca_file, "",
          "PEM CA certificates; when set, gRPC clients must present a certificate signed by one "
          "of them (mutual TLS).");
ABSL_FLAG(std::string, admin_tls_cert_file, "",
          "PEM certificate chain for the admin listener; with --admin_tls_key_file it serves "
          "HTTPS.");
ABSL_FLAG(std::string, admin_tls_key_file, "", "PEM private key of --admin_tls_cert_file.");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(10),
          "How often certificate files are checked for changes (SIGHUP also reloads the HTTPS "
          "listeners at once).");
ABSL_FLAG(std::string, grpc_tokens_file, "",
          "File of gRPC access tokens with their scopes, one per line: name=... token=... "
          "[admin=true] [accounts=acct_1,platform] [types=invoice.*] [livemode=live|test|any]. "
          "Re-read on SIGHUP. Unset: open access (loopback only).");
ABSL_FLAG(std::string, webhook_allowed_ips_file, "",
          "File of addresses/CIDR networks (one per line) allowed to POST webhooks; others get "
          "403. Re-read on SIGHUP. Unset: any source (signatures are still checked).");
ABSL_FLAG(std::string, trusted_proxies, "",
          "Comma list of CIDR networks of reverse proxies whose --trusted_proxy_header is "
          "believed.");
ABSL_FLAG(std::string, trusted_proxy_header, "",
          "Header naming the client address, such as X-Forwarded-For, read only from "
          "--trusted_proxies peers (the right-most address not itself a trusted proxy). Empty: "
          "the TCP peer is the client.");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::Seconds(5),
          "Longest silence on a Subscribe stream: a checkpoint (head sequence) is sent when no "
          "event matched for this long.");
ABSL_FLAG(uint64_t, hub_window_events, 8192,
          "Recent events kept in memory for live subscribers; subscribers further behind read "
          "the log.");
ABSL_FLAG(uint64_t, hub_window_bytes, 32ull << 20, "Byte limit of the in-memory window.");
ABSL_FLAG(int, reader_threads, 2,
          "Threads for log reads (catching-up subscribers, GetEvent, ListEvents).");
ABSL_FLAG(std::string, log_level, "info", "Least severe log level: debug, info, warning, error.");
ABSL_FLAG(std::string, log_format, "json",
          "Log line format on stderr: json (one object per line), logfmt, or text.");

namespace {

// The server's own flags (those defined in this file), sorted by name.
// Every one of them can also be set as SIDESTREAM_<NAME> in the environment.
std::vector<absl::CommandLineFlag*> ServerFlags() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), "server/main.cc")) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  return flags;
}

std::string EnvName(absl::string_view flag) {
  return absl::StrCat("SIDESTREAM_", absl::AsciiStrToUpper(flag));
}

// Applies SIDESTREAM_<FLAG> environment variables; the command line, parsed
// afterwards, overrides them.
bool ApplyEnvironment() {
  for (absl::CommandLineFlag* flag : ServerFlags()) {
    const std::string var = EnvName(flag->Name());
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "sidestream: invalid %s=%s: %s\n", var.c_str(), value, error.c_str());
      return false;
    }
  }
  return true;
}

// --help: every flag with its environment variable, default and meaning.
// (Abseil's own --helpfull also lists the libraries' flags.)
void PrintHelp() {
  std::cout << absl::ProgramUsageMessage() << "\n\nFlags (environment variable, default):\n";
  for (const absl::CommandLineFlag* flag : ServerFlags()) {
    std::string def = flag->DefaultValue();
    if (flag->IsOfType<std::string>()) def = absl::StrCat("\"", def, "\"");
    std::cout << "  --" << flag->Name() << "  (" << EnvName(flag->Name()) << ", default " << def
              << ")\n      " << absl::StrReplaceAll(flag->Help(), {{"\n", "\n      "}}) << "\n";
  }
  std::cout << "\nAlso: --version, --helpfull (every flag, including libraries').\n"
               "Signals: SIGTERM/SIGINT shut down gracefully (a second one exits at once); "
               "SIGHUP reloads the files that can change while running.\n";
}

bool WantsHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "-h" || arg == "--help=true") return true;
  }
  return false;
}

int Fail(absl::string_view what, const absl::Status& status) {
  std::cerr << "sidestream: " << what << ": " << status.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.version_string = [] { return std::string("sidestream " SIDESTREAM_VERSION "\n"); };
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "main.cc");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "Receives Stripe webhooks, verifies and stores them, and streams them over gRPC.\n"
      "Every flag can also be set as SIDESTREAM_<FLAG_NAME> in the environment.\n"
      "Usage: sidestream --webhook_secrets_file=FILE [--http_listen=127.0.0.1:8080] ...");
  sidestream::TuneProcess();  // malloc and Mutex settings (process_tuning.h)
  if (WantsHelp(argc, argv)) {
    PrintHelp();
    return 0;
  }
  if (!ApplyEnvironment()) return 2;
  absl::ParseCommandLine(argc, argv);

  const std::optional<sidestream::LogLevel> level =
      sidestream::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.has_value()) {
    std::cerr << "sidestream: --log_level must be debug, info, warning or error\n";
    return 2;
  }
  sidestream::SetMinLogLevel(*level);
  const std::optional<sidestream::LogFormat> format =
      sidestream::ParseLogFormat(absl::GetFlag(FLAGS_log_format));
  if (!format.has_value()) {
    std::cerr << "sidestream: --log_format must be json, logfmt or text\n";
    return 2;
  }
  sidestream::SetLogFormat(*format);

  sidestream::ServerOptions options;
  for (auto [flag, value, target] :
       {std::tuple{"http_listen", absl::GetFlag(FLAGS_http_listen), &options.http},
        std::tuple{"grpc_listen", absl::GetFlag(FLAGS_grpc_listen), &options.grpc},
        std::tuple{"admin_listen", absl::GetFlag(FLAGS_admin_listen), &options.admin}}) {
    absl::StatusOr<sidestream::ListenAddress> address = sidestream::ParseListenAddress(flag, value);
    if (!address.ok()) return Fail("bad configuration", address.status());
    *target = *address;
  }
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.webhook_path = absl::GetFlag(FLAGS_webhook_path);
  options.signature_tolerance = absl::GetFlag(FLAGS_signature_tolerance);
  options.retention = absl::GetFlag(FLAGS_retention);
  options.allow_short_retention = absl::GetFlag(FLAGS_allow_short_retention);
  options.log_max_bytes = absl::GetFlag(FLAGS_log_max_bytes);
  options.log_backend = absl::GetFlag(FLAGS_log);
  options.nats_urls = absl::StrSplit(absl::GetFlag(FLAGS_nats_url), ',', absl::SkipWhitespace());
  options.nats_stream = absl::GetFlag(FLAGS_nats_stream);
  options.nats_subject_prefix = absl::GetFlag(FLAGS_nats_subject_prefix);
  options.nats_replicas = absl::GetFlag(FLAGS_nats_replicas);
  options.nats_creds_file = absl::GetFlag(FLAGS_nats_creds_file);
  options.nats_tls_ca_file = absl::GetFlag(FLAGS_nats_tls_ca_file);
  options.nats_tls_client = {absl::GetFlag(FLAGS_nats_tls_cert_file),
                             absl::GetFlag(FLAGS_nats_tls_key_file)};
  options.nats_timeout = absl::GetFlag(FLAGS_nats_timeout);
  options.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  options.http_threads = absl::GetFlag(FLAGS_http_threads);
  options.http_idle_timeout = absl::GetFlag(FLAGS_http_idle_timeout);
  options.http_request_timeout = absl::GetFlag(FLAGS_http_request_timeout);
  options.allow_insecure_remote = absl::GetFlag(FLAGS_allow_insecure_remote);
  options.http_tls = {absl::GetFlag(FLAGS_http_tls_cert_file),
                      absl::GetFlag(FLAGS_http_tls_key_file)};
  options.grpc_tls = {absl::GetFlag(FLAGS_grpc_tls_cert_file),
                      absl::GetFlag(FLAGS_grpc_tls_key_file)};
  options.grpc_tls_client_ca_file = absl::GetFlag(FLAGS_grpc_tls_client_ca_file);
  options.admin_tls = {absl::GetFlag(FLAGS_admin_tls_cert_file),
                       absl::GetFlag(FLAGS_admin_tls_key_file)};
  options.tls_reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  options.grpc_tokens_file = absl::GetFlag(FLAGS_grpc_tokens_file);
  options.webhook_allowed_ips_file = absl::GetFlag(FLAGS_webhook_allowed_ips_file);
  options.trusted_proxies = absl::GetFlag(FLAGS_trusted_proxies);
  options.trusted_proxy_header = absl::GetFlag(FLAGS_trusted_proxy_header);
  options.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  options.hub_max_events = absl::GetFlag(FLAGS_hub_window_events);
  options.hub_max_bytes = absl::GetFlag(FLAGS_hub_window_bytes);
  options.reader_threads = absl::GetFlag(FLAGS_reader_threads);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);

  std::optional<std::string> env_secrets;
  if (const char* v = std::getenv("SIDESTREAM_WEBHOOK_SECRETS")) env_secrets = v;
  std::vector<std::string> warnings;
  absl::StatusOr<std::vector<sidestream::WebhookSecret>> secrets = sidestream::LoadWebhookSecrets(
      absl::GetFlag(FLAGS_webhook_secrets_file), env_secrets, &warnings);
  for (const std::string& w : warnings) LOG_WARNING("webhook secrets: ", w);
  if (!secrets.ok()) return Fail("bad configuration", secrets.status());
  options.secrets = *std::move(secrets);
  options.webhook_secrets_file = absl::GetFlag(FLAGS_webhook_secrets_file);

  // Signals are taken by sigwait below; every thread started from here on
  // inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<sidestream::Server>> server = sidestream::Server::Start(options);
  if (!server.ok()) return Fail("cannot start", server.status());

  std::string labels;
  for (const auto& s : options.secrets)
    absl::StrAppend(&labels, labels.empty() ? "" : ",", s.label);
  // One line with the real addresses, for people and for scripts and tests.
  std::cout << "sidestream ready http=" << (*server)->http_address()
            << " grpc=" << (*server)->grpc_address() << " admin=" << (*server)->admin_address()
            << (options.http_tls.enabled() ? " webhook=https://" : " webhook=http://")
            << (*server)->http_address() << options.webhook_path << " data_dir=" << options.data_dir
            << " epoch=" << (*server)->log_epoch() << " secrets=" << labels << std::endl;
  LOG_FIELDS(kInfo, "serving; SIGTERM or Ctrl-C to stop, SIGHUP to reload",
             {"version", SIDESTREAM_VERSION}, {"http", (*server)->http_address()},
             {"grpc", (*server)->grpc_address()}, {"admin", (*server)->admin_address()},
             {"data_dir", options.data_dir}, {"epoch", (*server)->log_epoch()},
             {"secrets", labels});

  int sig = 0;
  // SIGHUP re-reads what can change without a restart (see Server::Reload);
  // SIGINT or SIGTERM starts the graceful shutdown.
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    LOG_INFO("received SIGHUP, reloading");
    if (absl::Status s = (*server)->Reload(); !s.ok()) {
      LOG_ERROR("reload failed, still running with the previous settings: ", s.message());
    }
  }
  const absl::Duration grace = options.shutdown_grace;
  LOG_FIELDS(kInfo, "shutting down gracefully; a second signal exits at once",
             {"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
             {"grace", absl::FormatDuration(grace)});
  // A second SIGTERM/SIGINT exits at once; if the shutdown itself hangs past
  // the grace period (plus time to close the log), the process exits anyway.
  std::thread guard([&signals, grace] {
    sidestream::SetCurrentThreadName("ss-signals");
    sigset_t stop = signals;
    sigdelset(&stop, SIGHUP);
    const absl::Time deadline = absl::Now() + grace + absl::Seconds(10);
    while (true) {
      const timespec timeout =
          absl::ToTimespec(std::max(deadline - absl::Now(), absl::ZeroDuration()));
      const int again = sigtimedwait(&stop, nullptr, &timeout);
      if (again > 0) {
        LOG_WARNING("second signal: exiting at once");
        std::_Exit(130);
      }
      // EINTR: interrupted without a signal of ours (LeakSanitizer stops
      // every thread at exit this way); only a timeout ends the wait.
      if (errno != EINTR) break;
    }
    LOG_ERROR("shutdown took longer than the grace period; exiting");
    std::_Exit(1);
  });
  guard.detach();
  const absl::Time start = absl::Now();
  (*server)->Shutdown(grace);
  server->reset();
  LOG_FIELDS(kInfo, "stopped", {"took", absl::FormatDuration(absl::Now() - start)});
  return 0;
}
