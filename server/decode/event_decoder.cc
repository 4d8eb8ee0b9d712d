#include "server/decode/event_decoder.h"

#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"

#include "server/common/stripe_ids.h"
#include "server/common/time_proto.h"

namespace sidestream {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;
using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// At most this many bytes of input appear in a rejection detail.
constexpr size_t kMaxEchoBytes = 64;
// Above this many keys, duplicate detection uses a hash set instead of
// comparing every pair.
constexpr size_t kLinearDuplicateScanKeys = 16;
// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;

using Result = std::optional<Rejection>;

Rejection Invalid(std::string detail) {
  return Rejection{RejectReason::kInvalidJson, std::move(detail)};
}

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Untrusted input as it may appear in a detail: at most kMaxEchoBytes bytes,
// escaped so that the detail stays on one line.
std::string Echo(std::string_view s) {
  std::string out = absl::CHexEscape(ToAbsl(s.substr(0, kMaxEchoBytes)));
  if (s.size() > kMaxEchoBytes) out += "...";
  return out;
}

Rejection TooDeep() {
  return Invalid(absl::StrCat("nesting deeper than ", kMaxJsonDepth, " levels"));
}

Rejection DuplicateKey(std::string_view key) {
  return Invalid(absl::StrCat("duplicate key \"", Echo(key), "\""));
}

// Finds a key that appears twice in `obj`. Objects that are converted to a
// Struct detect duplicates through the map instead.
std::optional<std::string_view> FindDuplicateKey(object obj) {
  if (obj.size() <= kLinearDuplicateScanKeys) {
    for (auto outer = obj.begin(); outer != obj.end(); ++outer) {
      auto inner = outer;
      for (++inner; inner != obj.end(); ++inner) {
        if (inner.key() == outer.key()) return outer.key();
      }
    }
    return std::nullopt;
  }
  std::unordered_set<std::string_view> seen;
  seen.reserve(obj.size());
  for (auto field : obj) {
    if (!seen.insert(field.key).second) return field.key;
  }
  return std::nullopt;
}

// Enforces the depth limit and key uniqueness on a value that is not kept.
// `depth` is the depth `value` would have if it is an object or an array.
Result CheckValue(element value, int depth) {
  switch (value.type()) {
    case element_type::OBJECT: {
      if (depth > kMaxJsonDepth) return TooDeep();
      object obj = value.get_object().value_unsafe();
      if (auto key = FindDuplicateKey(obj)) return DuplicateKey(*key);
      for (auto field : obj) {
        if (Result r = CheckValue(field.value, depth + 1)) return r;
      }
      return std::nullopt;
    }
    case element_type::ARRAY: {
      if (depth > kMaxJsonDepth) return TooDeep();
      array arr = value.get_array().value_unsafe();
      for (element item : arr) {
        if (Result r = CheckValue(item, depth + 1)) return r;
      }
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

Result ToStruct(object obj, int depth, Struct* out);
Result ToList(array arr, int depth, ListValue* out);

// Converts `item` into `out`; `depth` is the depth `item` has if it is an
// object or an array. Every JSON number becomes a double.
Result ToValue(element item, int depth, Value* out) {
  switch (item.type()) {
    case element_type::OBJECT:
      return ToStruct(item.get_object().value_unsafe(), depth, out->mutable_struct_value());
    case element_type::ARRAY:
      return ToList(item.get_array().value_unsafe(), depth, out->mutable_list_value());
    case element_type::STRING: {
      std::string_view s = item.get_string().value_unsafe();
      out->set_string_value(s.data(), s.size());
      return std::nullopt;
    }
    case element_type::INT64:
      out->set_number_value(static_cast<double>(item.get_int64().value_unsafe()));
      return std::nullopt;
    case element_type::UINT64:
      out->set_number_value(static_cast<double>(item.get_uint64().value_unsafe()));
      return std::nullopt;
    case element_type::DOUBLE:
      out->set_number_value(item.get_double().value_unsafe());
      return std::nullopt;
    case element_type::BOOL:
      out->set_bool_value(item.get_bool().value_unsafe());
      return std::nullopt;
    case element_type::NULL_VALUE:
      out->set_null_value(google::protobuf::NULL_VALUE);
      return std::nullopt;
  }
  return std::nullopt;
}

Result ToList(array arr, int depth, ListValue* out) {
  if (depth > kMaxJsonDepth) return TooDeep();
  auto* values = out->mutable_values();
  values->Reserve(static_cast<int>(arr.size()));
  for (element item : arr) {
    if (Result r = ToValue(item, depth + 1, values->Add())) return r;
  }
  return std::nullopt;
}

// Inserting into the map is also the duplicate-key check.
Result ToStruct(object obj, int depth, Struct* out) {
  if (depth > kMaxJsonDepth) return TooDeep();
  auto* fields = out->mutable_fields();
  for (auto field : obj) {
    auto [it, inserted] = fields->try_emplace(std::string(field.key));
    if (!inserted) return DuplicateKey(field.key);
    if (Result r = ToValue(field.value, depth + 1, &it->second)) return r;
  }
  return std::nullopt;
}

// The top-level fields Sidestream reads, located in one pass; nullopt when
// absent.
struct TopLevel {
  std::optional<element> id, object_name, type, account, livemode, created, api_version,
      pending_webhooks, request, context, data, related_object, reason;
};

// Points at the TopLevel slot for `key`, or nullptr for fields Sidestream
// does not read.
std::optional<element>* SlotFor(TopLevel& top, std::string_view key) {
  if (key == "id") return &top.id;
  if (key == "object") return &top.object_name;
  if (key == "type") return &top.type;
  if (key == "account") return &top.account;
  if (key == "livemode") return &top.livemode;
  if (key == "created") return &top.created;
  if (key == "api_version") return &top.api_version;
  if (key == "pending_webhooks") return &top.pending_webhooks;
  if (key == "request") return &top.request;
  if (key == "context") return &top.context;
  if (key == "data") return &top.data;
  if (key == "related_object") return &top.related_object;
  if (key == "reason") return &top.reason;
  return nullptr;
}

bool IsNullOrAbsent(const std::optional<element>& e) {
  return !e.has_value() || e->type() == element_type::NULL_VALUE;
}

Rejection MissingField(std::string_view name) {
  return Invalid(absl::StrCat("missing field \"", ToAbsl(name), "\""));
}

Rejection WrongType(std::string_view name, std::string_view expected) {
  return Invalid(absl::StrCat("field \"", ToAbsl(name), "\" is not ", ToAbsl(expected)));
}

// A string field that may be absent or null (then `out` is left empty).
Result OptionalString(const std::optional<element>& e, std::string_view name,
                      std::string_view* out) {
  if (IsNullOrAbsent(e)) return std::nullopt;
  if (e->type() != element_type::STRING) return WrongType(name, "a string");
  *out = e->get_string().value_unsafe();
  return std::nullopt;
}

Result RequiredString(const std::optional<element>& e, std::string_view name,
                      std::string_view* out) {
  if (!e.has_value()) return MissingField(name);
  if (e->type() != element_type::STRING) return WrongType(name, "a string");
  *out = e->get_string().value_unsafe();
  return std::nullopt;
}

// Looks `key` up in a small object already checked for duplicates.
std::optional<element> Member(object obj, std::string_view key) {
  element value;
  if (obj.at_key(key).get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

// `{id, idempotency_key}` (both nullable) into `request`; leaves it unset
// when both are null, as Stripe sends for events no API request caused.
Result DecodeRequestObject(object obj, std::string_view name, v1::Event* event) {
  std::string_view id, idempotency_key;
  if (Result r = OptionalString(Member(obj, "id"), name, &id)) return r;
  if (Result r = OptionalString(Member(obj, "idempotency_key"), name, &idempotency_key)) return r;
  if (id.empty() && idempotency_key.empty()) return std::nullopt;
  v1::EventRequest* request = event->mutable_request();
  request->set_id(id.data(), id.size());
  request->set_idempotency_key(idempotency_key.data(), idempotency_key.size());
  return std::nullopt;
}

Result DecodeIdTypeLivemode(const TopLevel& top, v1::Event* event) {
  std::string_view id, type;
  if (Result r = RequiredString(top.id, "id", &id)) return r;
  if (!IsStripeId(ToAbsl(id)))
    return Invalid(absl::StrCat("id \"", Echo(id), "\" is not a Stripe id"));
  if (Result r = RequiredString(top.type, "type", &type)) return r;
  if (!IsEventType(ToAbsl(type))) {
    return Invalid(absl::StrCat("type \"", Echo(type), "\" is not a Stripe event type"));
  }
  if (!top.livemode.has_value()) return MissingField("livemode");
  if (top.livemode->type() != element_type::BOOL) return WrongType("livemode", "a boolean");
  event->set_id(id.data(), id.size());
  event->set_type(type.data(), type.size());
  event->set_livemode(top.livemode->get_bool().value_unsafe());
  return std::nullopt;
}

Result SetAccount(std::string_view account, std::string_view name, v1::Event* event) {
  if (!account.empty() && !IsAccountId(ToAbsl(account))) {
    return Invalid(absl::StrCat("field \"", ToAbsl(name), "\" value \"", Echo(account),
                                "\" is not an account id"));
  }
  event->set_account(account.data(), account.size());
  return std::nullopt;
}

// `data` of a snapshot event, at depth 2: `object` is required,
// `previous_attributes` optional; anything else is only checked.
Result DecodeData(const std::optional<element>& data, v1::Event* event) {
  if (!data.has_value()) return MissingField("data");
  if (data->type() != element_type::OBJECT) return WrongType("data", "an object");
  object obj = data->get_object().value_unsafe();
  if (auto key = FindDuplicateKey(obj)) return DuplicateKey(*key);
  constexpr int kChildDepth = 3;
  bool has_object = false;
  for (auto field : obj) {
    if (field.key == "object") {
      if (field.value.type() != element_type::OBJECT) return WrongType("data.object", "an object");
      has_object = true;
      if (Result r = ToStruct(field.value.get_object().value_unsafe(), kChildDepth,
                              event->mutable_data_object())) {
        return r;
      }
    } else if (field.key == "previous_attributes" &&
               field.value.type() != element_type::NULL_VALUE) {
      if (field.value.type() != element_type::OBJECT) {
        return WrongType("data.previous_attributes", "an object");
      }
      if (Result r = ToStruct(field.value.get_object().value_unsafe(), kChildDepth,
                              event->mutable_previous_attributes())) {
        return r;
      }
    } else if (Result r = CheckValue(field.value, kChildDepth)) {
      return r;
    }
  }
  if (!has_object) return MissingField("data.object");
  const auto& fields = event->data_object().fields();
  if (auto it = fields.find("object"); it != fields.end() && it->second.has_string_value()) {
    event->set_object_type(it->second.string_value());
  }
  if (auto it = fields.find("id"); it != fields.end() && it->second.has_string_value()) {
    event->set_object_id(it->second.string_value());
  }
  return std::nullopt;
}

Result DecodeSnapshot(const TopLevel& top, v1::Event* event) {
  event->set_kind(v1::EVENT_KIND_SNAPSHOT);
  if (Result r = DecodeIdTypeLivemode(top, event)) return r;

  if (!top.created.has_value()) return MissingField("created");
  if (top.created->type() == element_type::UINT64) return Invalid("created is out of range");
  if (top.created->type() != element_type::INT64) return WrongType("created", "an integer");
  int64_t created = top.created->get_int64().value_unsafe();
  if (created < kMinTimestampSeconds || created > kMaxTimestampSeconds) {
    return Invalid(absl::StrCat("created ", created, " is out of range"));
  }
  event->mutable_create_time()->set_seconds(created);

  std::string_view account, api_version, context;
  if (Result r = OptionalString(top.account, "account", &account)) return r;
  if (Result r = SetAccount(account, "account", event)) return r;
  if (Result r = OptionalString(top.api_version, "api_version", &api_version)) return r;
  event->set_api_version(api_version.data(), api_version.size());
  if (Result r = OptionalString(top.context, "context", &context)) return r;
  event->set_context(context.data(), context.size());

  if (!IsNullOrAbsent(top.pending_webhooks)) {
    if (top.pending_webhooks->type() != element_type::INT64) {
      return WrongType("pending_webhooks", "an integer");
    }
    event->set_pending_webhooks(top.pending_webhooks->get_int64().value_unsafe());
  }

  if (!IsNullOrAbsent(top.request)) {
    switch (top.request->type()) {
      case element_type::STRING: {
        // API versions up to 2017-05-25 send the request id alone.
        std::string_view id = top.request->get_string().value_unsafe();
        if (!id.empty()) event->mutable_request()->set_id(id.data(), id.size());
        break;
      }
      case element_type::OBJECT:
        if (Result r =
                DecodeRequestObject(top.request->get_object().value_unsafe(), "request", event)) {
          return r;
        }
        break;
      default:
        return WrongType("request", "an object or a string");
    }
  }
  return DecodeData(top.data, event);
}

// RFC 3339 with optional fractional seconds, as thin events send `created`
// ("2024-09-17T06:20:52.246Z").
Result ParseRfc3339(std::string_view text, google::protobuf::Timestamp* out) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, ToAbsl(text), &time, &error)) {
    return Invalid(absl::StrCat("created \"", Echo(text), "\" is not an RFC 3339 time"));
  }
  int64_t seconds = absl::ToUnixSeconds(time);  // rounds towards the past
  if (seconds < kMinTimestampSeconds || seconds > kMaxTimestampSeconds) {
    return Invalid(absl::StrCat("created \"", Echo(text), "\" is out of range"));
  }
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  return std::nullopt;
}

Result DecodeThin(const TopLevel& top, v1::Event* event) {
  event->set_kind(v1::EVENT_KIND_THIN);
  if (Result r = DecodeIdTypeLivemode(top, event)) return r;

  if (!top.created.has_value()) return MissingField("created");
  if (top.created->type() != element_type::STRING) return WrongType("created", "a string");
  if (Result r =
          ParseRfc3339(top.created->get_string().value_unsafe(), event->mutable_create_time())) {
    return r;
  }

  // The context of a thin event is the account it belongs to.
  std::string_view context;
  if (Result r = OptionalString(top.context, "context", &context)) return r;
  if (Result r = SetAccount(context, "context", event)) return r;
  event->set_context(context.data(), context.size());

  if (!IsNullOrAbsent(top.related_object)) {
    if (top.related_object->type() != element_type::OBJECT) {
      return WrongType("related_object", "an object");
    }
    object obj = top.related_object->get_object().value_unsafe();
    std::string_view id, type, url;
    if (Result r = OptionalString(Member(obj, "id"), "related_object.id", &id)) return r;
    if (Result r = OptionalString(Member(obj, "type"), "related_object.type", &type)) return r;
    if (Result r = OptionalString(Member(obj, "url"), "related_object.url", &url)) return r;
    v1::RelatedObject* related = event->mutable_related_object();
    related->set_id(id.data(), id.size());
    related->set_type(type.data(), type.size());
    related->set_url(url.data(), url.size());
    event->set_object_id(id.data(), id.size());
    event->set_object_type(type.data(), type.size());
  }

  if (!IsNullOrAbsent(top.reason)) {
    if (top.reason->type() != element_type::OBJECT) return WrongType("reason", "an object");
    std::optional<element> request = Member(top.reason->get_object().value_unsafe(), "request");
    if (!IsNullOrAbsent(request)) {
      if (request->type() != element_type::OBJECT) return WrongType("reason.request", "an object");
      if (Result r =
              DecodeRequestObject(request->get_object().value_unsafe(), "reason.request", event)) {
        return r;
      }
    }
  }
  return std::nullopt;
}

// Resets every field the decoder owns, so a reused message carries nothing
// over from an earlier event.
void ClearDecodedFields(v1::Event* event) {
  event->clear_id();
  event->clear_type();
  event->clear_account();
  event->clear_livemode();
  event->clear_create_time();
  event->clear_api_version();
  event->clear_pending_webhooks();
  event->clear_request();
  event->clear_kind();
  event->clear_object_type();
  event->clear_object_id();
  event->clear_data_object();
  event->clear_previous_attributes();
  event->clear_context();
  event->clear_related_object();
}

// Per-thread parsing state, reused across calls. Both members keep the size
// of the largest body seen (bounded by the ingress body limit).
struct ParseState {
  // simdjson reads up to SIMDJSON_PADDING bytes past the end of its input;
  // webhook bodies are not padded, so each is copied here first.
  std::string padded_body;
  simdjson::dom::parser parser;
};

ParseState& ThreadParseState() {
  thread_local ParseState state;
  return state;
}

}  // namespace

std::optional<Rejection> DecodeStripeEvent(absl::string_view body, v1::Event* event) {
  ClearDecodedFields(event);
  if (body.empty()) return Invalid("empty body");
  ParseState& state = ThreadParseState();
  std::string& padded_body = state.padded_body;
  if (padded_body.size() < body.size() + simdjson::SIMDJSON_PADDING) {
    padded_body.resize(body.size() + simdjson::SIMDJSON_PADDING);
  }
  std::memcpy(padded_body.data(), body.data(), body.size());
  std::memset(padded_body.data() + body.size(), 0, simdjson::SIMDJSON_PADDING);

  element root;
  simdjson::error_code error =
      state.parser.parse(padded_body.data(), body.size(), /*realloc_if_needed=*/false).get(root);
  if (error == simdjson::DEPTH_ERROR) return TooDeep();
  if (error != simdjson::SUCCESS) {
    return Invalid(absl::StrCat("not valid JSON: ", simdjson::error_message(error)));
  }
  if (root.type() != element_type::OBJECT) return Invalid("top level is not an object");
  object top_object = root.get_object().value_unsafe();
  if (auto key = FindDuplicateKey(top_object)) return DuplicateKey(*key);

  TopLevel top;
  for (auto field : top_object) {
    if (std::optional<element>* slot = SlotFor(top, field.key)) *slot = field.value;
  }

  std::string_view object_name;
  if (Result r = RequiredString(top.object_name, "object", &object_name)) return r;
  const bool thin = object_name == "v2.core.event";
  if (!thin && object_name != "event") {
    return Rejection{RejectReason::kUnsupportedObject,
                     absl::StrCat("object \"", Echo(object_name), "\" is not an event")};
  }

  // Every value not converted into the event below is still held to the
  // depth and duplicate-key rules.
  constexpr int kChildDepth = 2;
  for (auto field : top_object) {
    if (field.key == "data" && !thin) continue;
    if (Result r = CheckValue(field.value, kChildDepth)) return r;
  }
  return thin ? DecodeThin(top, event) : DecodeSnapshot(top, event);
}

std::optional<Rejection> DecodeToNewEvent(std::string body, absl::Time receive_time,
                                          absl::string_view secret_label, NewEvent* out) {
  // A typical Stripe event's Struct fits in 16 KiB of arena; bigger ones
  // take further blocks from the heap, freed with the arena.
  alignas(std::max_align_t) char first_block[16 << 10];
  google::protobuf::ArenaOptions arena_options;
  arena_options.initial_block = first_block;
  arena_options.initial_block_size = sizeof(first_block);
  google::protobuf::Arena arena(arena_options);
  v1::Event* event = google::protobuf::Arena::CreateMessage<v1::Event>(&arena);
  if (std::optional<Rejection> rejection = DecodeStripeEvent(body, event)) return rejection;
  *event->mutable_receive_time() = TimestampProto(receive_time);
  event->set_secret_label(std::string(secret_label));
  out->id = event->id();
  out->type = event->type();
  out->account = event->account();
  out->livemode = event->livemode();
  out->receive_time = receive_time;
  out->event_bytes = event->SerializeAsString();
  out->raw_json = std::move(body);
  return std::nullopt;
}

}  // namespace sidestream
