#include "client/cli/usage.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sidestream::cli {
namespace {

constexpr const char* kCommonFlags[] = {"server", "timeout"};
// How the gRPC commands authenticate; see Subcommand::grpc.
constexpr const char* kConnectionFlags[] = {"token_file", "tls_ca_file", "tls_cert_file",
                                            "tls_key_file", "tls_server_name"};

// Usage flags that absl handles itself; not in its flag registry.
constexpr absl::string_view kAbslUsageFlags[] = {"help",        "helpfull", "helpshort",
                                                 "helppackage", "version",  "only_check_args"};
// absl's own flags that take a value.
constexpr absl::string_view kAbslValueFlags[] = {"helpon",  "helpmatch",  "flagfile",
                                                 "fromenv", "tryfromenv", "undefok"};

template <typename Range>
bool Contains(const Range& range, absl::string_view name) {
  return std::find(std::begin(range), std::end(range), name) != std::end(range);
}

std::string FlagLine(absl::string_view name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return absl::StrCat("  --", name, "\n");
  std::string default_value = flag->DefaultValue();
  if (flag->IsOfType<std::string>()) default_value = absl::StrCat("\"", default_value, "\"");
  return absl::StrCat("  --", name, " (default ", default_value, ")\n      ", flag->Help(), "\n");
}

}  // namespace

const std::vector<Subcommand>& Subcommands() {
  static const auto* const subcommands = new std::vector<Subcommand>{
      {"send",
       "",
       "Sign sample Stripe events (or a JSON file) and POST them to the webhook endpoint.",
       "The signing secret comes from --secret_file (the server's secrets file format) or from\n"
       "the environment: SIDESTREAM_WEBHOOK_SECRET, else the first entry of\n"
       "SIDESTREAM_WEBHOOK_SECRETS. Never from the command line.\n"
       "Prints one line per event: HTTP status, event id, type, response body.\n"
       "Exits 1 if any response is not 2xx.\n"
       "Example:\n"
       "  SIDESTREAM_WEBHOOK_SECRET=whsec_... sidestream-cli send --type=payout.failed \\\n"
       "      --account=acct_1Nv0FGQ9RKHgCVdK --count=3\n",
       {"url", "type", "account", "live", "id", "padding_bytes", "count", "body_file",
        "secret_file", "secret_label"},
       /*grpc=*/false},
      {"tail",
       "",
       "Stream events as they are stored, resuming across reconnects.",
       "Prints each event as one line of JSON (proto field names); status messages go to\n"
       "stderr. Ctrl-C stops and prints the --from/--epoch to resume with.\n"
       "Examples:\n"
       "  sidestream-cli tail --types='payout.*,account.updated' --origin=connect\n"
       "  sidestream-cli tail --from=oldest --count=10\n"
       "  sidestream-cli tail --from=1234 --epoch=<log epoch> --raw\n",
       {"types", "accounts", "origin", "mode", "from", "epoch", "raw", "count", "checkpoints"}},
      {"get",
       "<event-id>",
       "Print one stored event by its Stripe id.",
       "Example:\n  sidestream-cli get evt_1NG8Du2eZvKYlo2CUI79vXWy --raw\n",
       {"raw"}},
      {"list",
       "",
       "Print stored events that match a filter, oldest first, one page (or --all).",
       "Example:\n  sidestream-cli list --types='charge.*' --from=2024-06-20T00:00:00Z --all\n",
       {"types", "accounts", "origin", "mode", "from", "page_size", "all", "raw"}},
      {"stats",
       "",
       "Print the server's counters, log state and open subscriptions.",
       "Example:\n  sidestream-cli stats --format=table\n",
       {"format"}},
  };
  return *subcommands;
}

const Subcommand* FindSubcommand(absl::string_view name) {
  for (const Subcommand& subcommand : Subcommands()) {
    if (name == subcommand.name) return &subcommand;
  }
  return nullptr;
}

std::string ProgramUsage() {
  std::string out =
      "Client for Sidestream, the Stripe webhook ingress and event stream.\n\n"
      "Usage: sidestream-cli <command> [flags] [arguments]\n\nCommands:\n";
  for (const Subcommand& subcommand : Subcommands()) {
    absl::StrAppend(&out, "  ", subcommand.name, std::string(8 - strlen(subcommand.name), ' '),
                    subcommand.summary, "\n");
  }
  absl::StrAppend(&out,
                  "\nRun 'sidestream-cli help <command>' for the flags of a command.\n"
                  "The server is --server, else $SIDESTREAM_SERVER, else 127.0.0.1:50051.\n"
                  "tail, get, list and stats talk gRPC in plain text unless a --tls_* flag is\n"
                  "given (--tls_ca_file=ca.pem; --tls_cert_file and --tls_key_file for mutual\n"
                  "TLS); a server with access tokens needs --token_file=FILE, a file holding\n"
                  "the token. Each of these can be set as SIDESTREAM_<FLAG> instead, such as\n"
                  "SIDESTREAM_TOKEN_FILE.\n"
                  "Exit status: 0 success, 1 failure, 2 usage error (including a request the\n"
                  "server rejected as INVALID_ARGUMENT).\n");
  return out;
}

std::string SubcommandHelp(const Subcommand& subcommand) {
  std::string out = absl::StrCat("Usage: sidestream-cli ", subcommand.name, " [flags]",
                                 *subcommand.arguments ? " " : "", subcommand.arguments, "\n\n",
                                 subcommand.summary, "\n\n", subcommand.details, "\nFlags:\n");
  for (const char* name : subcommand.flags) absl::StrAppend(&out, FlagLine(name));
  for (const char* name : kCommonFlags) absl::StrAppend(&out, FlagLine(name));
  if (subcommand.grpc) {
    for (const char* name : kConnectionFlags) absl::StrAppend(&out, FlagLine(name));
  }
  return out;
}

bool WantsHelp(int argc, char** argv) {
  if (argc >= 2 && absl::string_view(argv[1]) == "help") return true;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "-h") return true;
  }
  return false;
}

absl::StatusOr<std::set<std::string>> CheckFlagSyntax(int argc, char** argv) {
  std::set<std::string> given;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg.front() != '-') continue;  // A positional argument.
    arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    const bool has_value = eq != absl::string_view::npos;
    if (Contains(kAbslUsageFlags, name)) continue;
    if (Contains(kAbslValueFlags, name)) {
      if (!has_value) ++i;
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      const absl::CommandLineFlag* negated =
          absl::StartsWith(name, "no") ? absl::FindCommandLineFlag(name.substr(2)) : nullptr;
      if (negated != nullptr && negated->IsOfType<bool>() && !has_value) {
        given.insert(std::string(name.substr(2)));
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    given.insert(std::string(name));
    if (flag->IsOfType<bool>() && !has_value) continue;
    absl::string_view value;
    if (has_value) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
    }
    // Parsing sets the flag; absl::ParseCommandLine sets it again to the
    // same value afterwards.
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", error));
    }
  }
  return given;
}

absl::Status CheckFlagsApply(const Subcommand& subcommand, const std::set<std::string>& given) {
  std::set<std::string> ours;
  for (const Subcommand& other : Subcommands()) ours.insert(other.flags.begin(), other.flags.end());
  ours.insert(std::begin(kConnectionFlags), std::end(kConnectionFlags));
  for (const std::string& name : given) {
    if (Contains(subcommand.flags, name) || Contains(kCommonFlags, name)) continue;
    if (subcommand.grpc && Contains(kConnectionFlags, name)) continue;
    if (ours.count(name) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " does not apply to '", subcommand.name,
                       "'; see 'sidestream-cli help ", subcommand.name, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace sidestream::cli
