// The only file that compiles Boost.Beast: it is slow to build, so the rest
// of the server sees HttpServer through a Beast-free header.
#include "server/ingress/http_server.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <type_traits>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include "server/common/logging.h"
#include "server/common/thread_name.h"
#include "server/security/tls_files.h"

namespace sidestream {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  const std::string host = endpoint.address().to_string();
  return endpoint.address().is_v6() ? absl::StrCat("[", host, "]:", endpoint.port())
                                    : absl::StrCat(host, ":", endpoint.port());
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// A server context for `options`' certificate and key: TLS 1.2 minimum, no
// compression, no renegotiation. The description of the certificate goes to
// `description`.
absl::StatusOr<std::shared_ptr<net::ssl::context>> MakeTlsContext(const HttpServerOptions& options,
                                                                  std::string* description) {
  absl::StatusOr<std::string> checked =
      CheckCertificateAndKey(options.tls_cert_file, options.tls_key_file, options.tls_flag_prefix);
  if (!checked.ok()) return checked.status();
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1 | net::ssl::context::no_compression);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  beast::error_code ec;
  ctx->use_certificate_chain_file(options.tls_cert_file, ec);
  if (!ec) ctx->use_private_key_file(options.tls_key_file, net::ssl::context::pem, ec);
  if (!ec && SSL_CTX_check_private_key(native) != 1) {
    return absl::InvalidArgumentError("the TLS key does not match the certificate");
  }
  if (ec) {
    // The files changed between the check and the load (a rotation in
    // progress); the next attempt sees the finished state.
    return absl::UnavailableError(absl::StrCat("cannot load ", options.tls_cert_file, " / ",
                                               options.tls_key_file, ": ", ec.message()));
  }
  *description = *std::move(checked);
  return ctx;
}

// One connection. `Stream` is beast::tcp_stream (plain HTTP) or TlsStream;
// the plain path compiles without any TLS code.
// Requests handed to the handler whose response is not written yet.
struct OwedResponses {
  absl::Mutex mu;
  int64_t count ABSL_GUARDED_BY(mu) = 0;
  void Add(int64_t delta) {
    absl::MutexLock lock(&mu);
    count += delta;
  }
};

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // Plain HTTP.
  Session(tcp::socket socket, const HttpServerOptions& options, HttpHandler* handler,
          OwedResponses* owed)
      : stream_(std::move(socket)), options_(options), handler_(handler), owed_(owed) {
    SetPeer();
  }
  // HTTPS: `ctx` stays alive as long as the connection.
  Session(tcp::socket socket, std::shared_ptr<net::ssl::context> ctx,
          const HttpServerOptions& options, HttpHandler* handler, OwedResponses* owed,
          std::atomic<uint64_t>* handshake_failures)
      : ctx_(std::move(ctx)),
        stream_(std::move(socket), *ctx_),
        options_(options),
        handler_(handler),
        owed_(owed),
        handshake_failures_(handshake_failures) {
    SetPeer();
  }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->AwaitRequest();
      }
    });
  }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void SetPeer() {
    beast::error_code ec;
    tcp::endpoint remote = lowest().socket().remote_endpoint(ec);
    peer_ = ec ? "unknown" : FormatEndpoint(remote);
  }

  void Handshake() {
    lowest().expires_after(ToChrono(options_.tls_handshake_timeout));
    stream_.async_handshake(
        net::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
          if (ec) {
            self->handshake_failures_->fetch_add(1, std::memory_order_relaxed);
            LOG_DEBUG("tls handshake failed: peer=", self->peer_, " ", ec.message());
            return self->Close();
          }
          self->AwaitRequest();
        });
  }

  // Waits for the first byte of the next request under the idle timeout;
  // bytes already buffered (pipelining) start the next request at once.
  void AwaitRequest() {
    if (buffer_.size() > 0) {
      ReadRequest();
      return;
    }
    lowest().expires_after(ToChrono(options_.idle_timeout));
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->ReadRequest();
                            });
  }

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(options_.max_header_bytes);
    parser_->body_limit(options_.max_body_bytes);
    lowest().expires_after(ToChrono(options_.request_timeout));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->OnRead(ec);
                              self->OnHeader();
                            });
  }

  // Clients such as curl send "Expect: 100-continue" with larger bodies and
  // wait (a second, for curl) for a go-ahead; give it, unless the declared
  // body is too large anyway (then the 413 is the answer).
  void OnHeader() {
    const auto& header = parser_->get();
    // Of the transfer codings only plain "chunked" is understood; refuse any
    // other (RFC 9112 6.1, 6.3) and close. Beast alone would read no body when
    // chunked is not last (and parse the body bytes as the next request), and
    // hand on still-encoded bytes for "gzip, chunked".
    if (auto te = header.find(http::field::transfer_encoding);
        te != header.end() && !(parser_->chunked() && beast::iequals(te->value(), "chunked"))) {
      return OnRead(http::error::bad_transfer_encoding);
    }
    const bool expects_continue =
        beast::iequals(header[http::field::expect], "100-continue") &&
        !(parser_->content_length() && *parser_->content_length() > options_.max_body_bytes);
    if (!expects_continue || parser_->is_done()) return ReadBody();
    continue_.emplace(http::status::continue_, header.version());
    http::async_write(stream_, *continue_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        self->continue_.reset();
                        if (ec) return self->Close();
                        self->ReadBody();
                      });
  }

  void ReadBody() {
    if (parser_->content_length() && *parser_->content_length() > options_.max_body_bytes) {
      return OnRead(http::error::body_limit);
    }
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof || ec == net::ssl::error::stream_truncated) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      return Send(
          handler_->Refuse(RejectReason::kBodyTooLarge,
                           absl::StrCat("body larger than ", options_.max_body_bytes, " bytes")),
          /*keep_alive=*/false);
    }
    if (ec == http::error::header_limit) {
      HttpServerResponse response = handler_->Refuse(
          RejectReason::kBadRequest,
          absl::StrCat("request headers larger than ", options_.max_header_bytes, " bytes"));
      response.status = 431;
      return Send(std::move(response), /*keep_alive=*/false);
    }
    if (ec) {
      return Send(handler_->Refuse(RejectReason::kBadRequest,
                                   absl::StrCat("malformed HTTP request: ", ec.message())),
                  /*keep_alive=*/false);
    }
    http::request<http::string_body> req = parser_->release();
    parser_.reset();
    HttpServerRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    if (auto it = req.find("Stripe-Signature"); it != req.end()) {
      request.stripe_signature = std::string(it->value());
    }
    if (auto it = req.find(http::field::content_type); it != req.end()) {
      request.content_type = std::string(it->value());
    }
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      request.authorization = std::string(it->value());
    }
    if (!options_.proxy_header.empty()) {
      auto [first, last] = req.equal_range(options_.proxy_header);
      for (auto it = first; it != last; ++it) {
        if (!request.proxy_header_value.has_value()) {
          request.proxy_header_value.emplace();
        } else {
          request.proxy_header_value->push_back(',');
        }
        request.proxy_header_value->append(it->value().data(), it->value().size());
      }
    }
    request.body = std::move(req.body());
    request.peer = peer_;
    const bool keep_alive = req.keep_alive();
    owed_->Add(1);
    handler_->Handle(std::move(request),
                     [self = shared_from_this(), keep_alive](HttpServerResponse response) {
                       // The handler may answer from any thread; writes happen
                       // on this connection's strand.
                       net::post(self->stream_.get_executor(),
                                 [self, keep_alive, response = std::move(response)]() mutable {
                                   self->Send(std::move(response), keep_alive,
                                              /*owed=*/true);
                                 });
                     });
  }

  // `owed`: the answer to a request handed to the handler (counted in
  // owed_ until written).
  void Send(HttpServerResponse response, bool keep_alive, bool owed = false) {
    response_.result(static_cast<http::status>(response.status));
    response_.version(11);
    response_.set(http::field::server, "sidestream");
    response_.set(http::field::content_type, "application/json");
    for (auto& [name, value] : response.headers) response_.set(name, value);
    response_.body() = std::move(response.body);
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    lowest().expires_after(ToChrono(options_.write_timeout));
    http::async_write(stream_, response_,
                      [self = shared_from_this(), keep_alive, owed](beast::error_code ec, size_t) {
                        self->response_ = {};
                        if (owed) self->owed_->Add(-1);
                        if (ec || !keep_alive) return self->Close();
                        self->AwaitRequest();
                      });
  }

  // Without a TLS close_notify: every response is length-delimited, so a
  // client cannot mistake a cut connection for a complete response.
  void Close() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest().close();
  }

  const std::shared_ptr<net::ssl::context> ctx_;  // before stream_, which uses it
  Stream stream_;
  const HttpServerOptions& options_;
  HttpHandler* const handler_;
  OwedResponses* const owed_;
  std::atomic<uint64_t>* const handshake_failures_ = nullptr;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  http::response<http::string_body> response_;
};

class BeastHttpServer final : public HttpServer {
 public:
  BeastHttpServer(const HttpServerOptions& options, HttpHandler* handler)
      : options_(options),
        handler_(handler),
        ioc_(options.threads),
        acceptor_(ioc_),
        reload_timer_(ioc_) {}

  ~BeastHttpServer() override { Stop(); }

  bool tls() const { return !options_.tls_cert_file.empty(); }

  absl::Status Listen() {
    if (tls()) {
      absl::StatusOr<std::string> loaded = ReloadTls();
      if (!loaded.ok()) return loaded.status();
      if (options_.tls_reload_interval > absl::ZeroDuration()) WatchTlsFiles();
    }
    beast::error_code ec;
    net::ip::address address = net::ip::make_address(options_.host, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("http listen host \"", options_.host, "\" is not an IP address"));
    }
    tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen for HTTP on ", FormatEndpoint(endpoint), ": ", ec.message()));
    }
    address_ = FormatEndpoint(acceptor_.local_endpoint());
    Accept();
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] {
        SetCurrentThreadName("ss-http");
        ioc_.run();
      });
    }
    return absl::OkStatus();
  }

  std::string address() const override { return address_; }

  absl::StatusOr<std::string> ReloadTls() override {
    if (!tls()) return std::string();
    absl::MutexLock lock(&tls_mu_);
    // Stamped before loading: a failed attempt is retried only when the
    // files change again, not on every poll.
    tls_stamp_ = FileStamp();
    std::string description;
    absl::StatusOr<std::shared_ptr<net::ssl::context>> ctx = MakeTlsContext(options_, &description);
    if (!ctx.ok()) return ctx.status();
    tls_ctx_ = *std::move(ctx);
    return description;
  }

  uint64_t tls_handshake_failures() const override {
    return handshake_failures_.load(std::memory_order_relaxed);
  }

  bool Drain(absl::Time deadline) override {
    absl::MutexLock lock(&owed_.mu);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(owed_.mu) { return owed_.count == 0; };
    return owed_.mu.AwaitWithDeadline(absl::Condition(&done), deadline);
  }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    // No event-loop thread runs now, so the acceptor can be closed here.
    beast::error_code ec;
    acceptor_.close(ec);
  }

 private:
  void Accept() {
    acceptor_.async_accept(
        net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
          if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
          if (!ec) {
            beast::error_code opt_ec;
            socket.set_option(tcp::no_delay(true), opt_ec);
            if (tls()) {
              std::shared_ptr<net::ssl::context> ctx;
              {
                absl::MutexLock lock(&tls_mu_);
                ctx = tls_ctx_;
              }
              std::make_shared<Session<TlsStream>>(std::move(socket), std::move(ctx), options_,
                                                   handler_, &owed_, &handshake_failures_)
                  ->Run();
            } else {
              std::make_shared<Session<beast::tcp_stream>>(std::move(socket), options_, handler_,
                                                           &owed_)
                  ->Run();
            }
          } else {
            LOG_WARNING("http accept failed: ", ec.message());
          }
          Accept();
        });
  }

  // Identity of the certificate and key files as last seen: modification
  // time, size and inode of each (a rename-into-place changes the inode).
  std::string FileStamp() const {
    std::string stamp;
    for (const std::string* path : {&options_.tls_cert_file, &options_.tls_key_file}) {
      struct stat st;
      if (stat(path->c_str(), &st) != 0) {
        absl::StrAppend(&stamp, "missing;");
        continue;
      }
      absl::StrAppend(&stamp, st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, "/", st.st_size, "/",
                      st.st_ino, ";");
    }
    return stamp;
  }

  // Polls the files every tls_reload_interval on the event loop and reloads
  // when they changed.
  void WatchTlsFiles() {
    reload_timer_.expires_after(ToChrono(options_.tls_reload_interval));
    reload_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;  // cancelled: stopping
      bool changed;
      {
        absl::MutexLock lock(&tls_mu_);
        changed = FileStamp() != tls_stamp_;
      }
      if (changed) {
        absl::StatusOr<std::string> loaded = ReloadTls();
        if (loaded.ok()) {
          LOG_INFO("https: certificate files changed, now serving ", *loaded);
        } else {
          LOG_ERROR(
              "https: certificate files changed but cannot be used, keeping the previous "
              "certificate: ",
              loaded.status().message());
        }
      }
      WatchTlsFiles();
    });
  }

  const HttpServerOptions options_;
  HttpHandler* const handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer reload_timer_;
  absl::Mutex tls_mu_;
  std::shared_ptr<net::ssl::context> tls_ctx_ ABSL_GUARDED_BY(tls_mu_);
  std::string tls_stamp_ ABSL_GUARDED_BY(tls_mu_);
  std::atomic<uint64_t> handshake_failures_{0};
  OwedResponses owed_;
  std::string address_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

HttpServer::~HttpServer() = default;

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler* handler) {
  auto server = std::make_unique<BeastHttpServer>(options, handler);
  if (absl::Status s = server->Listen(); !s.ok()) return s;
  return server;
}

}  // namespace sidestream
