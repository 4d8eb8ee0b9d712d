// HttpServer: the event-driven HTTP/1.1 server in front of the webhook
// handler (Boost.Beast on Asio: a few event-loop threads, no thread per
// connection). This header is Beast-free; Beast is compiled in
// http_server.cc only.
//
// Per connection: keep-alive, one request at a time (pipelined requests are
// answered in order), limits on header and body size, an idle timeout while
// waiting for a request, a request timeout for receiving it once it started
// (a client trickling headers is cut off), a write timeout.
//
// TLS (optional): TLS 1.2 and 1.3 only, a handshake timeout, certificate and
// key re-read on ReloadTls() and, when `tls_reload_interval` is set, when the
// files change. A new certificate applies to new connections; open ones keep
// the one they started with. A failed handshake closes that connection
// (logged at debug level and counted), nothing else.
#ifndef SIDESTREAM_SERVER_INGRESS_HTTP_SERVER_H_
#define SIDESTREAM_SERVER_INGRESS_HTTP_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

#include "server/common/rejection.h"

namespace sidestream {

// A complete request, as the handler sees it.
struct HttpServerRequest {
  std::string method;  // "POST"
  std::string target;  // "/webhook?x=1"
  std::optional<std::string> stripe_signature;
  std::optional<std::string> content_type;
  std::optional<std::string> authorization;
  // The header named by HttpServerOptions::proxy_header, every occurrence
  // joined by ","; unset when absent or when no header is configured.
  std::optional<std::string> proxy_header_value;
  std::string body;
  std::string peer;  // "127.0.0.1:53211"
};

struct HttpServerResponse {
  int status = 200;
  std::string body;  // JSON
  std::vector<std::pair<std::string, std::string>> headers;
};

// Completes a request; may be called from any thread, exactly once.
using HttpRespond = absl::AnyInvocable<void(HttpServerResponse) &&>;

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Handles a complete request. Must not block: answer later through
  // `respond` when the work is asynchronous.
  virtual void Handle(HttpServerRequest request, HttpRespond respond) = 0;
  // The answer for a request the server refuses itself (body too large,
  // malformed HTTP). Also counts it.
  virtual HttpServerResponse Refuse(RejectReason reason, absl::string_view detail) = 0;
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 picks a free port
  // Event-loop threads. One thread does ~80k small requests/s.
  int threads = 1;
  // Larger bodies get 413 without being read. Default 1 MiB (Stripe events
  // are a few KB; the largest are well under 1 MiB).
  uint64_t max_body_bytes = 1 << 20;
  // Larger request headers get 431.
  uint32_t max_header_bytes = 16 << 10;
  // How long a keep-alive connection may wait for its next request.
  absl::Duration idle_timeout = absl::Seconds(60);
  // How long a request may take to arrive once its first byte came.
  absl::Duration request_timeout = absl::Seconds(10);
  // How long writing a response may take.
  absl::Duration write_timeout = absl::Seconds(10);
  // A request header to hand to the handler as `proxy_header_value`
  // (such as "X-Forwarded-For"); empty: none.
  std::string proxy_header;
  // HTTPS when both are set: PEM certificate chain and private key.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Names the flags in errors: "--<prefix>_cert_file".
  std::string tls_flag_prefix = "http_tls";
  // How long a TLS handshake may take.
  absl::Duration tls_handshake_timeout = absl::Seconds(10);
  // How often the certificate and key files are checked for changes (by
  // modification time and size); zero: only on ReloadTls().
  absl::Duration tls_reload_interval = absl::ZeroDuration();
};

class HttpServer {
 public:
  // Binds and starts serving. UNAVAILABLE (with the OS reason) when the
  // address cannot be bound; INVALID_ARGUMENT for an unusable host.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler* handler);
  // Stops (if not stopped) and frees everything.
  virtual ~HttpServer();

  // The bound address as "host:port" ("[::1]:8080" for IPv6).
  virtual std::string address() const = 0;
  // Stops accepting, closes connections, joins the threads. Responses that
  // arrive later are dropped. Idempotent.
  virtual void Stop() = 0;
  // Waits until every request handed to the handler has had its response
  // written (or its connection failed), or until `deadline`. True when none
  // is left. For graceful shutdown: call after the handler stopped taking
  // new work, before Stop.
  virtual bool Drain(absl::Time deadline) = 0;

  // Re-reads the certificate and key files (when TLS is on; OK otherwise).
  // On an error the previous certificate stays in use. Returns a
  // description of the certificate now in use, or "" without TLS.
  virtual absl::StatusOr<std::string> ReloadTls() = 0;
  // TLS handshakes that failed (wrong protocol version, no shared cipher,
  // a client that does not trust the certificate, plain HTTP, a timeout).
  virtual uint64_t tls_handshake_failures() const = 0;

 protected:
  HttpServer() = default;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_INGRESS_HTTP_SERVER_H_
