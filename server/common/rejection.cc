#include "server/common/rejection.h"

namespace sidestream {

absl::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kMissingSignature:
      return "missing_signature";
    case RejectReason::kMalformedSignature:
      return "malformed_signature";
    case RejectReason::kNoV1Signature:
      return "no_v1_signature";
    case RejectReason::kSignatureMismatch:
      return "signature_mismatch";
    case RejectReason::kTimestampOutOfTolerance:
      return "timestamp_out_of_tolerance";
    case RejectReason::kInvalidJson:
      return "invalid_json";
    case RejectReason::kUnsupportedObject:
      return "unsupported_object";
    case RejectReason::kBadRequest:
      return "bad_request";
    case RejectReason::kNotFound:
      return "not_found";
    case RejectReason::kMethodNotAllowed:
      return "method_not_allowed";
    case RejectReason::kUnsupportedMediaType:
      return "unsupported_media_type";
    case RejectReason::kBodyTooLarge:
      return "body_too_large";
    case RejectReason::kStoreUnavailable:
      return "store_unavailable";
    case RejectReason::kShuttingDown:
      return "shutting_down";
    case RejectReason::kSourceNotAllowed:
      return "source_not_allowed";
  }
  return "unknown";
}

int RejectReasonHttpStatus(RejectReason reason) {
  switch (reason) {
    case RejectReason::kSourceNotAllowed:
      return 403;
    case RejectReason::kNotFound:
      return 404;
    case RejectReason::kMethodNotAllowed:
      return 405;
    case RejectReason::kBodyTooLarge:
      return 413;
    case RejectReason::kUnsupportedMediaType:
      return 415;
    case RejectReason::kStoreUnavailable:
    case RejectReason::kShuttingDown:
      return 503;
    default:
      return 400;
  }
}

}  // namespace sidestream
