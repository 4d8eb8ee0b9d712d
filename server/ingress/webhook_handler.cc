#include "server/ingress/webhook_handler.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

#include "server/common/logging.h"
#include "server/common/time_proto.h"
#include "server/decode/event_decoder.h"

namespace sidestream {
namespace {

// True for "application/json" with any parameters ("; charset=utf-8").
bool IsJsonMediaType(absl::string_view content_type) {
  absl::string_view media = content_type.substr(0, content_type.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(media), "application/json");
}

}  // namespace

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Non-ASCII bytes are escaped too: a detail may quote invalid UTF-8.
          absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

HttpServerResponse WebhookHandler::Refuse(RejectReason reason, absl::string_view detail) {
  stats_->CountRejected(reason);
  HttpServerResponse response;
  response.status = RejectReasonHttpStatus(reason);
  response.body = absl::StrCat("{\"error\":\"", RejectReasonName(reason),
                               "\",\"message\":", JsonQuote(detail), "}");
  if (reason == RejectReason::kMethodNotAllowed) response.headers.emplace_back("Allow", "POST");
  if (reason == RejectReason::kStoreUnavailable) response.headers.emplace_back("Retry-After", "5");
  return response;
}

void WebhookHandler::Handle(HttpServerRequest request, HttpRespond respond) {
  auto refuse = [&](RejectReason reason, absl::string_view detail) {
    LOG_WARNING("webhook refused: reason=", RejectReasonName(reason), " peer=", request.peer,
                " detail=", JsonQuote(detail));
    std::move(respond)(Refuse(reason, detail));
  };

  absl::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path != options_.path) {
    return refuse(RejectReason::kNotFound,
                  absl::StrCat("no such path; Stripe webhooks go to ", options_.path));
  }
  if (request.method != "POST") {
    return refuse(RejectReason::kMethodNotAllowed, "webhooks must be POSTed");
  }
  if (request.content_type.has_value() && !IsJsonMediaType(*request.content_type)) {
    return refuse(RejectReason::kUnsupportedMediaType,
                  "Content-Type must be application/json, as Stripe sends it");
  }

  const absl::Time now = clock_->Now();
  std::optional<absl::string_view> signature;
  if (request.stripe_signature.has_value()) signature = *request.stripe_signature;
  SignatureVerifier::Result verified = verifier_->Verify(signature, request.body, now);
  if (!verified.ok()) return refuse(verified.rejection->reason, verified.rejection->detail);

  v1::Event event;
  if (std::optional<Rejection> rejection = DecodeStripeEvent(request.body, &event)) {
    return refuse(rejection->reason, rejection->detail);
  }
  *event.mutable_receive_time() = TimestampProto(now);
  event.set_secret_label(verified.secret->label);

  NewEvent new_event;
  new_event.id = event.id();
  new_event.type = event.type();
  new_event.account = event.account();
  new_event.livemode = event.livemode();
  new_event.receive_time = now;
  new_event.event_bytes = event.SerializeAsString();
  new_event.raw_json = std::move(request.body);

  log_->Append(std::move(new_event), [this, respond = std::move(respond), id = event.id(),
                                      type = event.type(), peer = std::move(request.peer)](
                                         absl::StatusOr<AppendResult> result) mutable {
    if (!result.ok()) {
      LOG_ERROR("webhook not stored: id=", id, " type=", type, " peer=", peer,
                " error=", result.status().message());
      std::move(respond)(Refuse(RejectReason::kStoreUnavailable,
                                "the event log cannot store events right now; retry later"));
      return;
    }
    if (result->duplicate) {
      stats_->CountDuplicate();
    } else {
      stats_->CountAccepted();
    }
    LOG_DEBUG("webhook stored: id=", id, " type=", type, " sequence=", result->sequence,
              " duplicate=", result->duplicate);
    HttpServerResponse response;
    response.body = absl::StrCat("{\"received\":true,\"id\":", JsonQuote(id),
                                 ",\"sequence\":", result->sequence,
                                 ",\"duplicate\":", result->duplicate ? "true" : "false", "}");
    std::move(respond)(std::move(response));
  });
}

}  // namespace sidestream
