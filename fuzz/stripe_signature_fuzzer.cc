// Fuzzes the Stripe-Signature verifier and the secrets parser
// (server/verify/stripe_signature.h).
//
// The first input byte picks a mode; the rest is text, so that seeds stay
// readable (fuzz/corpus/stripe_signature/):
//   's' signed:  "<extra elements>\n<body>". The header is a correct
//                signature of <body> with one of the configured secrets,
//                preceded by <extra elements> with every 't' removed (so they
//                cannot add a second timestamp). It must verify, with that
//                secret, exactly at the edges of the tolerance window and not
//                one second past them; the body with one byte changed must not.
//   'p' secrets: the rest is a secrets file/variable for ParseWebhookSecrets;
//                what it accepts must print back to text that parses to the
//                same secrets, with newlines or commas as separators.
//   otherwise:   "<header>\n<body>" verified as received (no '\n': the whole
//                rest is the body and the header is absent). Any answer is
//                fine but the rejection must be one of the signature reasons
//                with a detail, and an acceptance must name a configured
//                secret.
// A violated property aborts (a crash for libFuzzer).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "server/verify/stripe_signature.h"

namespace sidestream {
namespace {

constexpr absl::Duration kTolerance = absl::Seconds(300);
// The verifier's "now" in raw mode: the time of Stripe's documented test
// vector, so that seeds with that vector's header are accepted.
constexpr int64_t kNowUnix = 1492774577;

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

const SignatureVerifier& Verifier() {
  static const SignatureVerifier* verifier = [] {
    std::vector<WebhookSecret> secrets = {{"test", "whsec_test_secret"},
                                          {"connect", "whsec_connect_secret_2"}};
    absl::StatusOr<SignatureVerifier> created = SignatureVerifier::Create(secrets, kTolerance);
    Check(created.ok(), "the fuzzer's verifier is created");
    return new SignatureVerifier(*std::move(created));
  }();
  return *verifier;
}

bool IsSignatureReason(RejectReason reason) {
  switch (reason) {
    case RejectReason::kMissingSignature:
    case RejectReason::kMalformedSignature:
    case RejectReason::kNoV1Signature:
    case RejectReason::kSignatureMismatch:
    case RejectReason::kTimestampOutOfTolerance:
      return true;
    default:
      return false;
  }
}

bool IsConfiguredSecret(const SignatureVerifier& verifier, const WebhookSecret* secret) {
  for (const WebhookSecret& s : verifier.secrets()) {
    if (&s == secret) return true;
  }
  return false;
}

void CheckRawVerify(absl::string_view text) {
  const SignatureVerifier& verifier = Verifier();
  std::optional<absl::string_view> header;
  absl::string_view body = text;
  if (size_t nl = text.find('\n'); nl != absl::string_view::npos) {
    header = text.substr(0, nl);
    body = text.substr(nl + 1);
  }
  SignatureVerifier::Result result = verifier.Verify(header, body, absl::FromUnixSeconds(kNowUnix));
  if (result.ok()) {
    Check(IsConfiguredSecret(verifier, result.secret), "an accepted request names its secret");
    return;
  }
  Check(result.secret == nullptr, "a rejected request names no secret");
  Check(IsSignatureReason(result.rejection->reason), "the reason is a signature reason");
  Check(!result.rejection->detail.empty(), "a rejection has a detail");
  for (const WebhookSecret& s : verifier.secrets()) {
    Check(result.rejection->detail.find(s.secret) == std::string::npos,
          "a rejection's detail never contains a secret");
  }
}

void CheckSignedVerify(absl::string_view text) {
  const SignatureVerifier& verifier = Verifier();
  absl::string_view extra;
  absl::string_view body = text;
  if (size_t nl = text.find('\n'); nl != absl::string_view::npos) {
    extra = text.substr(0, nl);
    body = text.substr(nl + 1);
  }
  // A timestamp and secret chosen by the input, so they vary too.
  int64_t timestamp = 1;
  for (unsigned char c : extra.substr(0, 4)) timestamp = timestamp * 251 + c;
  const size_t secret_index = extra.size() % verifier.secrets().size();
  const WebhookSecret& secret = verifier.secrets()[secret_index];

  std::string header;
  for (char c : extra) {
    if (c != 't') header.push_back(c);
  }
  absl::StrAppend(&header, ",", MakeStripeSignatureHeader({secret.secret}, timestamp, body));

  const absl::Time signed_at = absl::FromUnixSeconds(timestamp);
  for (absl::Duration skew : {absl::ZeroDuration(), kTolerance, -kTolerance}) {
    SignatureVerifier::Result ok = verifier.Verify(header, body, signed_at + skew);
    Check(ok.ok(), "a correctly signed request within the tolerance is accepted");
    Check(ok.secret == &secret, "the accepting secret is the signing secret");
  }
  for (absl::Duration skew : {kTolerance + absl::Seconds(1), -kTolerance - absl::Seconds(1)}) {
    SignatureVerifier::Result late = verifier.Verify(header, body, signed_at + skew);
    Check(!late.ok() && late.rejection->reason == RejectReason::kTimestampOutOfTolerance,
          "a correctly signed request outside the tolerance is refused for its timestamp");
  }
  std::string changed(body);
  if (changed.empty()) {
    changed = " ";
  } else {
    changed.back() = static_cast<char>(changed.back() ^ 0x01);
  }
  SignatureVerifier::Result mismatch = verifier.Verify(header, changed, signed_at);
  Check(!mismatch.ok() && mismatch.rejection->reason == RejectReason::kSignatureMismatch,
        "a changed body does not match the signature");
}

// "label=secret" entries; the parser guarantees neither contains a separator.
std::string Print(const std::vector<WebhookSecret>& secrets, absl::string_view separator) {
  return absl::StrJoin(secrets, separator, [](std::string* out, const WebhookSecret& s) {
    absl::StrAppend(out, s.label, "=", s.secret);
  });
}

bool SameSecrets(const std::vector<WebhookSecret>& a, const std::vector<WebhookSecret>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].label != b[i].label || a[i].secret != b[i].secret) return false;
  }
  return true;
}

void CheckParseSecrets(absl::string_view text) {
  std::vector<std::string> warnings;
  absl::StatusOr<std::vector<WebhookSecret>> parsed = ParseWebhookSecrets(text, &warnings);
  if (!parsed.ok()) {
    Check(parsed.status().code() == absl::StatusCode::kInvalidArgument,
          "bad secrets configuration is INVALID_ARGUMENT");
    return;
  }
  Check(!parsed->empty(), "an accepted configuration has a secret");
  for (const WebhookSecret& s : *parsed) {
    Check(!s.secret.empty() && !s.label.empty(), "secrets and labels are non-empty");
  }
  for (absl::string_view separator : {"\n", ","}) {
    absl::StatusOr<std::vector<WebhookSecret>> again =
        ParseWebhookSecrets(Print(*parsed, separator), nullptr);
    Check(again.ok() && SameSecrets(*parsed, *again),
          "accepted secrets print back to text that parses to the same secrets");
  }
  // Accepted secrets are usable by the verifier.
  Check(SignatureVerifier::Create(*parsed, kTolerance).ok(), "accepted secrets make a verifier");
}

}  // namespace
}  // namespace sidestream

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0]) {
    case 's':
      sidestream::CheckSignedVerify(text);
      break;
    case 'p':
      sidestream::CheckParseSecrets(text);
      break;
    default:
      sidestream::CheckRawVerify(text);
  }
  return 0;
}
