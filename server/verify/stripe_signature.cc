#include "server/verify/stripe_signature.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "openssl/core_names.h"
#include "openssl/crypto.h"
#include "openssl/evp.h"
#include "openssl/params.h"

namespace sidestream {
namespace {

constexpr absl::string_view kSecretPrefix = "whsec_";
constexpr size_t kSha256Size = 32;
constexpr size_t kV1HexSize = 2 * kSha256Size;

struct MacCtxDeleter {
  void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter>;

struct MacDeleter {
  void operator()(EVP_MAC* mac) const { EVP_MAC_free(mac); }
};

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Lower-case hex, as Stripe sends it; `out` holds 2 * `size` chars.
void HexEncode(const unsigned char* in, size_t size, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[in[i] >> 4];
    out[2 * i + 1] = kDigits[in[i] & 0x0f];
  }
}

// A fresh HMAC-SHA256 context keyed with `secret` (the whole "whsec_..."
// string, as bytes). Null if OpenSSL fails.
MacCtxPtr NewKeyedContext(absl::string_view secret) {
  std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr));
  if (mac == nullptr) return nullptr;
  MacCtxPtr ctx(EVP_MAC_CTX_new(mac.get()));  // holds its own reference to `mac`
  if (ctx == nullptr) return nullptr;
  char digest_name[] = OSSL_DIGEST_NAME_SHA2_256;
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_init(ctx.get(), Bytes(secret), secret.size(), params) != 1) return nullptr;
  return ctx;
}

// Feeds "<timestamp>.<body>" to a keyed context and writes the lower-case hex
// digest (64 chars) to `out`. The body is hashed in place, never copied.
bool FinishV1(EVP_MAC_CTX* ctx, absl::string_view timestamp, absl::string_view body, char* out) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  size_t digest_size = 0;
  if (EVP_MAC_update(ctx, Bytes(timestamp), timestamp.size()) != 1 ||
      EVP_MAC_update(ctx, Bytes("."), 1) != 1 ||
      EVP_MAC_update(ctx, Bytes(body), body.size()) != 1 ||
      EVP_MAC_final(ctx, digest, &digest_size, sizeof(digest)) != 1 || digest_size != kSha256Size) {
    return false;
  }
  HexEncode(digest, kSha256Size, out);
  return true;
}

// Calls fn(key, value) for every "key=value" element of a Stripe-Signature
// header. Elements are trimmed; those without '=' are skipped.
template <typename Fn>
void ForEachElement(absl::string_view header, Fn&& fn) {
  for (absl::string_view element : absl::StrSplit(header, ',')) {
    element = absl::StripAsciiWhitespace(element);
    const size_t eq = element.find('=');
    if (eq == absl::string_view::npos) continue;
    fn(element.substr(0, eq), element.substr(eq + 1));
  }
}

// Digits only (no sign, no space), no overflow, > 0.
bool ParsePositiveSeconds(absl::string_view text, int64_t* out) {
  if (text.empty()) return false;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const int digit = c - '0';
    if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) return false;
    value = value * 10 + digit;
  }
  if (value <= 0) return false;
  *out = value;
  return true;
}

// "412" for whole seconds, "300.001" otherwise.
std::string FormatSeconds(absl::Duration d) {
  if (d == absl::Trunc(d, absl::Seconds(1))) return absl::StrCat(absl::ToInt64Seconds(d));
  return absl::StrFormat("%.3f", absl::ToDoubleSeconds(d));
}

SignatureVerifier::Result Reject(RejectReason reason, std::string detail) {
  SignatureVerifier::Result result;
  result.rejection = Rejection{reason, std::move(detail)};
  return result;
}

bool IsValidLabel(absl::string_view label) {
  if (label.empty()) return false;
  for (char c : label) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

// Names an entry in messages: its label when it has one, always its position.
std::string EntryName(absl::string_view label, int position) {
  if (label.empty()) return absl::StrCat("entry ", position);
  return absl::StrCat("'", label, "' (entry ", position, ")");
}

}  // namespace

struct SignatureVerifier::PreparedKeys {
  std::vector<MacCtxPtr> contexts;  // one per secret, same order as secrets_
};

absl::StatusOr<std::vector<WebhookSecret>> ParseWebhookSecrets(absl::string_view text,
                                                               std::vector<std::string>* warnings) {
  auto warn = [warnings](std::string message) {
    if (warnings != nullptr) warnings->push_back(std::move(message));
  };
  std::vector<WebhookSecret> secrets;
  std::vector<int> positions;  // of each entry in `secrets`, for messages
  int position = 0;
  // Lines first, so that a '#' comment may itself contain commas; '\r' ends a
  // line too, for files written on Windows.
  for (absl::string_view line : absl::StrSplit(text, absl::ByAnyChar("\n\r"))) {
    if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "#")) continue;
    for (absl::string_view raw : absl::StrSplit(line, ',')) {
      if (absl::StripAsciiWhitespace(raw).empty()) continue;
      ++position;
      absl::string_view label;
      absl::string_view secret = raw;
      const size_t eq = raw.find('=');
      // A bare secret may itself contain '=', so '=' separates a label only
      // when what precedes it is not the start of a secret.
      if (eq != absl::string_view::npos &&
          !absl::StartsWith(absl::StripLeadingAsciiWhitespace(raw), kSecretPrefix)) {
        absl::string_view before = raw.substr(0, eq);
        absl::string_view after = raw.substr(eq + 1);
        absl::string_view trimmed_label = absl::StripAsciiWhitespace(before);
        if (IsValidLabel(trimmed_label)) {
          label = before;
          secret = after;
          if (absl::StripAsciiWhitespace(secret).empty()) {
            return absl::InvalidArgumentError(
                absl::StrCat("webhook secret ", EntryName(trimmed_label, position), " is empty"));
          }
        } else if (trimmed_label.empty() ||
                   absl::StartsWith(absl::StripLeadingAsciiWhitespace(after), kSecretPrefix)) {
          // "label=whsec_..." with a bad label: certainly a labelled entry.
          return absl::InvalidArgumentError(absl::StrCat(
              "webhook secret entry ", position, ": label \"", absl::CHexEscape(trimmed_label),
              "\" must be non-empty and use only [A-Za-z0-9_.-]"));
        }
      }
      absl::string_view trimmed_secret = absl::StripAsciiWhitespace(secret);
      absl::string_view trimmed_label = absl::StripAsciiWhitespace(label);
      const std::string name = EntryName(trimmed_label, position);
      if (trimmed_secret.size() != secret.size() || trimmed_label.size() != label.size()) {
        warn(absl::StrCat("webhook secret ", name,
                          ": surrounding whitespace removed; Stripe secrets contain none"));
      }
      if (!absl::StartsWith(trimmed_secret, kSecretPrefix)) {
        warn(absl::StrCat("webhook secret ", name, " does not start with \"", kSecretPrefix,
                          "\" as Stripe signing secrets do"));
      }
      std::string final_label =
          trimmed_label.empty() ? absl::StrCat("secret-", position) : std::string(trimmed_label);
      // Few entries: linear scans are fine.
      for (size_t i = 0; i < secrets.size(); ++i) {
        if (secrets[i].label == final_label) {
          return absl::InvalidArgumentError(absl::StrCat("duplicate webhook secret label '",
                                                         final_label, "' (entries ", positions[i],
                                                         " and ", position, ")"));
        }
        if (secrets[i].secret == trimmed_secret) {
          return absl::InvalidArgumentError(
              absl::StrCat("webhook secret '", final_label, "' (entry ", position,
                           ") repeats the secret of entry ", positions[i]));
        }
      }
      secrets.push_back(WebhookSecret{std::move(final_label), std::string(trimmed_secret)});
      positions.push_back(position);
    }
  }
  if (secrets.empty()) return absl::InvalidArgumentError("no webhook secret configured");
  return secrets;
}

std::string ComputeStripeV1Signature(absl::string_view secret, int64_t timestamp,
                                     absl::string_view body) {
  char hex[kV1HexSize];
  MacCtxPtr ctx = NewKeyedContext(secret);
  if (ctx == nullptr || !FinishV1(ctx.get(), absl::AlphaNum(timestamp).Piece(), body, hex)) {
    return std::string();  // OpenSSL failed (allocation); matches no signature
  }
  return std::string(hex, kV1HexSize);
}

std::string MakeStripeSignatureHeader(const std::vector<std::string>& secrets, int64_t timestamp,
                                      absl::string_view body) {
  std::string header = absl::StrCat("t=", timestamp);
  for (const std::string& secret : secrets) {
    absl::StrAppend(&header, ",v1=", ComputeStripeV1Signature(secret, timestamp, body));
  }
  return header;
}

absl::StatusOr<SignatureVerifier> SignatureVerifier::Create(std::vector<WebhookSecret> secrets,
                                                            absl::Duration tolerance) {
  if (secrets.empty()) return absl::InvalidArgumentError("no webhook secret configured");
  if (tolerance <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("signature tolerance must be positive (got ",
                                                   absl::FormatDuration(tolerance),
                                                   "); zero does not disable the timestamp check"));
  }
  if (tolerance == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("signature tolerance must be finite");
  }
  for (size_t i = 0; i < secrets.size(); ++i) {
    if (secrets[i].secret.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("webhook secret ", EntryName(secrets[i].label, i + 1), " is empty"));
    }
  }

  auto keys = std::make_shared<PreparedKeys>();
  keys->contexts.reserve(secrets.size());
  for (const WebhookSecret& secret : secrets) {
    MacCtxPtr ctx = NewKeyedContext(secret.secret);
    if (ctx == nullptr) {
      return absl::InternalError(absl::StrCat(
          "OpenSSL could not prepare HMAC-SHA256 for webhook secret '", secret.label, "'"));
    }
    keys->contexts.push_back(std::move(ctx));
  }
  return SignatureVerifier(std::move(secrets), tolerance, std::move(keys));
}

SignatureVerifier::Result SignatureVerifier::Verify(std::optional<absl::string_view> header,
                                                    absl::string_view body, absl::Time now) const {
  // 1. Parse the header.
  if (!header.has_value()) {
    return Reject(RejectReason::kMissingSignature, "no Stripe-Signature header");
  }
  if (absl::StripAsciiWhitespace(*header).empty()) {
    return Reject(RejectReason::kMissingSignature, "empty Stripe-Signature header");
  }
  int t_count = 0;
  int v1_count = 0;
  bool t_valid = false;
  int64_t timestamp = 0;
  ForEachElement(*header, [&](absl::string_view key, absl::string_view value) {
    if (key == "t") {
      ++t_count;
      t_valid = ParsePositiveSeconds(value, &timestamp);
    } else if (key == "v1") {
      ++v1_count;
    }
  });
  if (t_count == 0) {
    return Reject(RejectReason::kMalformedSignature, "Stripe-Signature has no t element");
  }
  if (t_count > 1) {
    return Reject(
        RejectReason::kMalformedSignature,
        absl::StrCat("Stripe-Signature has ", t_count, " t elements; exactly one allowed"));
  }
  if (!t_valid) {
    return Reject(RejectReason::kMalformedSignature,
                  "Stripe-Signature t is not a positive integer number of seconds");
  }
  if (v1_count == 0) {
    return Reject(RejectReason::kNoV1Signature,
                  "Stripe-Signature has no v1 signature (other schemes are ignored)");
  }

  // 2. HMAC: one digest per secret, compared with every v1 in constant time.
  // Stripe signs the decimal timestamp, so a header "t=007" is checked as "7".
  const absl::AlphaNum timestamp_text(timestamp);
  const WebhookSecret* matched = nullptr;
  for (size_t i = 0; i < secrets_.size() && matched == nullptr; ++i) {
    // The prepared context is only read (duplicated), so concurrent calls
    // may share it.
    MacCtxPtr ctx(EVP_MAC_CTX_dup(keys_->contexts[i].get()));
    char expected[kV1HexSize];
    if (ctx == nullptr || !FinishV1(ctx.get(), timestamp_text.Piece(), body, expected)) {
      continue;  // OpenSSL failed (allocation): this secret cannot vouch for the request
    }
    bool equal = false;
    ForEachElement(*header, [&](absl::string_view key, absl::string_view value) {
      if (key == "v1" && value.size() == kV1HexSize &&
          CRYPTO_memcmp(value.data(), expected, kV1HexSize) == 0) {
        equal = true;
      }
    });
    if (equal) matched = &secrets_[i];
  }
  if (matched == nullptr) {
    return Reject(
        RejectReason::kSignatureMismatch,
        absl::StrCat("none of ", v1_count, " v1 signature(s) matches any of ", secrets_.size(),
                     " configured secret(s); was the raw request body used?"));
  }

  // 3. Timestamp, symmetric: too old or too far in the future.
  const absl::Duration age = now - absl::FromUnixSeconds(timestamp);
  if (age > tolerance_) {
    return Reject(RejectReason::kTimestampOutOfTolerance,
                  absl::StrCat("timestamp ", timestamp, " is ", FormatSeconds(age),
                               " s old; tolerance ", FormatSeconds(tolerance_), " s"));
  }
  if (-age > tolerance_) {
    return Reject(RejectReason::kTimestampOutOfTolerance,
                  absl::StrCat("timestamp ", timestamp, " is ", FormatSeconds(-age),
                               " s in the future; tolerance ", FormatSeconds(tolerance_), " s"));
  }
  Result result;
  result.secret = matched;
  return result;
}

}  // namespace sidestream
