// Decoding a verified Stripe webhook body into sidestream.v1.Event.
//
// simdjson parses; the google.protobuf.Struct of `data.object` (and
// `data.previous_attributes`) is built by walking simdjson's DOM, never with
// protobuf's JSON parser (10x slower). Pure function; safe to call from many
// threads (each thread keeps its own parser).
#ifndef SIDESTREAM_SERVER_DECODE_EVENT_DECODER_H_
#define SIDESTREAM_SERVER_DECODE_EVENT_DECODER_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "server/common/rejection.h"
#include "server/log/event_record.h"
#include "sidestream/v1/event.pb.h"

namespace sidestream {

// Deepest JSON nesting accepted (the top-level object is depth 1). Keeps the
// Struct well inside protobuf's default parse recursion limit (100) in every
// client language; Stripe's objects nest far less.
inline constexpr int kMaxJsonDepth = 32;

// Fills `event` from a Stripe event body (both v1 snapshot events and API v2
// thin events). Leaves `sequence`, `receive_time`, `secret_label` and
// `raw_json` untouched. Returns a rejection:
// - kInvalidJson: not valid UTF-8 JSON, not an object, nested deeper than
//   kMaxJsonDepth, a duplicate key in any object, or a required field
//   missing or of the wrong type (`id`, `object`, `type`, `livemode`,
//   `created`; `data.object` for snapshot events), or an id/type/account
//   that is not of Stripe's form;
// - kUnsupportedObject: `object` is a string other than "event" or
//   "v2.core.event".
std::optional<Rejection> DecodeStripeEvent(absl::string_view body, v1::Event* event);

// The webhook path's whole decode step: a verified `body` to the NewEvent the
// log stores (the Event with `receive_time` and `secret_label` set,
// serialized once; the body kept as raw_json). The Event is built on a
// protobuf arena whose first block is on the stack, so a typical event costs
// no heap allocation until the serialized bytes. Rejections as above.
std::optional<Rejection> DecodeToNewEvent(std::string body, absl::Time receive_time,
                                          absl::string_view secret_label, NewEvent* out);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_DECODE_EVENT_DECODER_H_
