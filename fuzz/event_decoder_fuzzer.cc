// Fuzzes the JSON event decoder (server/decode/event_decoder.h) with the
// input as a webhook body. Seeds: fuzz/corpus/event_decoder/ (Stripe sample
// events of both kinds).
//
// Properties checked on every input (a violation aborts):
// - a rejection is kInvalidJson or kUnsupportedObject, with a detail;
// - an accepted event has an id, type and account of Stripe's form
//   (server/common/stripe_ids.h: the log, the filters and NATS subjects rely
//   on it), leaves the fields the decoder must not touch unset, serializes,
//   and parses back to an equal message;
// - decoding is deterministic: the same body gives the same result.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/util/message_differencer.h"

#include "server/common/stripe_ids.h"
#include "server/decode/event_decoder.h"
#include "sidestream/v1/event.pb.h"

namespace sidestream {
namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

bool Equal(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

void CheckDecode(absl::string_view body) {
  v1::Event event;
  std::optional<Rejection> rejection = DecodeStripeEvent(body, &event);

  v1::Event again;
  std::optional<Rejection> rejection_again = DecodeStripeEvent(body, &again);
  Check(rejection.has_value() == rejection_again.has_value(), "decoding is deterministic");

  if (rejection.has_value()) {
    Check(rejection->reason == RejectReason::kInvalidJson ||
              rejection->reason == RejectReason::kUnsupportedObject,
          "a refused body is invalid_json or unsupported_object");
    Check(!rejection->detail.empty(), "a rejection has a detail");
    Check(rejection->reason == rejection_again->reason &&
              rejection->detail == rejection_again->detail,
          "decoding is deterministic (rejection)");
    return;
  }
  Check(Equal(event, again), "decoding is deterministic (event)");

  Check(IsStripeId(event.id()), "an accepted id is a Stripe id");
  Check(IsEventType(event.type()), "an accepted type is a Stripe event type");
  Check(event.account().empty() || IsAccountId(event.account()),
        "an accepted account is empty or an account id");
  Check(event.sequence() == 0 && !event.has_receive_time() && event.secret_label().empty() &&
            event.raw_json().empty(),
        "the decoder leaves sequence, receive_time, secret_label and raw_json alone");

  std::string bytes;
  Check(event.SerializeToString(&bytes), "an accepted event serializes");
  v1::Event parsed;
  Check(parsed.ParseFromString(bytes), "the serialized event parses");
  Check(Equal(event, parsed), "the parsed event equals the decoded one");
}

}  // namespace
}  // namespace sidestream

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sidestream::CheckDecode(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
