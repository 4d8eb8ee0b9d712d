// The subcommands of sidestream-cli. main.cc reads the flags and fills these
// options; each Run* function does one subcommand and returns the process
// exit code (kExitOk, kExitFailure or kExitUsage), having printed results
// on stdout and diagnostics on stderr.
#ifndef SIDESTREAM_CLIENT_CLI_COMMANDS_H_
#define SIDESTREAM_CLIENT_CLI_COMMANDS_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "client/channel.h"
#include "client/cli/cli_parsing.h"
#include "client/sample_events.h"
#include "sidestream/v1/event.pb.h"

namespace sidestream::cli {

// Prints "sidestream-cli <command>: <message>" on stderr.
inline void PrintError(absl::string_view command, absl::string_view message) {
  const std::string line = absl::StrCat("sidestream-cli ", command, ": ", message, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
}

struct SendCommand {
  // Where to POST, http://host:port/path.
  std::string url;
  // The event to build (ignored with `body_file`). With `count` > 1 and a
  // fixed `sample.id`, the events get ids "<id>_1", "<id>_2", ...
  SampleEventOptions sample;
  // Send this file's bytes instead of a sample event.
  std::string body_file;
  // Number of events to send, one request each, on one connection.
  int count = 1;
  // Where the signing secret comes from: this file, in the server's secrets
  // format, or else the environment variable SIDESTREAM_WEBHOOK_SECRET or
  // SIDESTREAM_WEBHOOK_SECRETS (checked in that order). Never from argv.
  std::string secret_file;
  // The entry with this label; empty for the first entry.
  std::string secret_label;
  absl::Duration timeout = absl::Seconds(10);
};
int RunSend(const SendCommand& command);

// Options shared by the commands that talk to the gRPC API.
struct ServerOptions {
  // Target, TLS files and access token file (--server, --tls_*,
  // --token_file).
  ConnectionOptions connection;
  // Deadline of unary calls.
  absl::Duration timeout = absl::Seconds(10);
};

struct TailCommand {
  ServerOptions server;
  v1::EventFilter filter;
  StartSpec start;
  // Print Event.raw_json, exactly as Stripe sent it, instead of the parsed
  // event as JSON.
  bool raw = false;
  // Exit after this many events; 0 for no limit.
  int64_t count = 0;
  // Also print checkpoint and caught_up items.
  bool checkpoints = false;
};
int RunTail(const TailCommand& command);

struct GetCommand {
  ServerOptions server;
  std::string id;
  bool raw = false;
};
int RunGet(const GetCommand& command);

struct ListCommand {
  ServerOptions server;
  v1::EventFilter filter;
  StartSpec start;
  int32_t page_size = 0;
  // Follow next_page_token until the head of the log.
  bool all = false;
  bool raw = false;
};
int RunList(const ListCommand& command);

struct StatsCommand {
  ServerOptions server;
  // Print a human-readable table instead of JSON.
  bool table = false;
};
int RunStats(const StatsCommand& command);

}  // namespace sidestream::cli

#endif  // SIDESTREAM_CLIENT_CLI_COMMANDS_H_
