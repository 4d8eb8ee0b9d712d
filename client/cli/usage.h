// sidestream-cli's subcommands, their help, and a check of the command line
// that runs before absl::ParseCommandLine (which exits with status 1 on a bad
// flag; the CLI promises 2 for usage errors).
#ifndef SIDESTREAM_CLIENT_CLI_USAGE_H_
#define SIDESTREAM_CLIENT_CLI_USAGE_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sidestream::cli {

struct Subcommand {
  const char* name;
  // Positional arguments after the name, such as "<event-id>".
  const char* arguments;
  const char* summary;
  // Further lines of help: details and examples.
  const char* details;
  // The flags that apply, besides the common --server and --timeout.
  std::vector<const char*> flags;
  // Whether the command calls the gRPC API, so that the connection flags
  // (--token_file, --tls_*) apply too.
  bool grpc = true;
};

const std::vector<Subcommand>& Subcommands();
// Null for an unknown name.
const Subcommand* FindSubcommand(absl::string_view name);

// The program's usage message: synopsis and the list of subcommands.
std::string ProgramUsage();

// Help for one subcommand, listing its flags with their help and defaults.
std::string SubcommandHelp(const Subcommand& subcommand);

// Whether the command line asks for help (--help, -h, -help, or the
// subcommand "help").
bool WantsHelp(int argc, char** argv);

// The names of the flags given on the command line (--nofoo counts as
// "foo"). INVALID_ARGUMENT naming the problem for an unknown flag or a flag
// value that does not parse. Flags are looked up in absl's registry; absl's
// own usage flags (--helpfull, --version, --flagfile...) are left to absl.
absl::StatusOr<std::set<std::string>> CheckFlagSyntax(int argc, char** argv);

// INVALID_ARGUMENT when a flag in `given` is one of ours that `subcommand`
// does not use (probably meant for another subcommand).
absl::Status CheckFlagsApply(const Subcommand& subcommand, const std::set<std::string>& given);

}  // namespace sidestream::cli

#endif  // SIDESTREAM_CLIENT_CLI_USAGE_H_
