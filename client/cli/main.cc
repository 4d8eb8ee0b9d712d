// sidestream-cli: sends signed sample webhooks to Sidestream and reads its
// event stream and history. This file only turns flags into the option
// structs of commands.h; see usage.cc for the help text.
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include <grpc/support/log.h>

#include "client/cli/cli_parsing.h"
#include "client/cli/commands.h"
#include "client/cli/usage.h"

// Common.
ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "gRPC address of the Sidestream server; $SIDESTREAM_SERVER is used when this flag is "
          "not given.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "Deadline of each request (send: each HTTP POST; get, list, stats: each call).");

// tail, get, list and stats: how to authenticate to the gRPC API. Each is
// also read from SIDESTREAM_<FLAG> when the flag is not given.
ABSL_FLAG(std::string, token_file, "",
          "File holding the access token for a server with --grpc_tokens_file (sent as "
          "\"authorization: Bearer <token>\"); $SIDESTREAM_TOKEN_FILE when not given. Tokens are "
          "never taken from the command line.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "Use TLS, trusting the CA certificates in this PEM file; $SIDESTREAM_TLS_CA_FILE when "
          "not given. Any --tls_* flag turns TLS on; without this one, the system's roots are "
          "trusted.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "Client certificate (PEM, leaf first) for a server that requires one (mutual TLS); "
          "$SIDESTREAM_TLS_CERT_FILE when not given. Needs --tls_key_file.");
ABSL_FLAG(std::string, tls_key_file, "",
          "Private key (PEM) of --tls_cert_file; $SIDESTREAM_TLS_KEY_FILE when not given.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify the server's certificate against instead of the host in --server "
          "(connecting by IP address or through a tunnel); $SIDESTREAM_TLS_SERVER_NAME when not "
          "given.");

// send.
ABSL_FLAG(std::string, url, "http://127.0.0.1:8080/webhook",
          "Webhook endpoint to POST to; http://host:port/path (https is not supported yet).");
ABSL_FLAG(std::string, type, "payout.failed",
          "Stripe event type of the sample event, such as account.updated or "
          "v1.billing.meter.error_report_triggered.");
ABSL_FLAG(std::string, account, "",
          "Connected account (acct_...) of the sample event; empty for a platform event.");
ABSL_FLAG(bool, live, false, "Make a live-mode sample event (default: test mode).");
ABSL_FLAG(std::string, id, "",
          "Event id of the sample event (default: random). With --count > 1 the events get "
          "<id>_1, <id>_2, ...");
ABSL_FLAG(uint64_t, padding_bytes, 0,
          "Extra bytes of metadata in the sample event, to test large events.");
ABSL_FLAG(int64_t, count, 0,
          "send: number of distinct events to send (0 means 1). tail: exit after this many "
          "events (0: never).");
ABSL_FLAG(std::string, body_file, "", "Send this file's bytes, signed, instead of a sample event.");
ABSL_FLAG(std::string, secret_file, "",
          "File with webhook signing secrets in the server's format (label=whsec_... or "
          "whsec_..., one per line). Default: $SIDESTREAM_WEBHOOK_SECRET or the first of "
          "$SIDESTREAM_WEBHOOK_SECRETS.");
ABSL_FLAG(std::string, secret_label, "",
          "Sign with the secret of this label (default: the first).");

// tail and list.
ABSL_FLAG(std::string, types, "",
          "Comma list of event types to match: exact (payout.failed), prefix (account.*) or *.");
ABSL_FLAG(std::string, accounts, "", "Comma list of connected accounts (acct_...) to match.");
ABSL_FLAG(std::string, origin, "any", "Events to match by origin: any, platform or connect.");
ABSL_FLAG(std::string, mode, "any", "Events to match by Stripe mode: any, live or test.");
ABSL_FLAG(std::string, from, "",
          "Where to start: latest, oldest, a sequence number (start after it) or an RFC 3339 "
          "time (events received since). Default: tail latest, list oldest.");
ABSL_FLAG(std::string, epoch, "",
          "tail: the log epoch of the --from sequence; the server refuses a cursor of another "
          "log.");
ABSL_FLAG(bool, raw, false,
          "Print each event's body exactly as Stripe sent it (may span lines) instead of the "
          "parsed event as one line of JSON.");
ABSL_FLAG(bool, checkpoints, false, "tail: also print checkpoint and caught_up items as JSON.");
ABSL_FLAG(int32_t, page_size, 0, "list: events per page, 1 to 1000 (0: the server's default).");
ABSL_FLAG(bool, all, false, "list: follow next_page_token up to the head of the log.");

// stats.
ABSL_FLAG(std::string, format, "json", "stats: json or table.");

namespace sidestream::cli {
namespace {

int UsageError(absl::string_view command, absl::string_view message) {
  PrintError(command, message);
  return kExitUsage;
}

// The value of a string flag, or of SIDESTREAM_<FLAG> when the flag is not
// on the command line (`given`) and the variable is set and not empty.
std::string FlagOrEnv(const absl::Flag<std::string>& flag, absl::string_view name,
                      const std::set<std::string>& given) {
  if (given.count(std::string(name)) == 0) {
    const std::string variable = absl::StrCat("SIDESTREAM_", absl::AsciiStrToUpper(name));
    const char* from_env = std::getenv(variable.c_str());
    if (from_env != nullptr && *from_env != '\0') return from_env;
  }
  return absl::GetFlag(flag);
}

absl::StatusOr<ServerOptions> ServerFromFlags(const std::set<std::string>& given) {
  ServerOptions server;
  ConnectionOptions& connection = server.connection;
  connection.target = FlagOrEnv(FLAGS_server, "server", given);
  if (connection.target.empty()) return absl::InvalidArgumentError("--server is empty");
  connection.token_file = FlagOrEnv(FLAGS_token_file, "token_file", given);
  connection.tls.ca_file = FlagOrEnv(FLAGS_tls_ca_file, "tls_ca_file", given);
  connection.tls.cert_file = FlagOrEnv(FLAGS_tls_cert_file, "tls_cert_file", given);
  connection.tls.key_file = FlagOrEnv(FLAGS_tls_key_file, "tls_key_file", given);
  connection.tls.server_name = FlagOrEnv(FLAGS_tls_server_name, "tls_server_name", given);
  server.timeout = absl::GetFlag(FLAGS_timeout);
  if (server.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--timeout must be positive");
  }
  return server;
}

absl::StatusOr<v1::EventFilter> FilterFromFlags() {
  return ParseEventFilter(absl::GetFlag(FLAGS_types), absl::GetFlag(FLAGS_accounts),
                          absl::GetFlag(FLAGS_origin), absl::GetFlag(FLAGS_mode));
}

int Send(const ServerOptions& server) {
  SendCommand command;
  command.url = absl::GetFlag(FLAGS_url);
  command.sample.type = absl::GetFlag(FLAGS_type);
  command.sample.account = absl::GetFlag(FLAGS_account);
  command.sample.livemode = absl::GetFlag(FLAGS_live);
  command.sample.id = absl::GetFlag(FLAGS_id);
  command.sample.padding_bytes = absl::GetFlag(FLAGS_padding_bytes);
  command.body_file = absl::GetFlag(FLAGS_body_file);
  command.secret_file = absl::GetFlag(FLAGS_secret_file);
  command.secret_label = absl::GetFlag(FLAGS_secret_label);
  command.timeout = server.timeout;
  const int64_t count = absl::GetFlag(FLAGS_count);
  if (count < 0 || count > 1000000) return UsageError("send", "--count must be 0 to 1000000");
  command.count = count == 0 ? 1 : static_cast<int>(count);
  return RunSend(command);
}

int Tail(const ServerOptions& server) {
  TailCommand command;
  command.server = server;
  absl::StatusOr<v1::EventFilter> filter = FilterFromFlags();
  if (!filter.ok()) return UsageError("tail", filter.status().message());
  command.filter = *std::move(filter);
  absl::StatusOr<StartSpec> start =
      ParseStart(absl::GetFlag(FLAGS_from), absl::GetFlag(FLAGS_epoch), v1::START_POSITION_LATEST);
  if (!start.ok()) return UsageError("tail", start.status().message());
  command.start = *std::move(start);
  command.raw = absl::GetFlag(FLAGS_raw);
  command.count = absl::GetFlag(FLAGS_count);
  if (command.count < 0) return UsageError("tail", "--count must not be negative");
  command.checkpoints = absl::GetFlag(FLAGS_checkpoints);
  return RunTail(command);
}

int Get(const ServerOptions& server, const std::vector<std::string>& arguments) {
  if (arguments.size() != 1 || arguments[0].empty()) {
    return UsageError("get", "expected exactly one event id: sidestream-cli get <event-id>");
  }
  GetCommand command;
  command.server = server;
  command.id = arguments[0];
  command.raw = absl::GetFlag(FLAGS_raw);
  return RunGet(command);
}

int List(const ServerOptions& server) {
  ListCommand command;
  command.server = server;
  absl::StatusOr<v1::EventFilter> filter = FilterFromFlags();
  if (!filter.ok()) return UsageError("list", filter.status().message());
  command.filter = *std::move(filter);
  absl::StatusOr<StartSpec> start =
      ParseStart(absl::GetFlag(FLAGS_from), "", v1::START_POSITION_OLDEST);
  if (!start.ok()) return UsageError("list", start.status().message());
  command.start = *std::move(start);
  command.page_size = absl::GetFlag(FLAGS_page_size);
  if (command.page_size < 0) return UsageError("list", "--page_size must not be negative");
  command.all = absl::GetFlag(FLAGS_all);
  command.raw = absl::GetFlag(FLAGS_raw);
  return RunList(command);
}

int Stats(const ServerOptions& server) {
  StatsCommand command;
  command.server = server;
  const std::string format = absl::AsciiStrToLower(absl::GetFlag(FLAGS_format));
  if (format != "json" && format != "table") {
    return UsageError("stats", "--format must be json or table");
  }
  command.table = format == "table";
  return RunStats(command);
}

// Help on stdout and status 0, unlike absl's --help (status 1).
int PrintHelp(int argc, char** argv) {
  const Subcommand* subcommand = nullptr;
  for (int i = 1; i < argc && subcommand == nullptr; ++i) {
    if (argv[i][0] != '-') subcommand = FindSubcommand(argv[i]);
  }
  const std::string text = subcommand != nullptr ? SubcommandHelp(*subcommand) : ProgramUsage();
  std::fwrite(text.data(), 1, text.size(), stdout);
  return kExitOk;
}

// gRPC logs failed handshakes and connections on stderr itself; the
// commands already report each failure in one line, so those logs are
// dropped unless GRPC_VERBOSITY asks for them (for debugging).
void QuietGrpcLogs() {
  const char* verbosity = std::getenv("GRPC_VERBOSITY");
  if (verbosity == nullptr || *verbosity == '\0') gpr_set_log_function([](gpr_log_func_args*) {});
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(ProgramUsage());
  QuietGrpcLogs();
  if (WantsHelp(argc, argv)) return PrintHelp(argc, argv);
  absl::StatusOr<std::set<std::string>> given = CheckFlagSyntax(argc, argv);
  if (!given.ok()) {
    std::fprintf(stderr, "sidestream-cli: %s; see 'sidestream-cli help'\n",
                 std::string(given.status().message()).c_str());
    return kExitUsage;
  }
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() < 2) {
    std::fprintf(stderr, "%s", ProgramUsage().c_str());
    return kExitUsage;
  }
  const std::string name = positional[1];
  const std::vector<std::string> arguments(positional.begin() + 2, positional.end());
  const Subcommand* subcommand = FindSubcommand(name);
  if (subcommand == nullptr) {
    std::fprintf(stderr, "sidestream-cli: unknown command '%s'; see 'sidestream-cli help'\n",
                 name.c_str());
    return kExitUsage;
  }
  if (absl::Status applies = CheckFlagsApply(*subcommand, *given); !applies.ok()) {
    return UsageError(name, applies.message());
  }
  if (name != "get" && !arguments.empty()) {
    return UsageError(name, absl::StrCat("unexpected argument '", arguments[0], "'"));
  }
  absl::StatusOr<ServerOptions> server = ServerFromFlags(*given);
  if (!server.ok()) return UsageError(name, server.status().message());

  if (name == "send") return Send(*server);
  if (name == "tail") return Tail(*server);
  if (name == "get") return Get(*server, arguments);
  if (name == "list") return List(*server);
  return Stats(*server);
}

}  // namespace
}  // namespace sidestream::cli

int main(int argc, char** argv) { return sidestream::cli::Main(argc, argv); }
