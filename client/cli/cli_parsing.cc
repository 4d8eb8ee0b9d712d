#include "client/cli/cli_parsing.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "server/verify/stripe_signature.h"

namespace sidestream::cli {
namespace {

std::vector<std::string> SplitList(absl::string_view list) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) out.emplace_back(item);
  }
  return out;
}

}  // namespace

absl::StatusOr<v1::EventFilter> ParseEventFilter(absl::string_view types,
                                                 absl::string_view accounts,
                                                 absl::string_view origin, absl::string_view mode) {
  v1::EventFilter filter;
  for (std::string& type : SplitList(types)) filter.add_types(std::move(type));
  for (std::string& account : SplitList(accounts)) filter.add_accounts(std::move(account));

  const std::string origin_lower = absl::AsciiStrToLower(origin);
  if (origin_lower.empty() || origin_lower == "any") {
    filter.set_origin(v1::ORIGIN_ANY);
  } else if (origin_lower == "platform") {
    filter.set_origin(v1::ORIGIN_PLATFORM);
  } else if (origin_lower == "connect") {
    filter.set_origin(v1::ORIGIN_CONNECT);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--origin must be any, platform or connect, not \"", origin, "\""));
  }

  const std::string mode_lower = absl::AsciiStrToLower(mode);
  if (mode_lower.empty() || mode_lower == "any") {
    filter.set_livemode(v1::LIVEMODE_ANY);
  } else if (mode_lower == "live") {
    filter.set_livemode(v1::LIVEMODE_LIVE);
  } else if (mode_lower == "test") {
    filter.set_livemode(v1::LIVEMODE_TEST);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode must be any, live or test, not \"", mode, "\""));
  }
  return filter;
}

absl::StatusOr<StartSpec> ParseStart(absl::string_view from, absl::string_view epoch,
                                     v1::StartPosition default_position) {
  StartSpec start;
  from = absl::StripAsciiWhitespace(from);
  const std::string lower = absl::AsciiStrToLower(from);
  uint64_t sequence = 0;
  std::string time_error;
  absl::Time time;
  if (from.empty()) {
    start.position = default_position;
  } else if (lower == "latest") {
    start.position = v1::START_POSITION_LATEST;
  } else if (lower == "oldest") {
    start.position = v1::START_POSITION_OLDEST;
  } else if (absl::ascii_isdigit(static_cast<unsigned char>(from.front())) &&
             absl::SimpleAtoi(from, &sequence)) {
    start.after_sequence = sequence;
    start.log_epoch = std::string(epoch);
  } else if (absl::ParseTime(absl::RFC3339_full, from, &time, &time_error)) {
    start.start_time = time;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--from must be latest, oldest, a sequence number or an RFC 3339 time such "
                     "as 2024-06-20T12:00:00Z, not \"",
                     from, "\""));
  }
  if (!epoch.empty() && !start.after_sequence.has_value()) {
    return absl::InvalidArgumentError("--epoch needs --from=<sequence>");
  }
  return start;
}

void ApplyStart(const StartSpec& start, v1::ListEventsRequest* request) {
  if (start.after_sequence.has_value()) {
    request->set_after_sequence(*start.after_sequence);
  } else if (start.start_time.has_value()) {
    const int64_t seconds = absl::ToUnixSeconds(*start.start_time);
    request->mutable_start_time()->set_seconds(seconds);
    request->mutable_start_time()->set_nanos(static_cast<int32_t>(
        (*start.start_time - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  } else if (start.position != v1::START_POSITION_UNSPECIFIED) {
    request->set_position(start.position);
  }
}

absl::StatusOr<std::string> SelectSigningSecret(absl::string_view text, absl::string_view source,
                                                absl::string_view label,
                                                std::vector<std::string>* warnings) {
  absl::StatusOr<std::vector<WebhookSecret>> secrets = ParseWebhookSecrets(text, warnings);
  if (!secrets.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", secrets.status().message()));
  }
  if (label.empty()) return secrets->front().secret;
  std::vector<absl::string_view> labels;
  for (const WebhookSecret& secret : *secrets) {
    if (secret.label == label) return secret.secret;
    labels.push_back(secret.label);
  }
  return absl::InvalidArgumentError(absl::StrCat(source, " has no secret labelled \"", label,
                                                 "\" (labels: ", absl::StrJoin(labels, ", "), ")"));
}

EventIdentity IdentifyEvent(absl::string_view json) {
  EventIdentity identity;
  google::protobuf::Struct object;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(json.data(), json.size()), &object)
           .ok()) {
    return identity;
  }
  auto string_field = [&object](const char* name, std::string* out) {
    auto it = object.fields().find(name);
    if (it != object.fields().end() && it->second.has_string_value()) {
      *out = it->second.string_value();
    }
  };
  string_field("id", &identity.id);
  string_field("type", &identity.type);
  return identity;
}

std::string DescribeError(const absl::Status& status, absl::string_view server,
                          const CallSecurity& security) {
  const std::string message =
      absl::StrReplaceAll(status.message(), {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  const std::string code = absl::StatusCodeToString(status.code());
  switch (status.code()) {
    case absl::StatusCode::kUnavailable: {
      const std::string lower = absl::AsciiStrToLower(message);
      const bool handshake = absl::StrContains(lower, "handshake") ||
                             absl::StrContains(lower, "ssl") ||
                             absl::StrContains(lower, "certificate");
      if (security.tls && handshake) {
        return absl::StrCat("TLS handshake with Sidestream at ", server, " failed: ", message, " (",
                            code,
                            "); check that --tls_ca_file holds the CA of the server's "
                            "certificate, --tls_server_name the name it was issued for, and, "
                            "if the server requires client certificates, --tls_cert_file and "
                            "--tls_key_file");
      }
      std::string line =
          absl::StrCat("cannot reach Sidestream at ", server, ": ", message, " (", code, ")");
      // The server closed a connection it had accepted. A plain-text client
      // of a TLS server sees that during the HTTP/2 preface, and a TLS 1.3
      // client that the server refuses for its (missing) certificate right
      // after the handshake; gRPC names neither.
      const bool closed =
          absl::StrContains(lower, "socket closed") || absl::StrContains(lower, "connection reset");
      if (closed && !security.tls) {
        absl::StrAppend(&line, "; if the server uses TLS, pass --tls_ca_file");
      } else if (closed && !security.client_cert) {
        absl::StrAppend(&line,
                        "; if the server requires client certificates (mutual TLS), pass "
                        "--tls_cert_file and --tls_key_file");
      } else if (closed) {
        absl::StrAppend(&line,
                        "; the server may not accept the certificate in --tls_cert_file (it "
                        "must be signed by a CA of the server's --grpc_tls_client_ca_file)");
      }
      return line;
    }
    case absl::StatusCode::kUnauthenticated:
      if (!security.token) {
        return absl::StrCat("Sidestream at ", server,
                            " requires an access token: pass --token_file (or set "
                            "SIDESTREAM_TOKEN_FILE); the server said: ",
                            message, " (", code, ")");
      }
      return absl::StrCat("Sidestream at ", server,
                          " did not accept the token in --token_file: ", message, " (", code, ")");
    case absl::StatusCode::kPermissionDenied:
      return absl::StrCat("not allowed: ", message, " (", code,
                          "); narrow the request to the token's scope or use a token that "
                          "covers it");
    case absl::StatusCode::kDeadlineExceeded:
      return absl::StrCat("no answer from Sidestream at ", server, " in time (", code,
                          "); raise --timeout?");
    case absl::StatusCode::kUnimplemented:
      return absl::StrCat(server, " does not implement this call; is it a Sidestream server? ",
                          message, " (", code, ")");
    default:
      return absl::StrCat(message, " (", code, ")");
  }
}

int ExitCodeFor(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (status.code() == absl::StatusCode::kInvalidArgument) return kExitUsage;
  return kExitFailure;
}

}  // namespace sidestream::cli
