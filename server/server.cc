#include "server/server.h"

#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "server/common/logging.h"
#include "server/common/thread_name.h"
#include "server/common/work_queue.h"
#include "server/hub/event_hub.h"
#include "server/ingress/http_server.h"
#include "server/ingress/ingress_stats.h"
#include "server/ingress/webhook_handler.h"
#include "server/log/deferred_event_log.h"
#include "server/log/jetstream_event_log.h"
#include "server/log/sqlite_event_log.h"
#include "server/ops/admin_http.h"
#include "server/ops/stats.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/events_service.h"
#include "server/rpc/subscription.h"
#include "server/security/server_security.h"

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
  // File-based security settings; replaced by Reload.
  absl::Mutex reload_mu_;
  SecurityFiles security_ ABSL_GUARDED_BY(reload_mu_);
  std::unique_ptr<Authorizer> authorizer_;
  IngressStats stats_;
  DeliveryCounters delivery_;
  std::unique_ptr<EventsService> events_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::string grpc_address_;
  std::unique_ptr<WebhookHandler> webhook_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<AdminHttpHandler> admin_handler_;
  std::unique_ptr<HttpServer> admin_http_;
  bool shut_down_ = false;
  std::atomic<bool> draining_{false};

  // Ready = not shutting down and the log can store events. (The listeners
  // are up: the admin listener, which answers /readyz, starts last.)
  Readiness GetReadiness() const;
  StatsSources Sources();
  void SetHealth(bool serving);

  // Readiness follows the log: while it cannot store, health reports
  // NOT_SERVING (webhooks get 503 meanwhile, so Stripe retries).
  void WatchReadiness();
  absl::Mutex watch_mu_;
  bool watch_stop_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watcher_;

  // JetStream unreachable at start: the server runs on a DeferredEventLog
  // (not ready, 503s) while this thread retries opening the real log.
  void OpenLogLater(JetStreamEventLogOptions log_options);
  DeferredEventLog* deferred_ = nullptr;
  std::thread opener_;
};

void Server::Impl::OpenLogLater(JetStreamEventLogOptions log_options) {
  constexpr absl::Duration kRetry = absl::Seconds(1);
  while (true) {
    {
      absl::MutexLock lock(&watch_mu_);
      // A retry interval, not synchronisation: wakes early only to stop.
      watch_mu_.AwaitWithTimeout(absl::Condition(&watch_stop_), kRetry);
      if (watch_stop_) return;
    }
    absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(log_options);
    if (!log.ok()) {
      deferred_->SetWaiting(std::string(log.status().message()));
      LOG_FIELDS(kDebug, "event log still cannot open; retrying",
                 {"error", log.status().message()});
      continue;
    }
    const LogInfo info = (*log)->Info();
    hub_->ResetHead(info.last_sequence);
    deferred_->Install(*std::move(log));
    LOG_FIELDS(kInfo, "event log open; ready once the readiness check sees it writable",
               {"backend", info.backend}, {"epoch", info.epoch},
               {"last_sequence", info.last_sequence});
    return;
  }
}

Readiness Server::Impl::GetReadiness() const {
  if (draining_.load()) return {false, "shutting down"};
  const LogInfo info = log_->Info();
  if (!info.writable) {
    return {false, absl::StrCat("the event log cannot store events: ", info.last_error)};
  }
  return {};
}

StatsSources Server::Impl::Sources() {
  StatsSources sources;
  sources.ingress = &stats_;
  sources.log = log_.get();
  sources.registry = registry_.get();
  sources.delivery = &delivery_;
  sources.start_time = start_time_;
  sources.readiness = [this] { return GetReadiness(); };
  return sources;
}

void Server::Impl::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = grpc_->GetHealthCheckService();
  for (const char* service : {"", "sidestream.v1.Events", "sidestream.v1.Admin"}) {
    health->SetServingStatus(service, serving);
  }
}

void Server::Impl::WatchReadiness() {
  bool serving = GetReadiness().ready;
  absl::MutexLock lock(&watch_mu_);
  while (!watch_stop_) {
    // A periodic check, not synchronisation: wakes early only to stop.
    watch_mu_.AwaitWithTimeout(absl::Condition(&watch_stop_), kTick);
    if (watch_stop_) break;
    const Readiness readiness = GetReadiness();
    if (readiness.ready == serving) continue;
    serving = readiness.ready;
    if (serving) {
      LOG_INFO("ready again: the event log is writable");
    } else {
      LOG_FIELDS(kError, "not ready; webhooks get 503 until the log can store again",
                 {"reason", readiness.reason});
    }
    SetHealth(serving);
  }
}

absl::Status Server::Impl::Start() {
  if (absl::Status s = ValidateServerOptions(options_); !s.ok()) return s;
  for (const std::string& warning : SecurityWarnings(options_)) LOG_WARNING("security: ", warning);
  absl::StatusOr<SecurityFiles> security = LoadSecurityFiles(options_, options_.secrets);
  if (!security.ok()) return security.status();
  {
    absl::MutexLock lock(&reload_mu_);
    security_ = *security;
  }
  authorizer_ = std::make_unique<Authorizer>(security->tokens);
  if (security->tokens != nullptr) {
    LOG_INFO("grpc access tokens: ", security->tokens->tokens().size(), " loaded from ",
             options_.grpc_tokens_file);
  }
  absl::StatusOr<SignatureVerifier> verifier =
      SignatureVerifier::Create(options_.secrets, options_.signature_tolerance);
  if (!verifier.ok()) return verifier.status();
  verifier_ = std::make_unique<SignatureVerifier>(*std::move(verifier));

  std::optional<JetStreamEventLogOptions> deferred_log_options;
  if (options_.log_backend == "jetstream") {
    JetStreamEventLogOptions log_options;
    log_options.servers = options_.nats_urls;
    log_options.stream = options_.nats_stream;
    log_options.subject_prefix = options_.nats_subject_prefix;
    log_options.replicas = options_.nats_replicas;
    log_options.retention = options_.retention;
    log_options.allow_short_retention = options_.allow_short_retention;
    log_options.max_bytes = options_.log_max_bytes;
    log_options.timeout = options_.nats_timeout;
    log_options.creds_file = options_.nats_creds_file;
    log_options.tls_ca_file = options_.nats_tls_ca_file;
    log_options.tls_cert_file = options_.nats_tls_client.cert_file;
    log_options.tls_key_file = options_.nats_tls_client.key_file;
    absl::StatusOr<std::unique_ptr<JetStreamEventLog>> log = JetStreamEventLog::Open(log_options);
    if (log.ok()) {
      log_ = *std::move(log);
    } else if (absl::IsUnavailable(log.status())) {
      // NATS unreachable: start anyway, not ready (webhooks get 503 and
      // Stripe retries), and open the log when NATS answers.
      LOG_FIELDS(kError, "event log cannot open; serving not ready until it can",
                 {"error", log.status().message()});
      auto deferred =
          std::make_unique<DeferredEventLog>("jetstream", std::string(log.status().message()));
      deferred_ = deferred.get();
      log_ = std::move(deferred);
      deferred_log_options = log_options;
    } else {
      return log.status();  // a configuration problem: retrying will not help
    }
  } else {
    SqliteEventLogOptions log_options;
    log_options.data_dir = options_.data_dir;
    log_options.retention = options_.retention;
    log_options.allow_short_retention = options_.allow_short_retention;
    log_options.max_bytes = options_.log_max_bytes;
    absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = SqliteEventLog::Open(log_options);
    if (!log.ok()) return log.status();
    log_ = *std::move(log);
  }

  const LogInfo info = log_->Info();
  hub_ = std::make_unique<EventHub>(
      EventHubOptions{options_.hub_max_events, options_.hub_max_bytes}, info.last_sequence);
  log_->SetListener(hub_.get());
  readers_ = std::make_unique<WorkQueue>(options_.reader_threads, "ss-reader");
  pumps_ = std::make_unique<WorkQueue>(1, "ss-pump");
  registry_ = std::make_unique<SubscriptionRegistry>(Clock::Real(), kTick);

  SubscriptionEnv env;
  env.log = log_.get();
  env.hub = hub_.get();
  env.readers = readers_.get();
  env.pumps = pumps_.get();
  env.counters = &delivery_;
  env.checkpoint_interval = std::max(options_.checkpoint_interval - kTick, kTick);
  events_service_ = std::make_unique<EventsService>(env, registry_.get(), authorizer_.get());
  admin_service_ = std::make_unique<AdminService>(Sources(), authorizer_.get());

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
                           GrpcServerCredentials(options_), &grpc_port);
  builder.RegisterService(events_service_.get());
  builder.RegisterService(admin_service_.get());
  grpc_ = builder.BuildAndStart();
  if (grpc_ == nullptr || grpc_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", grpc_host, ":",
                                               options_.grpc.port,
                                               " (address in use or not available)"));
  }
  grpc_address_ = absl::StrCat(grpc_host, ":", grpc_port);
  SetHealth(GetReadiness().ready);
  watcher_ = std::thread([this] {
    SetCurrentThreadName("ss-readiness");
    WatchReadiness();
  });
  if (deferred_log_options.has_value()) {
    opener_ = std::thread([this, o = *deferred_log_options] {
      SetCurrentThreadName("ss-log-open");
      OpenLogLater(o);
    });
  }

  webhook_ = std::make_unique<WebhookHandler>(WebhookHandlerOptions{options_.webhook_path},
                                              verifier_.get(), log_.get(), &stats_, Clock::Real());
  webhook_->SetVerifier(security->verifier);
  webhook_->SetSourcePolicy(security->source_policy);
  HttpServerOptions http_options;
  http_options.host = options_.http.host;
  http_options.port = options_.http.port;
  http_options.threads = options_.http_threads;
  http_options.max_body_bytes = options_.max_body_bytes;
  http_options.idle_timeout = options_.http_idle_timeout;
  http_options.request_timeout = options_.http_request_timeout;
  http_options.tls_cert_file = options_.http_tls.cert_file;
  http_options.tls_key_file = options_.http_tls.key_file;
  http_options.tls_reload_interval = options_.tls_reload_interval;
  http_options.proxy_header = options_.trusted_proxy_header;
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Start(http_options, webhook_.get());
  if (!http.ok()) return http.status();
  http_ = *std::move(http);

  // Last, so that /readyz answers only once every listener is up.
  admin_handler_ = std::make_unique<AdminHttpHandler>(
      Sources(), [authorizer = authorizer_.get()](const std::optional<std::string>& header) {
        std::optional<absl::string_view> value;
        if (header.has_value()) value = *header;
        return authorizer->Authenticate(value).ok();
      });
  HttpServerOptions admin_options;
  admin_options.host = options_.admin.host;
  admin_options.port = options_.admin.port;
  admin_options.tls_cert_file = options_.admin_tls.cert_file;
  admin_options.tls_key_file = options_.admin_tls.key_file;
  admin_options.tls_flag_prefix = "admin_tls";
  admin_options.tls_reload_interval = options_.tls_reload_interval;
  admin_options.max_body_bytes = 4096;
  absl::StatusOr<std::unique_ptr<HttpServer>> admin =
      HttpServer::Start(admin_options, admin_handler_.get());
  if (!admin.ok()) {
    return absl::Status(admin.status().code(), absl::StrCat("admin listener (--admin_listen): ",
                                                            admin.status().message()));
  }
  admin_http_ = *std::move(admin);
  return absl::OkStatus();
}

void Server::Impl::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  const absl::Time deadline = absl::Now() + grace;
  // 1. Not ready: probes and health checks send traffic elsewhere; new
  //    webhooks get 503 (Stripe retries them), and those already verified
  //    are stored and answered.
  draining_.store(true);
  if (grpc_ != nullptr) SetHealth(false);
  if (webhook_ != nullptr) {
    webhook_->StartDraining();
    if (webhook_->AwaitIdle(deadline) && (http_ == nullptr || http_->Drain(deadline))) {
      LOG_INFO("shutdown: every accepted webhook is stored and answered");
    } else {
      LOG_WARNING(
          "shutdown: grace period over with webhooks still waiting for the log; "
          "Stripe retries them");
    }
  }
  if (watcher_.joinable()) {
    {
      absl::MutexLock lock(&watch_mu_);
      watch_stop_ = true;
    }
    watcher_.join();
    if (opener_.joinable()) opener_.join();
  }
  if (grpc_ != nullptr) grpc_->GetHealthCheckService()->Shutdown();
  // 2. The webhook listener stops. A response still owed after the grace
  //    period is dropped; Stripe retries it, and the event (if stored) is
  //    deduplicated.
  if (http_ != nullptr) http_->Stop();
  // 3. Streams end with UNAVAILABLE so clients resume elsewhere or later.
  LOG_INFO("shutdown: webhooks stopped; ending ", registry_ != nullptr ? registry_->size() : 0,
           " subscription(s)");
  if (registry_ != nullptr) {
    registry_->ShutdownAll(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down; reconnect and resume"));
  }
  if (grpc_ != nullptr) {
    grpc_->Shutdown(absl::ToChronoTime(std::max(deadline, absl::Now())));
    grpc_->Wait();
    LOG_INFO("shutdown: gRPC drained");
  }
  // 4. Readers finish their tasks; then the log commits what is queued and
  //    closes. Append callbacks may still post to the (stopped) HTTP event
  //    loop, which stays allocated until after the log is gone.
  pumps_.reset();
  readers_.reset();
  log_.reset();
  http_.reset();
  // The admin listener goes last: probes see "not ready" until the end.
  if (admin_http_ != nullptr) admin_http_->Stop();
  admin_http_.reset();
}

absl::Status Server::Impl::Reload() {
  // Everything is loaded and validated first; only then is anything
  // swapped. Secrets from the environment cannot change: they are kept.
  absl::MutexLock lock(&reload_mu_);
  std::vector<WebhookSecret> secrets = options_.secrets;
  if (!options_.webhook_secrets_file.empty()) {
    std::vector<std::string> warnings;
    absl::StatusOr<std::vector<WebhookSecret>> fresh =
        LoadWebhookSecrets(options_.webhook_secrets_file, std::nullopt, &warnings);
    if (!fresh.ok()) return fresh.status();
    for (const std::string& w : warnings) LOG_WARNING("webhook secrets: ", w);
    secrets = *std::move(fresh);
  }
  absl::StatusOr<SecurityFiles> loaded = LoadSecurityFiles(options_, secrets);
  if (!loaded.ok()) return loaded.status();
  // The HTTPS listeners re-read their files themselves; they too keep the
  // previous certificate on an error (reported, not fatal: the other
  // settings are valid and already loaded).
  absl::Status tls_status;
  for (const auto& [name, listener] :
       {std::pair<const char*, HttpServer*>{"webhook https", http_.get()},
        {"admin https", admin_http_.get()}}) {
    if (listener == nullptr) continue;
    absl::StatusOr<std::string> cert = listener->ReloadTls();
    if (!cert.ok()) {
      tls_status.Update(
          absl::Status(cert.status().code(), absl::StrCat(name, ": ", cert.status().message())));
    } else if (!cert->empty()) {
      LOG_INFO("reload: ", name, " certificate: ", *cert);
    }
  }
  webhook_->SetVerifier(loaded->verifier);
  webhook_->SetSourcePolicy(loaded->source_policy);
  authorizer_->SetTokens(loaded->tokens);
  for (const std::string& change : DescribeChanges(security_, *loaded)) {
    LOG_INFO("reload: ", change);
  }
  security_ = *std::move(loaded);
  return tls_status;
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
std::string Server::admin_address() const { return impl_->admin_http_->address(); }
std::string Server::log_epoch() const { return impl_->log_->Info().epoch; }

void Server::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }

absl::Status Server::Reload() { return impl_->Reload(); }

}  // namespace sidestream
