// WebhookHandler: what happens to a Stripe webhook request, without HTTP
// plumbing. Path and method, then Stripe-Signature verification, then
// decoding, then an append to the log; the answer is sent only when the log
// reports the event durable (or a duplicate). Every outcome is counted.
//
// Answers (JSON bodies):
//   200 {"received":true,"id":...,"sequence":N,"duplicate":false|true}
//   400 {"error":"<reason>","message":"<detail>"} for signature/body problems
//   404, 405 (with Allow: POST), 413, 415, 503 (log cannot store: Stripe retries)
#ifndef SIDESTREAM_SERVER_INGRESS_WEBHOOK_HANDLER_H_
#define SIDESTREAM_SERVER_INGRESS_WEBHOOK_HANDLER_H_

#include <string>

#include "server/common/clock.h"
#include "server/ingress/http_server.h"
#include "server/ingress/ingress_stats.h"
#include "server/log/event_log.h"
#include "server/verify/stripe_signature.h"

namespace sidestream {

struct WebhookHandlerOptions {
  // The path Stripe posts to. Default "/webhook".
  std::string path = "/webhook";
};

// Thread-safe. Pointers are not owned and must outlive the handler.
class WebhookHandler final : public HttpHandler {
 public:
  WebhookHandler(WebhookHandlerOptions options, const SignatureVerifier* verifier, EventLog* log,
                 IngressStats* stats, Clock* clock)
      : options_(std::move(options)),
        verifier_(verifier),
        log_(log),
        stats_(stats),
        clock_(clock) {}

  void Handle(HttpServerRequest request, HttpRespond respond) override;
  HttpServerResponse Refuse(RejectReason reason, absl::string_view detail) override;

 private:
  const WebhookHandlerOptions options_;
  const SignatureVerifier* const verifier_;
  EventLog* const log_;
  IngressStats* const stats_;
  Clock* const clock_;
};

// `text` as a JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_INGRESS_WEBHOOK_HANDLER_H_
