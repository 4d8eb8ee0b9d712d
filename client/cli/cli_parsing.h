// Turns sidestream-cli's flag values into API values, and API errors into
// one-line messages. Pure functions, so that they can be tested without a
// server.
#ifndef SIDESTREAM_CLIENT_CLI_CLI_PARSING_H_
#define SIDESTREAM_CLIENT_CLI_CLI_PARSING_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "sidestream/v1/event.pb.h"
#include "sidestream/v1/events_service.pb.h"

namespace sidestream::cli {

// Process exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // The operation failed.
inline constexpr int kExitUsage = 2;    // The command line is wrong.

// Builds a filter from --types and --accounts (comma lists; blanks are
// skipped), --origin (any|platform|connect) and --mode (any|live|test).
// INVALID_ARGUMENT for an unknown origin or mode; the server checks the rest.
absl::StatusOr<v1::EventFilter> ParseEventFilter(absl::string_view types,
                                                 absl::string_view accounts,
                                                 absl::string_view origin, absl::string_view mode);

// Where a stream or a listing starts, from --from and --epoch. Exactly one of
// after_sequence and start_time is set, or neither (then `position`).
struct StartSpec {
  std::optional<uint64_t> after_sequence;
  std::string log_epoch;
  std::optional<absl::Time> start_time;
  v1::StartPosition position = v1::START_POSITION_UNSPECIFIED;
};

// --from: "latest", "oldest", a sequence number (start after it), or an
// RFC 3339 time such as "2024-06-20T12:00:00Z" (events received at or after
// it). Empty means `default_position`. --epoch is only allowed with a
// sequence. INVALID_ARGUMENT otherwise.
absl::StatusOr<StartSpec> ParseStart(absl::string_view from, absl::string_view epoch,
                                     v1::StartPosition default_position);

// Sets the `start` oneof (and log epoch, where the request has one) of a
// request from `start`.
void ApplyStart(const StartSpec& start, v1::ListEventsRequest* request);

// Picks the signing secret for `send` from secrets configuration text in
// the server's format (see ParseWebhookSecrets): the entry labelled `label`,
// or the first when `label` is empty. `source` names where the text came
// from, for messages; warnings about the text are appended to `warnings`.
absl::StatusOr<std::string> SelectSigningSecret(absl::string_view text, absl::string_view source,
                                                absl::string_view label,
                                                std::vector<std::string>* warnings);

// The `id` and `type` of a JSON event body, for printing; "?" for any that
// cannot be read (the body is sent regardless).
struct EventIdentity {
  std::string id = "?";
  std::string type = "?";
};
EventIdentity IdentifyEvent(absl::string_view json);

// How the failed call was made, so that an error can say what to change.
struct CallSecurity {
  bool token = false;        // The call carried an access token (--token_file).
  bool tls = false;          // The channel used TLS (any --tls_* flag).
  bool client_cert = false;  // ... with a client certificate (--tls_cert_file).
};

// One line describing a failed call to the server at `server`, such as
// "cannot reach Sidestream at 127.0.0.1:50051: connection refused
// (UNAVAILABLE)". The server's own message is always kept; for
// UNAUTHENTICATED, PERMISSION_DENIED and failed or missing TLS handshakes
// the line also says which flag to pass or check.
std::string DescribeError(const absl::Status& status, absl::string_view server,
                          const CallSecurity& security = {});

// kExitUsage for INVALID_ARGUMENT (the server refused what the user typed),
// kExitFailure for other errors, kExitOk for OK.
int ExitCodeFor(const absl::Status& status);

}  // namespace sidestream::cli

#endif  // SIDESTREAM_CLIENT_CLI_CLI_PARSING_H_
