// Why a webhook request was refused. One vocabulary for the HTTP response
// body, the logs and the counters (Admin.GetStats).
#ifndef SIDESTREAM_SERVER_COMMON_REJECTION_H_
#define SIDESTREAM_SERVER_COMMON_REJECTION_H_

#include <string>

#include "absl/strings/string_view.h"

namespace sidestream {

enum class RejectReason {
  // Stripe-Signature checks (order: header, HMAC, timestamp).
  kMissingSignature,         // no Stripe-Signature header, or an empty one
  kMalformedSignature,       // no usable `t` (missing, repeated, not a positive integer)
  kNoV1Signature,            // a `t` but no `v1` element
  kSignatureMismatch,        // no `v1` matches any configured secret
  kTimestampOutOfTolerance,  // `t` too old or too far in the future
  // Body checks, after the signature verified.
  kInvalidJson,        // not UTF-8 JSON, not an object, or a required field missing/ill-typed
  kUnsupportedObject,  // valid JSON, but `object` is neither "event" nor "v2.core.event"
  // HTTP-level.
  kBadRequest,            // malformed HTTP request
  kNotFound,              // path is not the webhook path
  kMethodNotAllowed,      // not POST
  kUnsupportedMediaType,  // a Content-Type other than application/json
  kBodyTooLarge,          // body above --max_body_bytes
  kStoreUnavailable,      // the log could not store the event now (503, Stripe retries)
  kShuttingDown,          // the server is draining for shutdown (503, Stripe retries)
  kSourceNotAllowed,      // source address not in --webhook_allowed_ips_file (403)
};

// The reason as it appears on the wire and in counters: "missing_signature",
// "signature_mismatch", ... (snake_case, stable).
absl::string_view RejectReasonName(RejectReason reason);

// The HTTP status for a reason: 400 for signature and body problems, 404,
// 403 (source not allowed), 405, 413, 415, 503 (store unavailable, shutting
// down).
int RejectReasonHttpStatus(RejectReason reason);

// Every reason, for counters and tests.
inline constexpr RejectReason kAllRejectReasons[] = {
    RejectReason::kMissingSignature,
    RejectReason::kMalformedSignature,
    RejectReason::kNoV1Signature,
    RejectReason::kSignatureMismatch,
    RejectReason::kTimestampOutOfTolerance,
    RejectReason::kInvalidJson,
    RejectReason::kUnsupportedObject,
    RejectReason::kBadRequest,
    RejectReason::kNotFound,
    RejectReason::kMethodNotAllowed,
    RejectReason::kUnsupportedMediaType,
    RejectReason::kBodyTooLarge,
    RejectReason::kStoreUnavailable,
    RejectReason::kShuttingDown,
    RejectReason::kSourceNotAllowed,
};

// A refusal with a short human-readable detail ("timestamp 1492774577 is
// 412 s old; tolerance 300 s"). The detail never contains a secret.
struct Rejection {
  RejectReason reason;
  std::string detail;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_REJECTION_H_
