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

HttpServerResponse WebhookHandler::Refuse(RejectReason reason, absl::string_view detail) {
  stats_->CountRejected(reason);
  HttpServerResponse response;
  response.status = RejectReasonHttpStatus(reason);
  response.body = absl::StrCat("{\"error\":\"", RejectReasonName(reason),
                               "\",\"message\":", JsonQuote(detail), "}");
  if (reason == RejectReason::kMethodNotAllowed) response.headers.emplace_back("Allow", "POST");
  if (reason == RejectReason::kStoreUnavailable || reason == RejectReason::kShuttingDown) {
    response.headers.emplace_back("Retry-After", "5");
  }
  return response;
}

void WebhookHandler::StartDraining() { draining_.store(true); }

bool WebhookHandler::AwaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void WebhookHandler::Finished() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

void WebhookHandler::SetVerifier(std::shared_ptr<const SignatureVerifier> verifier) {
  absl::MutexLock lock(&reload_mu_);
  verifier_ = std::move(verifier);
}

void WebhookHandler::SetSourcePolicy(std::shared_ptr<const WebhookSourcePolicy> policy) {
  absl::MutexLock lock(&reload_mu_);
  source_policy_ = std::move(policy);
}

void WebhookHandler::Handle(HttpServerRequest request, HttpRespond respond) {
  auto refuse = [&](RejectReason reason, absl::string_view detail) {
    LOG_FIELDS(kWarning, "webhook refused", {"reason", RejectReasonName(reason)},
               {"peer", request.peer}, {"detail", detail});
    std::move(respond)(Refuse(reason, detail));
  };

  absl::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path != options_.path) {
    return refuse(RejectReason::kNotFound,
                  absl::StrCat("no such path; Stripe webhooks go to ", options_.path));
  }
  std::shared_ptr<const SignatureVerifier> verifier;
  std::shared_ptr<const WebhookSourcePolicy> source_policy;
  {
    absl::ReaderMutexLock lock(&reload_mu_);
    verifier = verifier_;
    source_policy = source_policy_;
  }
  if (source_policy != nullptr) {
    if (absl::Status s = source_policy->Check(request.peer, request.proxy_header_value); !s.ok()) {
      return refuse(RejectReason::kSourceNotAllowed, s.message());
    }
  }
  if (request.method != "POST") {
    return refuse(RejectReason::kMethodNotAllowed, "webhooks must be POSTed");
  }
  if (draining_.load(std::memory_order_relaxed)) {
    return refuse(RejectReason::kShuttingDown,
                  "this instance is shutting down; Stripe retries the delivery");
  }
  if (request.content_type.has_value() && !IsJsonMediaType(*request.content_type)) {
    return refuse(RejectReason::kUnsupportedMediaType,
                  "Content-Type must be application/json, as Stripe sends it");
  }

  const absl::Time now = clock_->Now();
  std::optional<absl::string_view> signature;
  if (request.stripe_signature.has_value()) signature = *request.stripe_signature;
  // Latencies are wall time (absl::Now), whatever clock decides validity.
  const absl::Time verify_start = absl::Now();
  SignatureVerifier::Result verified = verifier->Verify(signature, request.body, now);
  stats_->ObserveVerify(absl::Now() - verify_start);
  if (!verified.ok()) return refuse(verified.rejection->reason, verified.rejection->detail);

  NewEvent new_event;
  if (std::optional<Rejection> rejection =
          DecodeToNewEvent(std::move(request.body), now, verified.secret->label, &new_event)) {
    return refuse(rejection->reason, rejection->detail);
  }

  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  const absl::Time append_start = absl::Now();
  // Copied before the call: the order in which the event is moved into the
  // argument and the lambda captures is unspecified.
  std::string id = new_event.id, type = new_event.type, account = new_event.account;
  log_->Append(std::move(new_event), [this, respond = std::move(respond), id = std::move(id),
                                      type = std::move(type), account = std::move(account),
                                      peer = std::move(request.peer),
                                      append_start](absl::StatusOr<AppendResult> result) mutable {
    stats_->ObserveAppend(absl::Now() - append_start);
    if (!result.ok()) {
      LOG_FIELDS(kError, "webhook not stored", {"event_id", id}, {"type", type},
                 {"account", account}, {"peer", peer}, {"error", result.status().message()});
      std::move(respond)(Refuse(RejectReason::kStoreUnavailable,
                                "the event log cannot store events right now; retry later"));
      Finished();
      return;
    }
    if (result->duplicate) {
      stats_->CountDuplicate();
    } else {
      stats_->CountAccepted();
    }
    LOG_FIELDS(kDebug, "webhook stored", {"event_id", id}, {"type", type}, {"account", account},
               {"sequence", result->sequence}, {"duplicate", result->duplicate}, {"peer", peer});
    HttpServerResponse response;
    response.body = absl::StrCat("{\"received\":true,\"id\":", JsonQuote(id),
                                 ",\"sequence\":", result->sequence,
                                 ",\"duplicate\":", result->duplicate ? "true" : "false", "}");
    std::move(respond)(std::move(response));
    Finished();
  });
}

}  // namespace sidestream
