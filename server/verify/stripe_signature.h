// Stripe-Signature verification, as Stripe's SDKs do it (../shared facts in
// docs/stripe.md): HMAC-SHA256 over "<t>.<raw body>" keyed with the whole
// "whsec_..." string, lower-case hex, any `v1` matching any configured secret,
// constant-time comparison, symmetric timestamp tolerance.
//
// Pure functions and an immutable verifier: no I/O, no globals, safe to use
// from many threads at once.
#ifndef SIDESTREAM_SERVER_VERIFY_STRIPE_SIGNATURE_H_
#define SIDESTREAM_SERVER_VERIFY_STRIPE_SIGNATURE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "server/common/rejection.h"

namespace sidestream {

// One configured signing secret. `label` names it in logs, counters and
// Event.secret_label; `secret` is never logged.
struct WebhookSecret {
  std::string label;
  std::string secret;
};

// Parses secrets configuration: entries "label=whsec_..." or "whsec_..."
// separated by newlines (a secrets file) or commas (the environment
// variable). Blank entries and lines starting with '#' are skipped.
// Surrounding whitespace is trimmed and reported in `warnings` (without the
// secret). Unlabelled entries are labelled "secret-1", "secret-2", ... by
// position. Errors (INVALID_ARGUMENT, naming the entry by label or position,
// never the secret): an empty secret, a duplicate label, a duplicate secret,
// a label with characters other than [A-Za-z0-9_.-], no entry at all.
absl::StatusOr<std::vector<WebhookSecret>> ParseWebhookSecrets(absl::string_view text,
                                                               std::vector<std::string>* warnings);

// Lower-case hex HMAC-SHA256 of "<timestamp>.<body>" with `secret` as key:
// the `v1` value Stripe would send.
std::string ComputeStripeV1Signature(absl::string_view secret, int64_t timestamp,
                                     absl::string_view body);

// A complete header value "t=<timestamp>,v1=<sig>[,v1=<sig>...]", one v1 per
// secret. For the CLI, tests and benchmarks.
std::string MakeStripeSignatureHeader(const std::vector<std::string>& secrets, int64_t timestamp,
                                      absl::string_view body);

class SignatureVerifier {
 public:
  struct Result {
    // The secret that verified the request; null when rejected.
    const WebhookSecret* secret = nullptr;
    // Set when rejected.
    std::optional<Rejection> rejection;
    bool ok() const { return !rejection.has_value(); }
  };

  // INVALID_ARGUMENT when `secrets` is empty or `tolerance` <= 0 (a
  // tolerance of zero is a configuration error, never "no check").
  static absl::StatusOr<SignatureVerifier> Create(std::vector<WebhookSecret> secrets,
                                                  absl::Duration tolerance);

  // Checks a request. `header` is the Stripe-Signature value, or nullopt
  // when the header is absent. `body` is the raw body bytes. Order: parse
  // header, then HMAC, then timestamp; the first failure is reported.
  Result Verify(std::optional<absl::string_view> header, absl::string_view body,
                absl::Time now) const;

  const std::vector<WebhookSecret>& secrets() const { return secrets_; }
  absl::Duration tolerance() const { return tolerance_; }

 private:
  // OpenSSL HMAC state already keyed with each secret (same order as
  // secrets_). Immutable after Create(); Verify duplicates it per call, so
  // copies of a verifier and concurrent calls can share it.
  struct PreparedKeys;

  SignatureVerifier(std::vector<WebhookSecret> secrets, absl::Duration tolerance,
                    std::shared_ptr<const PreparedKeys> keys)
      : secrets_(std::move(secrets)), tolerance_(tolerance), keys_(std::move(keys)) {}

  std::vector<WebhookSecret> secrets_;
  absl::Duration tolerance_;
  std::shared_ptr<const PreparedKeys> keys_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_VERIFY_STRIPE_SIGNATURE_H_
