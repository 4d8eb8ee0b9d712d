// Fuzzes the HTTP request path: raw bytes as they would arrive on a
// connection, parsed by Boost.Beast's request parser with the server's limits,
// answered by the real WebhookHandler (verify, decode, append) over an
// in-memory EventLog and a FakeClock. Like the server (ingress/http_server.cc,
// not linked here: it is the network loop), header then body, refusing
// transfer codings other than plain chunked, and a connection carries
// pipelined requests until one is not keep-alive or is refused.
//
// To get past the HMAC, a request whose Stripe-Signature is exactly
// "fuzz-sign" is given a correct signature of its body at the fake clock's
// time (seeds in fuzz/corpus/http_request/ use it; a few carry literal
// signatures of the same time instead).
//
// Properties checked for every request (a violation aborts):
// - it is answered exactly once, with a status the server documents
//   (200 400 404 405 413 415 431 503) and a JSON object body:
//   200 {"received":true,"id":...,"sequence":N,"duplicate":...} matching what
//   the log stored, or {"error":"<reason>","message":...} whose reason has
//   that status; 405 carries Allow: POST and 503 Retry-After;
// - only well-formed events reach the log, with the body exactly as sent.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "server/common/clock.h"
#include "server/common/logging.h"
#include "server/common/rejection.h"
#include "server/common/stripe_ids.h"
#include "server/ingress/http_server.h"
#include "server/ingress/ingress_stats.h"
#include "server/ingress/webhook_handler.h"
#include "server/log/event_log.h"
#include "server/verify/stripe_signature.h"
#include "sidestream/v1/event.pb.h"

namespace sidestream {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

// The server's header limit (HttpServerOptions::max_header_bytes); a body
// limit below the server's 1 MiB default keeps inputs small.
constexpr uint32_t kMaxHeaderBytes = 16 << 10;
constexpr uint64_t kMaxBodyBytes = 64 << 10;
// Requests handled per input, at most.
constexpr int kMaxRequestsPerConnection = 16;
// The fake log stores this many events, then fails like a full disk (503).
constexpr size_t kLogCapacity = 4;
// 2023-06-01T00:00:00Z: the fake clock's time, and the `t` of the literal
// signatures in the seeds.
constexpr int64_t kNowUnix = 1685577600;
constexpr absl::string_view kSecret = "whsec_fuzz_secret";
constexpr absl::string_view kSignPlaceholder = "fuzz-sign";

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

// Dedups by id and assigns sequences like a real log, completing every
// append at once; fails with UNAVAILABLE once kLogCapacity events are stored.
// Single-threaded use only (the fuzzer calls it from one thread).
class InMemoryEventLog final : public EventLog {
 public:
  void Append(NewEvent event, AppendCallback done) override {
    Check(IsStripeId(event.id) && IsEventType(event.type) &&
              (event.account.empty() || IsAccountId(event.account)),
          "only well-formed events reach the log");
    v1::Event decoded;
    Check(decoded.ParseFromString(event.event_bytes) && decoded.id() == event.id &&
              decoded.type() == event.type && decoded.account() == event.account,
          "the appended event's bytes describe the appended event");
    if (auto it = sequences_.find(event.id); it != sequences_.end()) {
      std::move(done)(AppendResult{it->second, /*duplicate=*/true});
      return;
    }
    if (records_.size() >= kLogCapacity) {
      std::move(done)(absl::UnavailableError("fake log is full"));
      return;
    }
    const uint64_t sequence = records_.size() + 1;
    sequences_[event.id] = sequence;
    records_.push_back(std::move(event));
    std::move(done)(AppendResult{sequence, /*duplicate=*/false});
  }

  absl::StatusOr<std::vector<EventRecordPtr>> ReadAfter(uint64_t, const ReadOptions&) override {
    return absl::UnimplementedError("not used by the webhook handler");
  }
  absl::StatusOr<EventRecordPtr> Get(absl::string_view, bool) override {
    return absl::UnimplementedError("not used by the webhook handler");
  }
  absl::StatusOr<uint64_t> CursorForTime(absl::Time) override {
    return absl::UnimplementedError("not used by the webhook handler");
  }
  LogInfo Info() const override {
    LogInfo info;
    info.last_sequence = records_.size();
    info.event_count = records_.size();
    info.backend = "memory";
    return info;
  }
  void SetListener(AppendListener*) override {}

  // The stored event with this sequence, or null.
  const NewEvent* Stored(uint64_t sequence) const {
    if (sequence == 0 || sequence > records_.size()) return nullptr;
    return &records_[sequence - 1];
  }

 private:
  std::map<std::string, uint64_t> sequences_;
  std::vector<NewEvent> records_;
};

const SignatureVerifier& Verifier() {
  static const SignatureVerifier* verifier = [] {
    absl::StatusOr<SignatureVerifier> created = SignatureVerifier::Create(
        {WebhookSecret{"fuzz", std::string(kSecret)}}, absl::Seconds(300));
    Check(created.ok(), "the fuzzer's verifier is created");
    // Refusals log a warning each: keep the fuzzer's output readable.
    SetMinLogLevel(LogLevel::kError);
    return new SignatureVerifier(*std::move(created));
  }();
  return *verifier;
}

bool HasHeader(const HttpServerResponse& response, absl::string_view name,
               absl::string_view value) {
  for (const auto& [n, v] : response.headers) {
    if (n == name && v == value) return true;
  }
  return false;
}

// The request as the server hands it to the handler.
HttpServerRequest ToHandlerRequest(http::request<http::string_body>& req) {
  HttpServerRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  if (auto it = req.find("Stripe-Signature"); it != req.end()) {
    request.stripe_signature = std::string(it->value());
  }
  if (auto it = req.find(http::field::content_type); it != req.end()) {
    request.content_type = std::string(it->value());
  }
  request.body = std::move(req.body());
  request.peer = "127.0.0.1:1";
  return request;
}

void CheckResponse(const HttpServerResponse& response, const std::string& body_sent,
                   const InMemoryEventLog& log) {
  static simdjson::dom::parser* parser = new simdjson::dom::parser();
  simdjson::dom::object json;
  Check(parser->parse(response.body).get(json) == simdjson::SUCCESS,
        "the response body is a JSON object");
  switch (response.status) {
    case 200: {
      bool received = false, duplicate = false;
      std::string_view id;
      uint64_t sequence = 0;
      Check(json["received"].get(received) == simdjson::SUCCESS && received &&
                json["id"].get(id) == simdjson::SUCCESS &&
                json["sequence"].get(sequence) == simdjson::SUCCESS &&
                json["duplicate"].get(duplicate) == simdjson::SUCCESS,
            "a 200 body has received, id, sequence and duplicate");
      const NewEvent* stored = log.Stored(sequence);
      Check(stored != nullptr && stored->id == id, "a 200 names the stored event and sequence");
      if (!duplicate) {
        Check(stored->raw_json == body_sent, "the log keeps the body exactly as sent");
      }
      return;
    }
    case 400:
    case 404:
    case 405:
    case 413:
    case 415:
    case 431:
    case 503:
      break;
    default:
      Check(false, "the status is one the server documents");
  }
  std::string_view error, message;
  Check(json["error"].get(error) == simdjson::SUCCESS &&
            json["message"].get(message) == simdjson::SUCCESS,
        "an error body has error and message");
  bool known = false;
  for (RejectReason reason : kAllRejectReasons) {
    if (RejectReasonName(reason) == absl::string_view(error.data(), error.size())) {
      known = true;
      const int status = RejectReasonHttpStatus(reason);
      Check(status == response.status || (response.status == 431 && status == 400),
            "the error reason has the response's status");
    }
  }
  Check(known, "the error is a documented reason");
  if (response.status == 405) Check(HasHeader(response, "Allow", "POST"), "405 has Allow: POST");
  if (response.status == 503) Check(HasHeader(response, "Retry-After", "5"), "503 has Retry-After");
}

void CheckConnection(absl::string_view input) {
  const SignatureVerifier& verifier = Verifier();
  FakeClock clock(absl::FromUnixSeconds(kNowUnix));
  InMemoryEventLog log;
  IngressStats stats;
  WebhookHandler handler(WebhookHandlerOptions{}, &verifier, &log, &stats, &clock);

  for (int i = 0; i < kMaxRequestsPerConnection && !input.empty(); ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(kMaxBodyBytes);
    beast::error_code ec;
    size_t consumed = 0;
    // Feeds the rest of the input until `done` or an error; need_more means
    // the input ran out.
    auto feed = [&](auto done) {
      while (!done()) {
        const size_t used =
            parser.put(boost::asio::buffer(input.data() + consumed, input.size() - consumed), ec);
        consumed += used;
        if (ec == http::error::need_more) {
          if (used == 0 || consumed == input.size()) return;
          ec = {};
          continue;
        }
        if (ec || used == 0) return;
      }
    };
    // Header first, then the server's transfer-coding check, then the body.
    feed([&] { return parser.is_header_done(); });
    if (!ec) {
      const auto& header = parser.get();
      if (auto te = header.find(http::field::transfer_encoding);
          te != header.end() && !(parser.chunked() && beast::iequals(te->value(), "chunked"))) {
        ec = http::error::bad_transfer_encoding;
      }
    }
    if (!ec) {
      parser.eager(true);
      feed([&] { return parser.is_done(); });
    }
    if (ec == http::error::need_more) {
      // The connection ends inside a request: the server answers 400
      // (partial message) and closes; a request that stops arriving times
      // out instead, without an answer.
      ec = {};
      parser.put_eof(ec);
      Check(ec || parser.is_done(), "put_eof completes or fails the request");
    }
    input.remove_prefix(consumed);

    std::optional<HttpServerResponse> response;
    std::string body_sent;
    if (ec == http::error::body_limit) {
      response = handler.Refuse(RejectReason::kBodyTooLarge, "body too large");
    } else if (ec == http::error::header_limit) {
      response = handler.Refuse(RejectReason::kBadRequest, "headers too large");
      response->status = 431;
    } else if (ec) {
      response = handler.Refuse(RejectReason::kBadRequest, ec.message());
    }
    if (response.has_value()) {
      Check(response->status == 413 || response->status == 431 || response->status == 400,
            "a refused request gets 400, 413 or 431");
      CheckResponse(*response, body_sent, log);
      return;  // the server closes the connection after refusing a request
    }

    http::request<http::string_body> req = parser.release();
    const bool keep_alive = req.keep_alive();
    HttpServerRequest request = ToHandlerRequest(req);
    if (request.stripe_signature == std::string(kSignPlaceholder)) {
      request.stripe_signature =
          MakeStripeSignatureHeader({std::string(kSecret)}, kNowUnix, request.body);
    }
    body_sent = request.body;
    int answers = 0;
    handler.Handle(std::move(request), [&](HttpServerResponse r) {
      ++answers;
      response = std::move(r);
    });
    // The in-memory log completes appends at once, so the answer is here.
    Check(answers == 1, "every request is answered exactly once");
    CheckResponse(*response, body_sent, log);
    if (!keep_alive) return;
  }
}

}  // namespace
}  // namespace sidestream

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sidestream::CheckConnection(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
