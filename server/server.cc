#include "server/server.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "server/common/logging.h"
#include "server/common/work_queue.h"
#include "server/hub/event_hub.h"
#include "server/ingress/http_server.h"
#include "server/ingress/ingress_stats.h"
#include "server/ingress/webhook_handler.h"
#include "server/log/sqlite_event_log.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/events_service.h"
#include "server/rpc/subscription.h"

namespace sidestream {

namespace {
// How often the registry checks for silent streams; the checkpoint interval
// is shortened by this much so that a checkpoint is never later than asked.
constexpr absl::Duration kTick = absl::Milliseconds(250);
}  // namespace

// Members are declared in dependency order; Shutdown tears them down in the
// order that keeps every callback's target alive (see Shutdown).
class Server::Impl {
 public:
  explicit Impl(const ServerOptions& options) : options_(options) {}

  absl::Status Start();
  void Shutdown(absl::Duration grace);
  absl::Status Reload();

  const ServerOptions options_;
  const absl::Time start_time_ = Clock::Real()->Now();
  std::unique_ptr<SignatureVerifier> verifier_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<WorkQueue> readers_;
  std::unique_ptr<WorkQueue> pumps_;
  std::unique_ptr<SubscriptionRegistry> registry_;
  IngressStats stats_;
  std::unique_ptr<EventsService> events_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::string grpc_address_;
  std::unique_ptr<WebhookHandler> webhook_;
  std::unique_ptr<HttpServer> http_;
  bool shut_down_ = false;

  // Readiness follows the log: while it cannot store, health reports
  // NOT_SERVING (webhooks get 503 meanwhile, so Stripe retries).
  void WatchReadiness();
  absl::Mutex watch_mu_;
  bool watch_stop_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watcher_;
};

void Server::Impl::WatchReadiness() {
  bool serving = true;
  absl::MutexLock lock(&watch_mu_);
  while (!watch_stop_) {
    // A periodic check, not synchronisation: wakes early only to stop.
    watch_mu_.AwaitWithTimeout(absl::Condition(&watch_stop_), kTick);
    if (watch_stop_) break;
    const LogInfo info = log_->Info();
    if (info.writable == serving) continue;
    serving = info.writable;
    if (serving) {
      LOG_INFO("ready again: the event log is writable");
    } else {
      LOG_ERROR("not ready: the event log cannot store events (", info.last_error,
                "); webhooks get 503 until it can");
    }
    grpc::HealthCheckServiceInterface* health = grpc_->GetHealthCheckService();
    health->SetServingStatus("", serving);
    health->SetServingStatus("sidestream.v1.Events", serving);
  }
}

absl::Status Server::Impl::Start() {
  if (absl::Status s = ValidateServerOptions(options_); !s.ok()) return s;
  absl::StatusOr<SignatureVerifier> verifier =
      SignatureVerifier::Create(options_.secrets, options_.signature_tolerance);
  if (!verifier.ok()) return verifier.status();
  verifier_ = std::make_unique<SignatureVerifier>(*std::move(verifier));

  SqliteEventLogOptions log_options;
  log_options.data_dir = options_.data_dir;
  log_options.retention = options_.retention;
  log_options.allow_short_retention = options_.allow_short_retention;
  log_options.max_bytes = options_.log_max_bytes;
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(log_options);
  if (!log.ok()) return log.status();
  log_ = *std::move(log);

  const LogInfo info = log_->Info();
  hub_ = std::make_unique<EventHub>(
      EventHubOptions{options_.hub_max_events, options_.hub_max_bytes}, info.last_sequence);
  log_->SetListener(hub_.get());
  readers_ = std::make_unique<WorkQueue>(options_.reader_threads);
  pumps_ = std::make_unique<WorkQueue>(1);
  registry_ = std::make_unique<SubscriptionRegistry>(Clock::Real(), kTick);

  SubscriptionEnv env;
  env.log = log_.get();
  env.hub = hub_.get();
  env.readers = readers_.get();
  env.pumps = pumps_.get();
  env.checkpoint_interval = std::max(options_.checkpoint_interval - kTick, kTick);
  events_service_ = std::make_unique<EventsService>(env, registry_.get());
  admin_service_ =
      std::make_unique<AdminService>(log_.get(), &stats_, registry_.get(), start_time_);

  // Reflection serves descriptors from the generated pool; touching the
  // health descriptor links it in, so `grpcurl describe grpc.health.v1.Health`
  // works.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  const std::string grpc_host = options_.grpc.host.find(':') != std::string::npos
                                    ? absl::StrCat("[", options_.grpc.host, "]")
                                    : options_.grpc.host;
  builder.AddListeningPort(absl::StrCat(grpc_host, ":", options_.grpc.port),
                           grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(events_service_.get());
  builder.RegisterService(admin_service_.get());
  grpc_ = builder.BuildAndStart();
  if (grpc_ == nullptr || grpc_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", grpc_host, ":",
                                               options_.grpc.port,
                                               " (address in use or not available)"));
  }
  grpc_address_ = absl::StrCat(grpc_host, ":", grpc_port);
  grpc::HealthCheckServiceInterface* health = grpc_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus("sidestream.v1.Events", true);
  health->SetServingStatus("sidestream.v1.Admin", true);
  watcher_ = std::thread([this] { WatchReadiness(); });

  webhook_ = std::make_unique<WebhookHandler>(WebhookHandlerOptions{options_.webhook_path},
                                              verifier_.get(), log_.get(), &stats_, Clock::Real());
  HttpServerOptions http_options;
  http_options.host = options_.http.host;
  http_options.port = options_.http.port;
  http_options.threads = options_.http_threads;
  http_options.max_body_bytes = options_.max_body_bytes;
  http_options.idle_timeout = options_.http_idle_timeout;
  http_options.request_timeout = options_.http_request_timeout;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start(http_options, webhook_.get());
  if (!http.ok()) return http.status();
  http_ = *std::move(http);
  return absl::OkStatus();
}

void Server::Impl::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (watcher_.joinable()) {
    {
      absl::MutexLock lock(&watch_mu_);
      watch_stop_ = true;
    }
    watcher_.join();
  }
  if (grpc_ != nullptr) grpc_->GetHealthCheckService()->Shutdown();
  // 1. No new webhooks. Responses still owed are dropped; Stripe retries
  //    them, and their events (if already appended) are deduplicated.
  if (http_ != nullptr) http_->Stop();
  // 2. Streams end with UNAVAILABLE so clients resume elsewhere or later.
  LOG_INFO("shutdown: webhooks stopped; ending ", registry_ != nullptr ? registry_->size() : 0,
           " subscription(s)");
  if (registry_ != nullptr) {
    registry_->ShutdownAll(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down; reconnect and resume"));
  }
  if (grpc_ != nullptr) {
    grpc_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)));
    grpc_->Wait();
    LOG_INFO("shutdown: gRPC drained");
  }
  // 3. Readers finish their tasks; then the log commits what is queued and
  //    closes. Append callbacks may still post to the (stopped) HTTP event
  //    loop, which stays allocated until after the log is gone.
  pumps_.reset();
  readers_.reset();
  log_.reset();
  http_.reset();
}

absl::Status Server::Impl::Reload() {
  // Filled in by the reloadable parts (secrets, certificates, tokens,
  // allow-list); each validates everything before swapping anything.
  return absl::OkStatus();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { impl_->Shutdown(absl::Seconds(1)); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Start(); !s.ok()) {
    impl->Shutdown(absl::ZeroDuration());
    return s;
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::string Server::http_address() const { return impl_->http_->address(); }
std::string Server::grpc_address() const { return impl_->grpc_address_; }
std::string Server::log_epoch() const { return impl_->log_->Info().epoch; }

void Server::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }

absl::Status Server::Reload() { return impl_->Reload(); }

}  // namespace sidestream
