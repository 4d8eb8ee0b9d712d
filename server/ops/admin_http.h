// AdminHttpHandler: the admin listener (--admin_listen), for Kubernetes
// probes and Prometheus, apart from the webhook port so that neither is
// exposed to Stripe's side.
//
//   GET /healthz  200 "ok": the process is up and serving HTTP (liveness).
//   GET /readyz   200 "ready", or 503 with the reason: log not writable,
//                 shutting down (readiness; the gRPC health status follows
//                 the same state).
//   GET /metrics  Prometheus text format. When access tokens are configured,
//                 it needs "Authorization: Bearer <token>" (any valid token);
//                 the probes never do (kubelet sends no credentials and they
//                 reveal nothing).
// HEAD is answered like GET without a body; other methods get 405.
#ifndef SIDESTREAM_SERVER_OPS_ADMIN_HTTP_H_
#define SIDESTREAM_SERVER_OPS_ADMIN_HTTP_H_

#include <functional>
#include <optional>
#include <string>

#include "server/ingress/http_server.h"
#include "server/ops/stats.h"

namespace sidestream {

class AdminHttpHandler final : public HttpHandler {
 public:
  // Decides whether a request may read /metrics, given its Authorization
  // header (nullopt when absent). Null: everyone may.
  using MetricsAuth = std::function<bool(const std::optional<std::string>& authorization)>;

  AdminHttpHandler(StatsSources sources, MetricsAuth metrics_auth)
      : sources_(std::move(sources)), metrics_auth_(std::move(metrics_auth)) {}

  void Handle(HttpServerRequest request, HttpRespond respond) override;
  HttpServerResponse Refuse(RejectReason reason, absl::string_view detail) override;

 private:
  const StatsSources sources_;
  const MetricsAuth metrics_auth_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_OPS_ADMIN_HTTP_H_
