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

#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "server/common/clock.h"
#include "server/common/json_quote.h"
#include "server/ingress/http_server.h"
#include "server/ingress/ingress_stats.h"
#include "server/log/event_log.h"
#include "server/security/ip_allow_list.h"
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
        verifier_(std::shared_ptr<const SignatureVerifier>(), verifier),  // not owned
        log_(log),
        stats_(stats),
        clock_(clock) {}

  void Handle(HttpServerRequest request, HttpRespond respond) override;
  HttpServerResponse Refuse(RejectReason reason, absl::string_view detail) override;

  // Graceful shutdown: from now on webhooks get 503 "shutting_down" (Stripe
  // retries them); requests already handed to the log still get their
  // answer.
  void StartDraining();
  // Waits until no request is waiting for the log, or until `deadline`.
  // True when none is left.
  bool AwaitIdle(absl::Time deadline);

  // Reload (SIGHUP): replaces the verifier (secret rotation) or the source
  // allow-list (null: none). Requests already past the check keep the one
  // they took.
  void SetVerifier(std::shared_ptr<const SignatureVerifier> verifier);
  void SetSourcePolicy(std::shared_ptr<const WebhookSourcePolicy> policy);

 private:
  void Finished();

  const WebhookHandlerOptions options_;
  // Replaceable at any time; each request takes a snapshot.
  mutable absl::Mutex reload_mu_;
  std::shared_ptr<const SignatureVerifier> verifier_ ABSL_GUARDED_BY(reload_mu_);
  std::shared_ptr<const WebhookSourcePolicy> source_policy_ ABSL_GUARDED_BY(reload_mu_);
  EventLog* const log_;
  IngressStats* const stats_;
  Clock* const clock_;
  std::atomic<bool> draining_{false};
  absl::Mutex mu_;
  // Appends started and not yet answered.
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_INGRESS_WEBHOOK_HANDLER_H_
