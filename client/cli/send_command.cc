// `sidestream-cli send`: signs sample (or given) events the way Stripe does
// and POSTs them to the webhook ingress, with Stripe's headers.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

#include "client/cli/cli_parsing.h"
#include "client/cli/commands.h"
#include "client/http_client.h"
#include "client/sample_events.h"
#include "server/verify/stripe_signature.h"

namespace sidestream::cli {
namespace {

constexpr absl::string_view kCommand = "send";

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view flag) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", flag, " ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) {
    return absl::DataLossError(absl::StrCat("error reading ", flag, " ", path));
  }
  return std::move(contents).str();
}

// The secret from --secret_file, else from the environment. Secrets are
// never accepted on the command line, where other users can see them.
absl::StatusOr<std::string> LoadSigningSecret(const SendCommand& command) {
  std::vector<std::string> warnings;
  absl::StatusOr<std::string> secret;
  if (!command.secret_file.empty()) {
    absl::StatusOr<std::string> text = ReadFile(command.secret_file, "--secret_file");
    if (!text.ok()) return text.status();
    secret = SelectSigningSecret(*text, absl::StrCat("--secret_file ", command.secret_file),
                                 command.secret_label, &warnings);
  } else if (const char* value = std::getenv("SIDESTREAM_WEBHOOK_SECRET");
             value != nullptr && *value != '\0') {
    secret =
        SelectSigningSecret(value, "SIDESTREAM_WEBHOOK_SECRET", command.secret_label, &warnings);
  } else if (const char* list = std::getenv("SIDESTREAM_WEBHOOK_SECRETS");
             list != nullptr && *list != '\0') {
    secret =
        SelectSigningSecret(list, "SIDESTREAM_WEBHOOK_SECRETS", command.secret_label, &warnings);
  } else {
    return absl::InvalidArgumentError(
        "no signing secret: pass --secret_file=FILE (the server's secrets file works) or set "
        "SIDESTREAM_WEBHOOK_SECRET=whsec_...; secrets are never taken from the command line");
  }
  for (const std::string& warning : warnings) PrintError(kCommand, warning);
  return secret;
}

// The response body on one line, so that each event prints as one line.
std::string OneLine(absl::string_view body) {
  std::string line = absl::StrReplaceAll(body, {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  return std::string(absl::StripAsciiWhitespace(line));
}

}  // namespace

int RunSend(const SendCommand& command) {
  if (command.count < 1) {
    PrintError(kCommand, "--count must be at least 1");
    return kExitUsage;
  }
  absl::StatusOr<std::string> secret = LoadSigningSecret(command);
  if (!secret.ok()) {
    PrintError(kCommand, secret.status().message());
    return secret.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  std::string file_body;
  if (!command.body_file.empty()) {
    absl::StatusOr<std::string> body = ReadFile(command.body_file, "--body_file");
    if (!body.ok()) {
      PrintError(kCommand, body.status().message());
      return kExitFailure;
    }
    file_body = *std::move(body);
  }
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection = HttpConnection::Create(command.url);
  if (!connection.ok()) {
    PrintError(kCommand, absl::StrCat("--url: ", connection.status().message()));
    return kExitUsage;
  }

  bool all_accepted = true;
  for (int i = 1; i <= command.count; ++i) {
    std::string body = file_body;
    if (command.body_file.empty()) {
      SampleEventOptions sample = command.sample;
      if (!sample.id.empty() && command.count > 1) sample.id = absl::StrCat(sample.id, "_", i);
      absl::StatusOr<std::string> built = BuildSampleEvent(sample);
      if (!built.ok()) {
        PrintError(kCommand, built.status().message());
        return kExitUsage;
      }
      body = *std::move(built);
    }
    const EventIdentity event = IdentifyEvent(body);
    // Signed just before sending, as Stripe does for every attempt, so that
    // the timestamp is within the server's tolerance.
    const std::string signature =
        MakeStripeSignatureHeader({*secret}, absl::ToUnixSeconds(absl::Now()), body);
    const HttpHeaders headers = {
        {"Content-Type", "application/json; charset=utf-8"},
        {"User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
        {"Stripe-Signature", signature},
    };
    absl::StatusOr<HttpResponse> response = (*connection)->Post(headers, body, command.timeout);
    if (!response.ok()) {
      PrintError(kCommand, absl::StrCat(event.id, ": ", response.status().message()));
      return kExitFailure;
    }
    const bool accepted = response->status_code >= 200 && response->status_code < 300;
    all_accepted = all_accepted && accepted;
    const std::string line = absl::StrCat(response->status_code, " ", event.id, " ", event.type,
                                          " ", OneLine(response->body), "\n");
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
  return all_accepted ? kExitOk : kExitFailure;
}

}  // namespace sidestream::cli
