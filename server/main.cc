// sidestream: the server binary. Flags (each also settable through the
// environment as SIDESTREAM_<FLAG_NAME>; a flag on the command line wins)
// become ServerOptions; everything else lives in the server library.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "server/common/logging.h"
#include "server/config.h"
#include "server/server.h"

ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "Address for Stripe's webhook POSTs, HOST:PORT (port 0 picks a free port). Loopback "
          "by default: put a TLS-terminating proxy or ingress in front.");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:50051",
          "Address of the gRPC API (Events, Admin, health, reflection), HOST:PORT.");
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
ABSL_FLAG(uint64_t, max_body_bytes, 1 << 20, "Largest accepted webhook body; larger ones get 413.");
ABSL_FLAG(int, http_threads, 1, "HTTP event-loop threads.");
ABSL_FLAG(absl::Duration, http_idle_timeout, absl::Seconds(60),
          "How long a keep-alive HTTP connection may wait for its next request.");
ABSL_FLAG(absl::Duration, http_request_timeout, absl::Seconds(10),
          "How long a request may take to arrive once it started (a client trickling headers "
          "or body is cut off).");
ABSL_FLAG(bool, allow_insecure_remote, false,
          "Permit listening on a non-loopback address without TLS.");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::Seconds(5),
          "Longest silence on a Subscribe stream: a checkpoint (head sequence) is sent when no "
          "event matched for this long.");
ABSL_FLAG(uint64_t, hub_window_events, 8192,
          "Recent events kept in memory for live subscribers; subscribers further behind read "
          "the log.");
ABSL_FLAG(uint64_t, hub_window_bytes, 64ull << 20, "Byte limit of the in-memory window.");
ABSL_FLAG(int, reader_threads, 2,
          "Threads for log reads (catching-up subscribers, GetEvent, ListEvents).");
ABSL_FLAG(std::string, log_level, "info", "Least severe log level: debug, info, warning, error.");

namespace {

constexpr const char* kEnvFlags[] = {
    "http_listen",          "grpc_listen",          "data_dir",         "webhook_path",
    "webhook_secrets_file", "signature_tolerance",  "retention",        "allow_short_retention",
    "log_max_bytes",        "max_body_bytes",       "http_threads",     "allow_insecure_remote",
    "checkpoint_interval",  "hub_window_events",    "hub_window_bytes", "reader_threads",
    "http_idle_timeout",    "http_request_timeout", "log_level"};

// Applies SIDESTREAM_<FLAG> environment variables; the command line, parsed
// afterwards, overrides them.
bool ApplyEnvironment() {
  for (const char* name : kEnvFlags) {
    const std::string var = absl::StrCat("SIDESTREAM_", absl::AsciiStrToUpper(name));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "sidestream: invalid %s=%s: %s\n", var.c_str(), value, error.c_str());
      return false;
    }
  }
  return true;
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
  // Debian builds Abseil without NDEBUG, which leaves Mutex deadlock
  // detection on: a lock-order graph updated on every lock, measured at 17%
  // of the fan-out stage's instructions (docs/performance.md). Our locking is
  // checked by the tests and sanitizer runs instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (!ApplyEnvironment()) return 2;
  absl::ParseCommandLine(argc, argv);

  const std::string level = absl::AsciiStrToLower(absl::GetFlag(FLAGS_log_level));
  if (level == "debug") {
    sidestream::SetMinLogLevel(sidestream::LogLevel::kDebug);
  } else if (level == "info") {
    sidestream::SetMinLogLevel(sidestream::LogLevel::kInfo);
  } else if (level == "warning" || level == "warn") {
    sidestream::SetMinLogLevel(sidestream::LogLevel::kWarning);
  } else if (level == "error") {
    sidestream::SetMinLogLevel(sidestream::LogLevel::kError);
  } else {
    std::cerr << "sidestream: --log_level must be debug, info, warning or error\n";
    return 2;
  }

  sidestream::ServerOptions options;
  for (auto [flag, value, target] :
       {std::tuple{"http_listen", absl::GetFlag(FLAGS_http_listen), &options.http},
        std::tuple{"grpc_listen", absl::GetFlag(FLAGS_grpc_listen), &options.grpc}}) {
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
  options.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  options.http_threads = absl::GetFlag(FLAGS_http_threads);
  options.http_idle_timeout = absl::GetFlag(FLAGS_http_idle_timeout);
  options.http_request_timeout = absl::GetFlag(FLAGS_http_request_timeout);
  options.allow_insecure_remote = absl::GetFlag(FLAGS_allow_insecure_remote);
  options.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  options.hub_max_events = absl::GetFlag(FLAGS_hub_window_events);
  options.hub_max_bytes = absl::GetFlag(FLAGS_hub_window_bytes);
  options.reader_threads = absl::GetFlag(FLAGS_reader_threads);

  std::optional<std::string> env_secrets;
  if (const char* v = std::getenv("SIDESTREAM_WEBHOOK_SECRETS")) env_secrets = v;
  std::vector<std::string> warnings;
  absl::StatusOr<std::vector<sidestream::WebhookSecret>> secrets = sidestream::LoadWebhookSecrets(
      absl::GetFlag(FLAGS_webhook_secrets_file), env_secrets, &warnings);
  for (const std::string& w : warnings) LOG_WARNING("webhook secrets: ", w);
  if (!secrets.ok()) return Fail("bad configuration", secrets.status());
  options.secrets = *std::move(secrets);

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
            << " grpc=" << (*server)->grpc_address() << " webhook=http://"
            << (*server)->http_address() << options.webhook_path << " data_dir=" << options.data_dir
            << " epoch=" << (*server)->log_epoch() << " secrets=" << labels << std::endl;
  LOG_INFO("sidestream ", SIDESTREAM_VERSION, " serving; Ctrl-C or SIGTERM to stop");

  int sig = 0;
  // SIGHUP re-reads what can change without a restart (see Server::Reload);
  // SIGINT or SIGTERM starts the graceful shutdown.
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    LOG_INFO("received SIGHUP, reloading");
    if (absl::Status s = (*server)->Reload(); !s.ok()) {
      LOG_ERROR("reload failed, still running with the previous settings: ", s.message());
    }
  }
  LOG_INFO("received ", sig == SIGTERM ? "SIGTERM" : "SIGINT",
           ", shutting down (a second signal exits at once)");
  std::thread second([&signals] {
    int again = 0;
    sigwait(&signals, &again);
    std::_Exit(130);
  });
  second.detach();
  (*server)->Shutdown(absl::Seconds(10));
  server->reset();
  LOG_INFO("stopped");
  return 0;
}
