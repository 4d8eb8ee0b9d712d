// Hostile input through the real HTTP port, over raw sockets: malformed,
// ambiguous, oversized and forged requests. Each row names the status and
// error reason it must get; afterwards nothing may have entered the log and
// the server must still be alive and answering.
#include <iostream>
#include <memory>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "server/verify/stripe_signature.h"
#include "tests/load/load_util.h"
#include "tests/load/raw_http.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

using ::testing::HasSubstr;
using std::string_literals::operator""s;  // "...\0..."s keeps NUL bytes

// A small body limit, so that bodies around it are cheap, yet large enough
// for 100,000 levels of nesting to reach the JSON parser.
constexpr size_t kLimit = 256 << 10;
constexpr size_t kHeaderLimit = 16 << 10;  // the server's fixed header limit

int64_t Now() { return absl::ToUnixSeconds(absl::Now()); }

std::string Sign(absl::string_view body, int64_t t = Now()) {
  return MakeStripeSignatureHeader({kTestSecret}, t, body);
}

// A minimal valid snapshot event whose data.object is `object_json`.
std::string MinimalEvent(absl::string_view id, absl::string_view object_json,
                         absl::string_view created = "1700000000") {
  return absl::StrCat(
      R"({"id":")", id, R"(","object":"event","type":"payout.failed","livemode":false,"created":)",
      created, R"(,"api_version":"2024-06-20","pending_webhooks":1,)",
      R"("request":{"id":null,"idempotency_key":null},"data":{"object":)", object_json, "}}");
}

// `body` padded with spaces (valid JSON whitespace) before its final brace
// to exactly `size` bytes.
std::string PadTo(std::string body, size_t size) {
  if (body.size() < size) body.insert(body.size() - 1, size - body.size(), ' ');
  return body;
}

std::string Chunked(absl::string_view body, size_t chunk, absl::string_view trailer = "") {
  std::string out;
  for (size_t at = 0; at < body.size(); at += chunk) {
    const absl::string_view piece = body.substr(at, chunk);
    absl::StrAppend(&out, absl::StrFormat("%x", piece.size()), "\r\n", piece, "\r\n");
  }
  absl::StrAppend(&out, "0\r\n", trailer, "\r\n");
  return out;
}

// "POST /webhook HTTP/1.1" with `headers` (raw lines, CRLF added), a
// Content-Length unless `headers` already frame the body, then `body`.
std::string Post(const std::vector<std::string>& headers, absl::string_view body,
                 bool add_length = true, absl::string_view start_line = "POST /webhook HTTP/1.1") {
  std::string out = absl::StrCat(start_line, "\r\nHost: 127.0.0.1\r\n");
  for (const std::string& h : headers) absl::StrAppend(&out, h, "\r\n");
  if (add_length) absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n");
  absl::StrAppend(&out, "\r\n", body);
  return out;
}

constexpr char kJson[] = "Content-Type: application/json; charset=utf-8";

class HostileHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerProcessOptions options;
    options.data_dir = MakeTempDir("hostile");
    options.args = {absl::StrCat("--max_body_bytes=", kLimit), "--http_request_timeout=5s",
                    "--log_level=error"};
    absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
  }

  v1::GetStatsResponse Stats() {
    absl::StatusOr<v1::GetStatsResponse> stats = GetStats(server_->grpc_address());
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : v1::GetStatsResponse();
  }

  // Sends a valid webhook; returns the sequence from its 200 (0 on failure).
  uint64_t SendGood(const std::string& id) {
    absl::StatusOr<HttpResponse> r =
        PostWebhook(server_->webhook_url(), SampleBody("payout.failed", "acct_1H", false, id));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return 0;
    EXPECT_EQ(r->status_code, 200) << r->body;
    const size_t at = r->body.find("\"sequence\":");
    return at == std::string::npos ? 0 : std::stoull(r->body.substr(at + 11));
  }

  std::unique_ptr<ServerProcess> server_;
};

struct Row {
  std::string name;
  std::string request;  // raw bytes
  int status;
  std::string reason;   // the "error" of the JSON body
  bool closes = false;  // the connection must be closed after the answer
};

TEST_F(HostileHttpTest, EveryHostileRequestGetsItsStatusAndNothingIsStored) {
  // A few events first, so that "unchanged" has something to compare with.
  SendGood("evt_before_1");
  ASSERT_EQ(SendGood("evt_before_2"), 2u);
  const v1::GetStatsResponse before = Stats();

  const std::string good = SampleBody("payout.failed", "acct_1H", false, "evt_hostile_good");
  const std::string other = SampleBody("payout.failed", "acct_1H", false, "evt_hostile_other");
  const std::string wrong_secret_sig =
      MakeStripeSignatureHeader({"whsec_not_the_secret"}, Now(), good);
  auto wrong_secret = [](absl::string_view body) {
    return absl::StrCat("Stripe-Signature: ",
                        MakeStripeSignatureHeader({"whsec_not_the_secret"}, Now(), body));
  };
  auto signed_by_us = [](absl::string_view body, int64_t t) {
    return absl::StrCat("Stripe-Signature: ", Sign(body, t));
  };
  // A signed body that must fail decoding.
  auto signed_row = [&](std::string name, const std::string& body, std::string reason) {
    return Row{std::move(name), Post({kJson, signed_by_us(body, Now())}, body), 400,
               std::move(reason)};
  };
  const std::string smuggled = Post({kJson, signed_by_us(other, Now())}, other);
  const std::string deep = MinimalEvent(
      "evt_deep",
      absl::StrCat(R"({"x":)", std::string(100000, '['), std::string(100000, ']'), "}"));
  const std::string limit_minus_1 = PadTo(good, kLimit - 1);
  const std::string at_limit = PadTo(good, kLimit);
  const std::string limit_plus_1 = PadTo(good, kLimit + 1);
  std::string many_small_headers, too_many_headers;
  for (int i = 0; i < 1200; ++i) absl::StrAppend(&many_small_headers, "X-", i, ": v\r\n");
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&too_many_headers, "X-", i, ": v\r\n");
  many_small_headers.resize(many_small_headers.size() - 2);
  too_many_headers.resize(too_many_headers.size() - 2);

  std::vector<Row> rows = {
      // Stripe-Signature.
      {"missing Stripe-Signature", Post({kJson}, good), 400, "missing_signature"},
      {"empty Stripe-Signature", Post({kJson, "Stripe-Signature: "}, good), 400,
       "missing_signature"},
      {"garbage Stripe-Signature", Post({kJson, "Stripe-Signature: bad_header"}, good), 400,
       "malformed_signature"},
      {"binary Stripe-Signature", Post({kJson, "Stripe-Signature: \x80\xff\xfe=\x81,t=\xc3"}, good),
       400, "malformed_signature"},
      {"100 KB Stripe-Signature (over the header limit)",
       Post({kJson, absl::StrCat("Stripe-Signature: t=", Now(), ",v1=", std::string(100000, 'a'))},
            good),
       431, "bad_request", true},
      {"10 KB Stripe-Signature of 150 wrong v1",
       Post({kJson,
             absl::StrCat("Stripe-Signature: t=", Now(),
                          absl::StrJoin(std::vector<std::string>(150, std::string(64, 'b')), "",
                                        [](std::string* out, const std::string& v) {
                                          absl::StrAppend(out, ",v1=", v);
                                        }))},
            good),
       400, "signature_mismatch"},
      {"1,000 t= elements",
       Post({kJson, absl::StrCat("Stripe-Signature: ",
                                 absl::StrJoin(std::vector<std::string>(1000, "t=1"), ","),
                                 ",v1=", std::string(64, 'c'))},
            good),
       400, "malformed_signature"},
      {"two Stripe-Signature headers: garbage first, valid second (only the first counts)",
       Post({kJson, "Stripe-Signature: bad_header", signed_by_us(good, Now())}, good), 400,
       "malformed_signature"},
      {"valid signature over a different body",
       Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(other))}, good), 400,
       "signature_mismatch"},
      {"replay of an old valid request (t 1 h ago)",
       Post({kJson, signed_by_us(good, Now() - 3600)}, good), 400, "timestamp_out_of_tolerance"},
      {"replay of a 2017 request (Stripe's documented vector)",
       Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(good, 1492774577))}, good), 400,
       "timestamp_out_of_tolerance"},
      {"t 1 h in the future", Post({kJson, signed_by_us(good, Now() + 3600)}, good), 400,
       "timestamp_out_of_tolerance"},
      {"signed with another secret", Post({kJson, wrong_secret(good)}, good), 400,
       "signature_mismatch"},
      // Content type.
      {"wrong content type", Post({"Content-Type: text/plain", signed_by_us(good, Now())}, good),
       415, "unsupported_media_type"},
      {"form content type",
       Post({"Content-Type: application/x-www-form-urlencoded", signed_by_us(good, Now())}, good),
       415, "unsupported_media_type"},
      {"content type with a NUL-free lookalike",
       Post({"Content-Type: application/jsonp", signed_by_us(good, Now())}, good), 415,
       "unsupported_media_type"},
      // Sizes around the limit (signed with another secret, so that reaching
      // the verifier proves the body was read whole).
      {"Content-Length body of limit-1 bytes",
       Post({kJson, wrong_secret(limit_minus_1)}, limit_minus_1), 400, "signature_mismatch"},
      {"Content-Length body of exactly the limit", Post({kJson, wrong_secret(at_limit)}, at_limit),
       400, "signature_mismatch"},
      {"Content-Length body of limit+1 bytes",
       Post({kJson, wrong_secret(limit_plus_1)}, limit_plus_1), 413, "body_too_large", true},
      {"chunked body of limit-1 bytes",
       Post({kJson, wrong_secret(limit_minus_1), "Transfer-Encoding: chunked"},
            Chunked(limit_minus_1, 1000), false),
       400, "signature_mismatch"},
      {"chunked body of exactly the limit",
       Post({kJson, wrong_secret(at_limit), "Transfer-Encoding: chunked"}, Chunked(at_limit, 4096),
            false),
       400, "signature_mismatch"},
      {"chunked body of limit+1 bytes",
       Post({kJson, wrong_secret(limit_plus_1), "Transfer-Encoding: chunked"},
            Chunked(limit_plus_1, 1000), false),
       413, "body_too_large", true},
      {"chunked body in 1-byte chunks",
       Post({kJson, wrong_secret(good), "Transfer-Encoding: chunked"}, Chunked(good, 1), false),
       400, "signature_mismatch"},
      {"Content-Length of a terabyte, no body",
       Post({kJson, wrong_secret(good), "Content-Length: 1000000000000"}, "", false), 413,
       "body_too_large", true},
      {"Content-Length beyond 64 bits",
       Post({kJson, wrong_secret(good), "Content-Length: 100000000000000000000"}, good, false), 400,
       "bad_request", true},
      {"negative Content-Length",
       Post({kJson, wrong_secret(good), "Content-Length: -1"}, good, false), 400, "bad_request",
       true},
      {"non-numeric Content-Length",
       Post({kJson, wrong_secret(good), "Content-Length: 12abc"}, good, false), 400, "bad_request",
       true},
      {"Expect: 100-continue with a body over the limit",
       Post({kJson, wrong_secret(good), "Expect: 100-continue",
             absl::StrCat("Content-Length: ", kLimit + 1)},
            "", false),
       413, "body_too_large", true},
      // Signed bodies that must not decode.
      signed_row(
          "invalid UTF-8 (signed)",
          MinimalEvent("evt_utf8", "{\"id\":\"po_1\",\"object\":\"payout\",\"d\":\"\xff\xfe\"}"),
          "invalid_json"),
      signed_row("overlong UTF-8 encoding of '/' (signed)",
                 MinimalEvent("evt_overlong", "{\"object\":\"payout\",\"d\":\"\xc0\xaf\"}"),
                 "invalid_json"),
      signed_row("UTF-8 encoded surrogate (signed)",
                 MinimalEvent("evt_surrogate", "{\"object\":\"payout\",\"d\":\"\xed\xa0\x80\"}"),
                 "invalid_json"),
      signed_row("duplicate top-level key (signed)",
                 absl::StrCat(R"({"id":"evt_dup1","id":"evt_dup2",)",
                              MinimalEvent("evt_x", "{}").substr(1)),
                 "invalid_json"),
      signed_row("duplicate key in data.object (signed)",
                 MinimalEvent("evt_dupkey", R"({"object":"payout","amount":1,"amount":2})"),
                 "invalid_json"),
      signed_row("100,000 levels of nesting (signed)", deep, "invalid_json"),
      signed_row(
          "33 levels of nesting (signed)",
          MinimalEvent("evt_33", absl::StrCat(R"({"object":"payout","x":)", std::string(30, '['),
                                              std::string(30, ']'), "}")),
          "invalid_json"),
      signed_row("huge exponent in created (signed)", MinimalEvent("evt_hugec", "{}", "1e400"),
                 "invalid_json"),
      signed_row("30-digit created (signed)",
                 MinimalEvent("evt_bigc", "{}", "123456789012345678901234567890"), "invalid_json"),
      signed_row("created beyond year 9999 (signed)",
                 MinimalEvent("evt_farc", "{}", "9223372036854775807"), "invalid_json"),
      signed_row("1e400 in data.object (signed)",
                 MinimalEvent("evt_hugen", R"({"object":"payout","amount":1e400})"),
                 "invalid_json"),
      signed_row("400-digit integer in data.object (signed)",
                 MinimalEvent("evt_bign", absl::StrCat(R"({"object":"payout","amount":)",
                                                       std::string(400, '9'), "}")),
                 "invalid_json"),
      signed_row("NUL byte inside a JSON string (signed)",
                 MinimalEvent("evt_nul", "{\"object\":\"payout\",\"d\":\"a\0b\"}"s),
                 "invalid_json"),
      signed_row("NUL byte after the JSON (signed)", good + std::string(1, '\0'), "invalid_json"),
      signed_row("two JSON documents (signed)", good + good, "invalid_json"),
      signed_row("JSON array, not an object (signed)", "[" + good + "]", "invalid_json"),
      signed_row("not an event (signed)", R"({"id":"cus_1","object":"customer"})",
                 "unsupported_object"),
      // Headers and framing.
      {"NUL byte in a header value", Post({kJson, "Stripe-Signature: t=1\0,v1=ab"s}, good), 400,
       "bad_request", true},
      {"NUL byte in a header name", Post({kJson, "X-A\0B: 1"s}, good), 400, "bad_request", true},
      {"Content-Length and Transfer-Encoding together (smuggling)",
       Post({kJson, signed_by_us(good, Now()), "Transfer-Encoding: chunked",
             absl::StrCat("Content-Length: ", 5 + smuggled.size())},
            absl::StrCat("0\r\n\r\n", smuggled), false),
       400, "bad_request", true},
      {"two different Content-Length headers",
       Post({kJson, signed_by_us(good, Now()), absl::StrCat("Content-Length: ", good.size()),
             "Content-Length: 5"},
            good, false),
       400, "bad_request", true},
      {"Content-Length list with different values",
       Post(
           {kJson, signed_by_us(good, Now()), absl::StrCat("Content-Length: ", good.size(), ", 5")},
           good, false),
       400, "bad_request", true},
      {"Transfer-Encoding other than chunked",
       Post({kJson, signed_by_us(good, Now()), "Transfer-Encoding: gzip"}, good, false), 400,
       "bad_request", true},
      // RFC 9112 5.2 lets a server unfold obs-fold with spaces instead of
      // refusing; Beast does, so the folded signature is read (and wrong).
      {"obs-fold header continuation", Post({kJson, "Stripe-Signature: t=1,", " v1=abc"}, good),
       400, "signature_mismatch"},
      {"Transfer-Encoding with chunked not last",
       Post({kJson, signed_by_us(good, Now()), "Transfer-Encoding: chunked, gzip"},
            Chunked(good, 100), false),
       400, "bad_request", true},
      {"Transfer-Encoding gzip then chunked (gzip not decoded)",
       Post({kJson, signed_by_us(good, Now()), "Transfer-Encoding: gzip, chunked"},
            Chunked(good, 100), false),
       400, "bad_request", true},
      {"space before the colon", Post({kJson, "Stripe-Signature : t=1,v1=ab"}, good), 400,
       "bad_request", true},
      {"1,200 small headers (under the header limit)", Post({kJson, many_small_headers}, good), 400,
       "missing_signature"},
      {"10,000 headers (over the header limit)", Post({kJson, too_many_headers}, good), 431,
       "bad_request", true},
      {"one 20 KB header", Post({kJson, "X-Big: " + std::string(20000, 'x')}, good), 431,
       "bad_request", true},
      {"request line longer than the header limit",
       Post({kJson}, good, true,
            absl::StrCat("POST /webhook?", std::string(kHeaderLimit + 100, 'q'), " HTTP/1.1")),
       431, "bad_request", true},
      {"HTTP/1.0 with a bad signature",
       Post({kJson, wrong_secret(good)}, good, true, "POST /webhook HTTP/1.0"), 400,
       "signature_mismatch", true},
      {"HTTP/2 preface on the HTTP/1 port", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request",
       true},
      {"unknown HTTP version",
       Post({kJson, signed_by_us(good, Now())}, good, true, "POST /webhook HTTP/3.7"), 400,
       "bad_request", true},
      {"garbage bytes instead of HTTP",
       "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xde\xad\xbe\xef\r\n\r\n"s, 400, "bad_request",
       true},
      {"lower-case method",
       Post({kJson, signed_by_us(good, Now())}, good, true, "post /webhook HTTP/1.1"), 405,
       "method_not_allowed"},
      {"GET on the webhook path", "GET /webhook HTTP/1.1\r\nHost: x\r\n\r\n", 405,
       "method_not_allowed"},
      {"absolute-form target",
       Post({kJson, signed_by_us(good, Now())}, good, true,
            "POST http://127.0.0.1/webhook HTTP/1.1"),
       404, "not_found"},
      {"path traversal",
       Post({kJson, signed_by_us(good, Now())}, good, true, "POST /webhook/../webhook HTTP/1.1"),
       404, "not_found"},
  };

  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    RawHttpConnection conn(server_->http_address());
    ASSERT_TRUE(conn.connected());
    // A server that answers early (413, 431) may close before it has read
    // everything; the answer must arrive all the same.
    (void)conn.Send(row.request);
    RawReadResult r = conn.ReadResponses(1, absl::Seconds(15));
    ASSERT_GE(r.responses.size(), 1u) << "no answer; closed=" << r.closed
                                      << " got: " << absl::CHexEscape(r.unparsed.substr(0, 200));
    const RawHttpResponse& response = r.responses[0];
    EXPECT_EQ(response.status, row.status) << response.body;
    EXPECT_EQ(response.ErrorReason(), row.reason) << response.body;
    if (row.closes) {
      RawReadResult rest = conn.ReadUntilClosed(absl::Seconds(10));
      EXPECT_TRUE(rest.closed) << "the connection must be closed after this answer";
      EXPECT_TRUE(rest.responses.empty() && r.responses.size() == 1)
          << "a second answer came back: "
          << (rest.responses.empty() ? r.responses.back().body : rest.responses[0].body);
    }
  }

  // Nothing entered the log; the server is alive and the next event gets
  // the very next sequence.
  const v1::GetStatsResponse after = Stats();
  EXPECT_EQ(after.log().event_count(), before.log().event_count());
  EXPECT_EQ(after.log().last_sequence(), before.log().last_sequence());
  EXPECT_EQ(after.ingress().accepted(), before.ingress().accepted());
  EXPECT_TRUE(ProcessAlive(server_->pid()));
  EXPECT_EQ(SendGood("evt_after"), before.log().last_sequence() + 1);
  std::cout << "hostile http: " << rows.size() << " rows, server RSS " << server_->RssKib() / 1024
            << " MiB afterwards\n";
}

TEST_F(HostileHttpTest, ExactlyTheValidRequestsOfMixedBatchesAreStored) {
  const std::string good1 = SampleBody("payout.paid", "", false, "evt_mixed_1");
  const std::string bad = SampleBody("payout.paid", "", false, "evt_mixed_bad");
  const std::string good2 = SampleBody("payout.paid", "", false, "evt_mixed_2");
  std::set<std::string> want;

  {
    SCOPED_TRACE("pipelined good, bad signature, good");
    RawHttpConnection conn(server_->http_address());
    ASSERT_TRUE(conn.Send(absl::StrCat(
        Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(good1))}, good1),
        Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(good1))}, bad),
        Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(good2)), "Connection: close"},
             good2))));
    RawReadResult r = conn.ReadUntilClosed(absl::Seconds(30));
    ASSERT_EQ(r.responses.size(), 3u) << r.unparsed;
    EXPECT_EQ(r.responses[0].status, 200);
    EXPECT_THAT(r.responses[0].body, HasSubstr("evt_mixed_1"));
    EXPECT_EQ(r.responses[1].status, 400);
    EXPECT_EQ(r.responses[1].ErrorReason(), "signature_mismatch");
    EXPECT_EQ(r.responses[2].status, 200);
    EXPECT_THAT(r.responses[2].body, HasSubstr("evt_mixed_2"));
    want.insert({"evt_mixed_1", "evt_mixed_2"});
  }
  {
    SCOPED_TRACE("pipelined good, malformed HTTP, good: the stream is cut at the malformed one");
    const std::string good3 = SampleBody("payout.paid", "", false, "evt_mixed_3");
    const std::string never = SampleBody("payout.paid", "", false, "evt_mixed_never");
    RawHttpConnection conn(server_->http_address());
    ASSERT_TRUE(conn.Send(absl::StrCat(
        Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(good3))}, good3),
        "POST /webhook HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nxxxxxx",
        Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(never))}, never))));
    RawReadResult r = conn.ReadUntilClosed(absl::Seconds(30));
    ASSERT_EQ(r.responses.size(), 2u) << r.unparsed;
    EXPECT_EQ(r.responses[0].status, 200);
    EXPECT_EQ(r.responses[1].status, 400);
    EXPECT_EQ(r.responses[1].ErrorReason(), "bad_request");
    EXPECT_TRUE(r.closed);
    want.insert("evt_mixed_3");
  }
  {
    SCOPED_TRACE("two Stripe-Signature headers, valid first: only the first counts");
    const std::string body = SampleBody("payout.paid", "", false, "evt_mixed_dupsig");
    RawHttpConnection conn(server_->http_address());
    ASSERT_TRUE(conn.Send(Post(
        {kJson, absl::StrCat("Stripe-Signature: ", Sign(body)), "Stripe-Signature: bad_header"},
        body)));
    RawReadResult r = conn.ReadResponses(1, absl::Seconds(30));
    ASSERT_EQ(r.responses.size(), 1u) << r.unparsed;
    EXPECT_EQ(r.responses[0].status, 200) << r.responses[0].body;
    want.insert("evt_mixed_dupsig");
  }
  {
    SCOPED_TRACE("HTTP/1.0: answered, then closed");
    const std::string body = SampleBody("payout.paid", "", false, "evt_mixed_http10");
    RawHttpConnection conn(server_->http_address());
    ASSERT_TRUE(conn.Send(Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(body))}, body, true,
                               "POST /webhook HTTP/1.0")));
    RawReadResult r = conn.ReadUntilClosed(absl::Seconds(30));
    ASSERT_EQ(r.responses.size(), 1u) << r.unparsed;
    EXPECT_EQ(r.responses[0].status, 200) << r.responses[0].body;
    EXPECT_TRUE(r.closed);
    want.insert("evt_mixed_http10");
  }
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked body of exactly the limit" : "body of exactly the limit");
    const std::string id = chunked ? "evt_mixed_limit_chunked" : "evt_mixed_limit";
    const std::string body = PadTo(SampleBody("payout.paid", "", false, id), kLimit);
    ASSERT_EQ(body.size(), kLimit);
    RawHttpConnection conn(server_->http_address());
    ASSERT_TRUE(
        conn.Send(chunked ? Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(body)),
                                  "Transfer-Encoding: chunked"},
                                 Chunked(body, 7000), false)
                          : Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(body))}, body)));
    RawReadResult r = conn.ReadResponses(1, absl::Seconds(30));
    ASSERT_EQ(r.responses.size(), 1u) << r.unparsed;
    EXPECT_EQ(r.responses[0].status, 200) << r.responses[0].body;
    want.insert(id);
  }
  {
    SCOPED_TRACE("control: a minimal event is accepted");
    const std::string body = MinimalEvent("evt_mixed_minimal", R"({"object":"payout"})");
    RawHttpConnection conn(server_->http_address());
    ASSERT_TRUE(conn.Send(Post({kJson, absl::StrCat("Stripe-Signature: ", Sign(body))}, body)));
    RawReadResult r = conn.ReadResponses(1, absl::Seconds(30));
    ASSERT_EQ(r.responses.size(), 1u) << r.unparsed;
    EXPECT_EQ(r.responses[0].status, 200) << r.responses[0].body;
    want.insert("evt_mixed_minimal");
  }

  // The log holds exactly the accepted events.
  v1::SubscribeRequest oldest;
  oldest.set_position(v1::START_POSITION_OLDEST);
  StreamCollector all(server_->grpc_address(), oldest);
  ASSERT_TRUE(all.WaitForCaughtUp());
  std::set<std::string> got;
  for (const v1::Event& e : all.events()) got.insert(e.id());
  EXPECT_EQ(got, want);
  EXPECT_EQ(all.events().size(), want.size());
  EXPECT_EQ(Stats().log().event_count(), want.size());
}

}  // namespace
}  // namespace sidestream::testing
