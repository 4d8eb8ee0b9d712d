// Server: one Sidestream process wired together (log, hub, subscriptions,
// gRPC services with health and reflection, HTTP ingress). main() builds
// ServerOptions and calls Start; tests can do the same in process.
#ifndef SIDESTREAM_SERVER_SERVER_H_
#define SIDESTREAM_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "server/config.h"

namespace sidestream {

class Server {
 public:
  // Validates `options`, opens the log, starts gRPC then HTTP. Fails with the
  // first problem (bad option, unwritable data dir, port in use).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  // Shuts down (if not yet) with a short grace period.
  ~Server();

  // Bound addresses, "HOST:PORT" with the real ports.
  std::string http_address() const;
  std::string grpc_address() const;
  std::string admin_address() const;
  std::string log_epoch() const;

  // Graceful shutdown, within `grace`: readiness turns false (/readyz 503,
  // gRPC health NOT_SERVING); new webhooks get 503 "shutting_down" (Stripe
  // retries) while those already verified are stored and answered; every
  // Subscribe stream ends with UNAVAILABLE (clients reconnect elsewhere and
  // resume); gRPC drains; the log commits what is queued and closes; the
  // listeners stop. Idempotent.
  void Shutdown(absl::Duration grace);

  // Re-reads the files that may change while running (SIGHUP). On an error
  // nothing changes and the previous settings stay in force.
  absl::Status Reload();

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_SERVER_H_
