// The commands that read from Sidestream's gRPC API: tail (Subscribe), get,
// list and stats. Results go to stdout, one record per line; status and
// errors go to stderr.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <grpcpp/grpcpp.h>

#include "client/channel.h"
#include "client/cli/cli_parsing.h"
#include "client/cli/commands.h"
#include "client/cli/interrupt_watcher.h"
#include "client/cli/json_output.h"
#include "client/subscriber.h"
#include "sidestream/v1/admin_service.grpc.pb.h"
#include "sidestream/v1/events_service.grpc.pb.h"

namespace sidestream::cli {
namespace {

// The channel and token of one unary command; every call goes through
// Prepare(), so that each carries the token and the deadline.
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  AccessToken token;
  absl::Duration timeout;

  void Prepare(grpc::ClientContext* context) const {
    token.ApplyTo(context);
    context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  }
};

// Reads the TLS and token files named by the options. Errors name the file.
absl::StatusOr<Connection> Open(const ServerOptions& server) {
  Connection connection;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(server.connection);
  if (!channel.ok()) return channel.status();
  connection.channel = *std::move(channel);
  absl::StatusOr<AccessToken> token = AccessToken::FromFile(server.connection.token_file);
  if (!token.ok()) return token.status();
  connection.token = *std::move(token);
  connection.timeout = server.timeout;
  return connection;
}

absl::Status ToAbslStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// For a failed call to the server: one line with a hint.
int Fail(absl::string_view command, const absl::Status& status, const ServerOptions& server) {
  CallSecurity security;
  security.token = !server.connection.token_file.empty();
  security.tls = server.connection.tls.enabled();
  security.client_cert = !server.connection.tls.cert_file.empty();
  PrintError(command, DescribeError(status, server.connection.target, security));
  return ExitCodeFor(status);
}

// For options the client could not act on (an unreadable token or TLS
// file): the message as it is, which names the file.
int FailLocally(absl::string_view command, const absl::Status& status) {
  PrintError(command, status.message());
  return ExitCodeFor(status);
}

void PrintStatus(absl::string_view command, absl::string_view message) {
  PrintError(command, message);
}

// Writes `text` and a newline to stdout and flushes, so that a reader at the
// other end of a pipe sees each record at once. False when stdout failed.
bool WriteLine(absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  return std::fflush(stdout) == 0 && !std::ferror(stdout);
}

absl::Status WriteMessage(const google::protobuf::Message& message) {
  absl::StatusOr<std::string> json = ToJsonLine(message);
  if (!json.ok()) return json.status();
  if (!WriteLine(*json)) return absl::UnavailableError("cannot write to stdout");
  return absl::OkStatus();
}

// With `raw`, the body exactly as Stripe sent it (often several lines of
// pretty-printed JSON) followed by a newline; otherwise the parsed event as
// one line of JSON.
absl::Status WriteEvent(const v1::Event& event, bool raw) {
  if (!raw) return WriteMessage(event);
  if (event.raw_json().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the server sent no raw_json for ", event.id()));
  }
  if (!WriteLine(event.raw_json())) return absl::UnavailableError("cannot write to stdout");
  return absl::OkStatus();
}

}  // namespace

int RunTail(const TailCommand& command) {
  constexpr absl::string_view kCommand = "tail";
  const std::string& target = command.server.connection.target;
  SubscriberOptions options;
  options.target = target;
  options.tls = command.server.connection.tls;
  options.token_file = command.server.connection.token_file;
  options.filter = command.filter;
  options.after_sequence = command.start.after_sequence;
  options.log_epoch = command.start.log_epoch;
  options.start_time = command.start.start_time;
  options.position = command.start.position == v1::START_POSITION_UNSPECIFIED
                         ? v1::START_POSITION_LATEST
                         : command.start.position;
  options.include_raw_json = command.raw;
  // Only touched on Run()'s thread (on_retry and the item callback).
  bool announce_connection = true;
  options.on_retry = [&](const absl::Status& cause, absl::Duration delay) {
    PrintStatus(kCommand,
                absl::StrCat("stream interrupted: ", cause.message(), " (",
                             absl::StatusCodeToString(cause.code()), "); reconnecting in ",
                             absl::FormatDuration(absl::Trunc(delay, absl::Milliseconds(1)))));
    announce_connection = true;
  };
  absl::StatusOr<std::unique_ptr<Subscriber>> created = Subscriber::Create(options);
  if (!created.ok()) return FailLocally(kCommand, created.status());
  Subscriber& subscriber = **created;

  int64_t events = 0;
  absl::Status output_status;
  // Declared after the subscriber, so destroyed (and joined) before it.
  InterruptWatcher interrupts([&subscriber] { subscriber.Stop(); });
  absl::Status status = subscriber.Run([&](const v1::SubscribeResponse& item) {
    if (!output_status.ok() || (command.count > 0 && events >= command.count)) return;
    if (announce_connection) {
      announce_connection = false;
      PrintStatus(kCommand, absl::StrCat("connected to ", target));
    }
    switch (item.item_case()) {
      case v1::SubscribeResponse::kEvent:
        output_status = WriteEvent(item.event(), command.raw);
        if (command.count > 0 && ++events >= command.count) subscriber.Stop();
        break;
      case v1::SubscribeResponse::kCaughtUp:
        PrintStatus(
            kCommand,
            absl::StrCat("caught up at sequence ", item.caught_up().head_sequence(), " (log epoch ",
                         item.caught_up().log_epoch(), "); waiting for new events"));
        if (command.checkpoints) output_status = WriteMessage(item);
        break;
      case v1::SubscribeResponse::kCheckpoint:
        if (command.checkpoints) output_status = WriteMessage(item);
        break;
      case v1::SubscribeResponse::kBatch:  // the Subscriber hands out single events
      case v1::SubscribeResponse::ITEM_NOT_SET:
        break;
    }
    if (!output_status.ok()) subscriber.Stop();
  });
  if (!output_status.ok()) {
    PrintError(kCommand, output_status.message());
    return kExitFailure;
  }
  if (!status.ok()) return Fail(kCommand, status, command.server);
  if (interrupts.interrupted()) {
    const std::optional<uint64_t> cursor = subscriber.cursor();
    if (cursor.has_value()) {
      const std::string epoch = subscriber.log_epoch();
      PrintStatus(kCommand, absl::StrCat("stopped; resume with --from=", *cursor,
                                         epoch.empty() ? "" : absl::StrCat(" --epoch=", epoch)));
    }
  }
  return kExitOk;
}

int RunGet(const GetCommand& command) {
  constexpr absl::string_view kCommand = "get";
  absl::StatusOr<Connection> connection = Open(command.server);
  if (!connection.ok()) return FailLocally(kCommand, connection.status());
  std::unique_ptr<v1::Events::Stub> stub = v1::Events::NewStub(connection->channel);
  grpc::ClientContext context;
  connection->Prepare(&context);
  v1::GetEventRequest request;
  request.set_id(command.id);
  request.set_include_raw_json(command.raw);
  v1::GetEventResponse response;
  grpc::Status status = stub->GetEvent(&context, request, &response);
  if (!status.ok()) return Fail(kCommand, ToAbslStatus(status), command.server);
  if (absl::Status written = WriteEvent(response.event(), command.raw); !written.ok()) {
    PrintError(kCommand, written.message());
    return kExitFailure;
  }
  return kExitOk;
}

int RunList(const ListCommand& command) {
  constexpr absl::string_view kCommand = "list";
  absl::StatusOr<Connection> connection = Open(command.server);
  if (!connection.ok()) return FailLocally(kCommand, connection.status());
  std::unique_ptr<v1::Events::Stub> stub = v1::Events::NewStub(connection->channel);
  v1::ListEventsRequest request;
  *request.mutable_filter() = command.filter;
  ApplyStart(command.start, &request);
  request.set_page_size(command.page_size);
  request.set_include_raw_json(command.raw);
  uint64_t last_sequence = 0;
  for (;;) {
    grpc::ClientContext context;
    connection->Prepare(&context);
    v1::ListEventsResponse response;
    grpc::Status status = stub->ListEvents(&context, request, &response);
    if (!status.ok()) return Fail(kCommand, ToAbslStatus(status), command.server);
    for (const v1::Event& event : response.events()) {
      if (absl::Status written = WriteEvent(event, command.raw); !written.ok()) {
        PrintError(kCommand, written.message());
        return kExitFailure;
      }
      last_sequence = event.sequence();
    }
    if (response.next_page_token().empty()) break;
    if (!command.all) {
      PrintStatus(kCommand, last_sequence == 0
                                ? std::string("more events follow: add --all")
                                : absl::StrCat("more events follow: add --all, or continue with "
                                               "--from=",
                                               last_sequence));
      break;
    }
    request.set_page_token(response.next_page_token());
  }
  return kExitOk;
}

int RunStats(const StatsCommand& command) {
  constexpr absl::string_view kCommand = "stats";
  absl::StatusOr<Connection> connection = Open(command.server);
  if (!connection.ok()) return FailLocally(kCommand, connection.status());
  std::unique_ptr<v1::Admin::Stub> stub = v1::Admin::NewStub(connection->channel);
  grpc::ClientContext context;
  connection->Prepare(&context);
  v1::GetStatsResponse response;
  grpc::Status status = stub->GetStats(&context, v1::GetStatsRequest(), &response);
  if (!status.ok()) return Fail(kCommand, ToAbslStatus(status), command.server);
  std::string text;
  if (command.table) {
    text = FormatStatsTable(response, absl::Now());
  } else {
    absl::StatusOr<std::string> json = ToPrettyJson(response);
    if (!json.ok()) {
      PrintError(kCommand, json.status().message());
      return kExitFailure;
    }
    text = *std::move(json);
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailure;
}

}  // namespace sidestream::cli
