// The "bare Beast" baseline: the least an HTTP/1.1 webhook receiver built on
// the project's own HTTP stack (Boost.Beast on Asio, one io_context thread)
// can do per request: read the whole request, answer 200 with a body the
// size of Sidestream's acknowledgement, keep the connection alive. With
// --hmac_secret it also checks the Stripe-Signature v1 HMAC with OpenSSL
// (a keyed EVP_MAC context reused for every request, constant-time compare),
// the verify step's floor.
//
// Prints "ready http=HOST:PORT" when listening; runs until killed.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "bench/bench_process.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "HOST:PORT to listen on (loopback).");
ABSL_FLAG(std::string, hmac_secret, "",
          "When set, verify each request's Stripe-Signature v1 with this secret (a benchmark "
          "secret, never a real one).");

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// As long as Sidestream's {"received":true,"id":...,"sequence":N,...}.
constexpr absl::string_view kAck =
    R"({"received":true,"id":"evt_1LoadGen000000000000","sequence":1234,"duplicate":false})";
constexpr absl::string_view kMismatch = R"({"error":"signature_mismatch"})";

// HMAC-SHA256 with a context keyed once. Single-threaded (one io_context
// thread), so one context serves every request.
class HmacChecker {
 public:
  explicit HmacChecker(const std::string& secret) {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                 params);
  }
  ~HmacChecker() { EVP_MAC_CTX_free(ctx_); }

  // True when any v1 in `header` is the HMAC of "t.body".
  bool Check(absl::string_view header, absl::string_view body) {
    absl::string_view t;
    std::vector<absl::string_view> v1s;
    for (absl::string_view element : absl::StrSplit(header, ',')) {
      if (absl::ConsumePrefix(&element, "t=")) t = element;
      if (absl::ConsumePrefix(&element, "v1=")) v1s.push_back(element);
    }
    if (t.empty() || v1s.empty()) return false;
    // Re-initialising with no key keeps the key already set.
    EVP_MAC_init(ctx_, nullptr, 0, nullptr);
    EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(t.data()), t.size());
    EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>("."), 1);
    EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(body.data()), body.size());
    unsigned char mac[32];
    size_t length = 0;
    EVP_MAC_final(ctx_, mac, &length, sizeof(mac));
    static constexpr char kHex[] = "0123456789abcdef";
    char hex[64];
    for (size_t i = 0; i < 32; ++i) {
      hex[2 * i] = kHex[mac[i] >> 4];
      hex[2 * i + 1] = kHex[mac[i] & 15];
    }
    for (absl::string_view v1 : v1s) {
      if (v1.size() == 64 && CRYPTO_memcmp(v1.data(), hex, 64) == 0) return true;
    }
    return false;
  }

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HmacChecker* checker)
      : socket_(std::move(socket)), checker_(checker) {}

  void Read() {
    request_ = {};
    http::async_read(socket_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Respond();
                     });
  }

 private:
  void Respond() {
    const auto header = request_["Stripe-Signature"];
    const bool ok =
        checker_ == nullptr ||
        checker_->Check(absl::string_view(header.data(), header.size()), request_.body());
    response_ = {};
    response_.version(11);
    response_.result(ok ? http::status::ok : http::status::bad_request);
    response_.set(http::field::content_type, "application/json");
    response_.keep_alive(request_.keep_alive());
    response_.body() = std::string(ok ? kAck : kMismatch);
    response_.prepare_payload();
    http::async_write(socket_, response_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (!ec && self->response_.keep_alive()) self->Read();
                      });
  }

  tcp::socket socket_;
  HmacChecker* checker_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

void Accept(tcp::acceptor* acceptor, HmacChecker* checker) {
  acceptor->async_accept([acceptor, checker](beast::error_code ec, tcp::socket socket) {
    if (!ec) {
      socket.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(socket), checker)->Read();
    }
    Accept(acceptor, checker);
  });
}

}  // namespace

int main(int argc, char** argv) {
  sidestream::bench::InitBenchProcess(
      argc, argv,
      "The bare Boost.Beast baseline: answers 200 to every request (with --hmac_secret,\n"
      "after checking its Stripe-Signature HMAC). Prints \"ready http=HOST:PORT\".\n"
      "Usage: sidestream-bench-beast [--listen=127.0.0.1:0] [--hmac_secret=SECRET]");
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port)) {
    std::cerr << "beast_responder: --listen must be HOST:PORT\n";
    return 2;
  }
  std::unique_ptr<HmacChecker> checker;
  if (!absl::GetFlag(FLAGS_hmac_secret).empty()) {
    checker = std::make_unique<HmacChecker>(absl::GetFlag(FLAGS_hmac_secret));
  }
  asio::io_context io(1);
  beast::error_code ec;
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(asio::ip::make_address(listen.substr(0, colon), ec),
                               static_cast<uint16_t>(port));
  if (ec) {
    std::cerr << "beast_responder: bad address " << listen << "\n";
    return 2;
  }
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "beast_responder: cannot listen on " << listen << ": " << ec.message() << "\n";
    return 1;
  }
  Accept(&acceptor, checker.get());
  const tcp::endpoint bound = acceptor.local_endpoint();
  std::cout << "ready http=" << bound.address().to_string() << ":" << bound.port() << std::endl;
  io.run();
  return 0;
}
