#include "server/ingress/webhook_handler.h"

#include <simdjson.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "sidestream/v1/event.pb.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kDeadline = absl::Seconds(10);

// An EventLog that records appends. Completes them at once (the default), or
// holds them until CompleteNext(); can fail them with UNAVAILABLE; dedups by
// id like a real log.
class FakeEventLog final : public EventLog {
 public:
  enum class Mode { kCompleteAtOnce, kHold, kFail };

  void set_mode(Mode mode) {
    absl::MutexLock lock(&mu_);
    mode_ = mode;
  }

  void Append(NewEvent event, AppendCallback done) override {
    absl::StatusOr<AppendResult> result;
    {
      absl::MutexLock lock(&mu_);
      appended_.push_back(event);
      if (mode_ == Mode::kHold) {
        held_.push_back({event.id, std::move(done)});
        return;
      }
      result = mode_ == Mode::kFail
                   ? absl::StatusOr<AppendResult>(absl::UnavailableError("disk full"))
                   : StoreLocked(event.id);
    }
    std::move(done)(std::move(result));
  }

  // Completes the oldest held append as a real log would (stored or
  // duplicate), or with `error`.
  void CompleteNext(std::optional<absl::Status> error = std::nullopt) {
    Held next;
    absl::StatusOr<AppendResult> result;
    {
      absl::MutexLock lock(&mu_);
      ASSERT_FALSE(held_.empty());
      next = std::move(held_.front());
      held_.pop_front();
      result = error.has_value() ? absl::StatusOr<AppendResult>(*error) : StoreLocked(next.id);
    }
    std::move(next.done)(std::move(result));
  }

  std::vector<NewEvent> appended() const {
    absl::MutexLock lock(&mu_);
    return appended_;
  }
  size_t held() const {
    absl::MutexLock lock(&mu_);
    return held_.size();
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
  LogInfo Info() const override { return LogInfo(); }
  void SetListener(AppendListener*) override {}

 private:
  struct Held {
    std::string id;
    AppendCallback done;
  };

  AppendResult StoreLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto [it, inserted] = stored_.try_emplace(id, next_sequence_);
    if (inserted) ++next_sequence_;
    return AppendResult{it->second, !inserted};
  }

  mutable absl::Mutex mu_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kCompleteAtOnce;
  std::vector<NewEvent> appended_ ABSL_GUARDED_BY(mu_);
  std::deque<Held> held_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> stored_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
};

// Catches the handler's answer.
class Answer {
 public:
  HttpRespond Respond() {
    return [this](HttpServerResponse response) {
      absl::MutexLock lock(&mu_);
      ++calls_;
      response_ = std::move(response);
    };
  }
  bool answered() const {
    absl::MutexLock lock(&mu_);
    return calls_ > 0;
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Waits (with a deadline) for the answer.
  HttpServerResponse Get() const {
    absl::MutexLock lock(&mu_);
    auto has_answer = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ > 0; };
    EXPECT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&has_answer), kDeadline))
        << "the handler never answered";
    return response_;
  }

 private:
  mutable absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  HttpServerResponse response_ ABSL_GUARDED_BY(mu_);
};

// The value of `key` in a JSON object body. Fails the test when the body is
// not valid JSON.
std::optional<std::string> JsonString(const std::string& body, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto error = parser.parse(body).get(doc); error) {
    ADD_FAILURE() << "not valid JSON (" << simdjson::error_message(error) << "): " << body;
    return std::nullopt;
  }
  std::string_view value;
  if (doc[key].get_string().get(value) != simdjson::SUCCESS) return std::nullopt;
  return std::string(value);
}

std::optional<int64_t> JsonInt(const std::string& body, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) {
    ADD_FAILURE() << "not valid JSON: " << body;
    return std::nullopt;
  }
  int64_t value;
  if (doc[key].get_int64().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<bool> JsonBool(const std::string& body, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) {
    ADD_FAILURE() << "not valid JSON: " << body;
    return std::nullopt;
  }
  bool value;
  if (doc[key].get_bool().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<std::string> Header(const HttpServerResponse& response, absl::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return std::nullopt;
}

constexpr char kSecret[] = "whsec_connect_live_test_secret";
constexpr char kOtherSecret[] = "whsec_platform_test_secret";
constexpr char kEventId[] = "evt_1PqZFfCd1TdX3zBh5fI8jK4l";
constexpr char kAccount[] = "acct_1PqYz8Qx7RkB2mLc";

// A Connect payout.failed event, with non-ASCII UTF-8 in it.
std::string ConnectBody(absl::string_view id = kEventId, bool livemode = true) {
  return absl::StrCat(R"({"id":")", id, R"(","object":"event","account":")", kAccount,
                      R"(","api_version":"2024-06-20","created":1724929120,)",
                      R"("data":{"object":{"id":"po_1","object":"payout","amount":1100,)",
                      R"("description":"Café – payé"}},"livemode":)", livemode ? "true" : "false",
                      R"(,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},)",
                      R"("type":"payout.failed"})");
}

std::string PlatformBody() {
  return R"({"id":"evt_3PlatformCustomer","object":"event","created":1724929120,)"
         R"("data":{"object":{"id":"cus_1","object":"customer"}},"livemode":false,)"
         R"("type":"customer.created"})";
}

class WebhookHandlerTest : public ::testing::Test {
 protected:
  // A receive time with sub-second precision, to see it carried exactly.
  const absl::Time kNow = absl::FromUnixSeconds(1724929125) + absl::Nanoseconds(123456789);

  WebhookHandlerTest()
      : clock_(kNow),
        verifier_(*SignatureVerifier::Create(
            {{"connect-live", kSecret}, {"platform-test", kOtherSecret}}, absl::Seconds(300))),
        handler_(WebhookHandlerOptions(), &verifier_, &log_, &stats_, &clock_) {}

  int64_t NowSeconds() const { return absl::ToUnixSeconds(clock_.Now()); }

  HttpServerRequest Request(std::string body, std::optional<std::string> signature) {
    HttpServerRequest request;
    request.method = "POST";
    request.target = "/webhook";
    request.content_type = "application/json; charset=utf-8";
    request.stripe_signature = std::move(signature);
    request.body = std::move(body);
    request.peer = "127.0.0.1:53211";
    return request;
  }

  // A request signed with `secret` at the clock's time.
  HttpServerRequest Signed(std::string body, const char* secret = kSecret) {
    std::string signature = MakeStripeSignatureHeader({secret}, NowSeconds(), body);
    return Request(std::move(body), std::move(signature));
  }

  HttpServerResponse Handle(HttpServerRequest request) {
    Answer answer;
    handler_.Handle(std::move(request), answer.Respond());
    HttpServerResponse response = answer.Get();
    EXPECT_EQ(answer.calls(), 1);
    return response;
  }

  // Expects a 400 with `reason`, nothing appended, the reason counted.
  void ExpectRejected(HttpServerRequest request, RejectReason reason) {
    SCOPED_TRACE(RejectReasonName(reason));
    const uint64_t before = stats_.rejected(reason);
    HttpServerResponse response = Handle(std::move(request));
    EXPECT_EQ(response.status, 400);
    EXPECT_EQ(JsonString(response.body, "error"), std::string(RejectReasonName(reason)));
    EXPECT_TRUE(JsonString(response.body, "message").has_value()) << response.body;
    EXPECT_THAT(log_.appended(), IsEmpty());
    EXPECT_EQ(stats_.rejected(reason), before + 1);
    EXPECT_EQ(stats_.accepted(), 0u);
  }

  FakeClock clock_;
  SignatureVerifier verifier_;
  FakeEventLog log_;
  IngressStats stats_;
  WebhookHandler handler_;
};

// --- Path, method, content type ------------------------------------------

TEST_F(WebhookHandlerTest, OtherPathIs404) {
  for (const char* target : {"/", "/webhooks", "/webhook/", "/Webhook", "/x/webhook"}) {
    SCOPED_TRACE(target);
    HttpServerRequest request = Signed(ConnectBody());
    request.target = target;
    HttpServerResponse response = Handle(std::move(request));
    EXPECT_EQ(response.status, 404);
    EXPECT_EQ(JsonString(response.body, "error"), "not_found");
  }
  EXPECT_EQ(stats_.rejected(RejectReason::kNotFound), 5u);
  EXPECT_THAT(log_.appended(), IsEmpty());
}

TEST_F(WebhookHandlerTest, QueryStringIsIgnored) {
  HttpServerRequest request = Signed(ConnectBody());
  request.target = "/webhook?source=stripe";
  EXPECT_EQ(Handle(std::move(request)).status, 200);
}

TEST_F(WebhookHandlerTest, ConfiguredPathIsUsed) {
  WebhookHandlerOptions options;
  options.path = "/hooks/stripe";
  WebhookHandler handler(options, &verifier_, &log_, &stats_, &clock_);
  Answer default_path;
  handler.Handle(Signed(ConnectBody()), default_path.Respond());
  EXPECT_EQ(default_path.Get().status, 404);
  EXPECT_THAT(default_path.Get().body, HasSubstr("/hooks/stripe"));

  HttpServerRequest request = Signed(ConnectBody());
  request.target = "/hooks/stripe";
  Answer configured;
  handler.Handle(std::move(request), configured.Respond());
  EXPECT_EQ(configured.Get().status, 200);
}

TEST_F(WebhookHandlerTest, OtherMethodIs405WithAllow) {
  for (const char* method : {"GET", "PUT", "HEAD", "DELETE", "post"}) {
    SCOPED_TRACE(method);
    HttpServerRequest request = Signed(ConnectBody());
    request.method = method;
    HttpServerResponse response = Handle(std::move(request));
    EXPECT_EQ(response.status, 405);
    EXPECT_EQ(Header(response, "Allow"), "POST");
    EXPECT_EQ(JsonString(response.body, "error"), "method_not_allowed");
  }
  EXPECT_EQ(stats_.rejected(RejectReason::kMethodNotAllowed), 5u);
  EXPECT_THAT(log_.appended(), IsEmpty());
}

TEST_F(WebhookHandlerTest, OtherContentTypeIs415) {
  for (const char* type :
       {"text/plain", "application/x-www-form-urlencoded", "", "application/jsonx", "text/json"}) {
    SCOPED_TRACE(type);
    HttpServerRequest request = Signed(ConnectBody());
    request.content_type = type;
    HttpServerResponse response = Handle(std::move(request));
    EXPECT_EQ(response.status, 415);
    EXPECT_EQ(JsonString(response.body, "error"), "unsupported_media_type");
  }
  EXPECT_EQ(stats_.rejected(RejectReason::kUnsupportedMediaType), 5u);
  EXPECT_THAT(log_.appended(), IsEmpty());
}

TEST_F(WebhookHandlerTest, JsonContentTypesAndMissingContentTypeAreAccepted) {
  int n = 0;
  for (std::optional<std::string> type :
       {std::optional<std::string>("application/json; charset=utf-8"),
        std::optional<std::string>("application/json"),
        std::optional<std::string>("Application/JSON;charset=UTF-8"),
        std::optional<std::string>(" application/json ; charset=utf-8"),
        std::optional<std::string>()}) {
    SCOPED_TRACE(type.value_or("(none)"));
    HttpServerRequest request = Signed(ConnectBody(absl::StrCat("evt_ct", ++n)));
    request.content_type = type;
    EXPECT_EQ(Handle(std::move(request)).status, 200);
  }
  EXPECT_EQ(stats_.accepted(), 5u);
}

TEST_F(WebhookHandlerTest, PathIsCheckedBeforeMethodAndMethodBeforeSignature) {
  HttpServerRequest request = Request("not json", std::nullopt);
  request.target = "/nope";
  request.method = "GET";
  request.content_type = "text/plain";
  EXPECT_EQ(Handle(request).status, 404);
  request.target = "/webhook";
  EXPECT_EQ(Handle(request).status, 405);
  request.method = "POST";
  EXPECT_EQ(Handle(request).status, 415);
  request.content_type = std::nullopt;
  EXPECT_EQ(JsonString(Handle(request).body, "error"), "missing_signature");
}

// --- Signature and body rejections ------------------------------------------

TEST_F(WebhookHandlerTest, MissingSignatureHeader) {
  ExpectRejected(Request(ConnectBody(), std::nullopt), RejectReason::kMissingSignature);
}

TEST_F(WebhookHandlerTest, EmptySignatureHeader) {
  ExpectRejected(Request(ConnectBody(), ""), RejectReason::kMissingSignature);
}

TEST_F(WebhookHandlerTest, GarbageSignatureHeader) {
  ExpectRejected(Request(ConnectBody(), "bad_header"), RejectReason::kMalformedSignature);
}

TEST_F(WebhookHandlerTest, SignatureWithoutV1) {
  ExpectRejected(Request(ConnectBody(), absl::StrCat("t=", NowSeconds(), ",v0=abcdef")),
                 RejectReason::kNoV1Signature);
}

TEST_F(WebhookHandlerTest, SignatureByAnotherSecret) {
  ExpectRejected(Signed(ConnectBody(), "whsec_not_configured"), RejectReason::kSignatureMismatch);
}

TEST_F(WebhookHandlerTest, BodyChangedAfterSigning) {
  HttpServerRequest request = Signed(ConnectBody());
  request.body = ConnectBody("evt_1PqZFfCd1TdX3zBh5fI8jK4m");
  ExpectRejected(std::move(request), RejectReason::kSignatureMismatch);
}

TEST_F(WebhookHandlerTest, TimestampOutOfToleranceByTheFakeClock) {
  // Signed now, delivered 301 s later.
  HttpServerRequest request = Signed(ConnectBody());
  clock_.Advance(absl::Seconds(301));
  ExpectRejected(std::move(request), RejectReason::kTimestampOutOfTolerance);
}

TEST_F(WebhookHandlerTest, TimestampFromTheFuture) {
  HttpServerRequest request = Signed(ConnectBody());
  clock_.Advance(absl::Seconds(-301));
  ExpectRejected(std::move(request), RejectReason::kTimestampOutOfTolerance);
}

TEST_F(WebhookHandlerTest, TimestampInsideToleranceIsAccepted) {
  HttpServerRequest request = Signed(ConnectBody());
  clock_.Advance(absl::Seconds(299));
  EXPECT_EQ(Handle(std::move(request)).status, 200);
}

TEST_F(WebhookHandlerTest, SignedInvalidJson) {
  ExpectRejected(Signed("{\"id\": "), RejectReason::kInvalidJson);
}

TEST_F(WebhookHandlerTest, SignedEmptyBody) {
  ExpectRejected(Signed(""), RejectReason::kInvalidJson);
}

TEST_F(WebhookHandlerTest, SignedInvalidUtf8) {
  std::string body = ConnectBody();
  body.replace(body.find("Café"), 4, "Caf\xe9");  // Latin-1, not UTF-8
  ExpectRejected(Signed(body), RejectReason::kInvalidJson);
}

TEST_F(WebhookHandlerTest, SignedNonEventObject) {
  ExpectRejected(Signed(R"({"id":"cus_123","object":"customer","livemode":false})"),
                 RejectReason::kUnsupportedObject);
}

TEST_F(WebhookHandlerTest, RejectionMessageQuotingBadInputIsValidJson) {
  // The decoder's detail quotes the bad id, quotes and backslashes included.
  HttpServerResponse response = Handle(Signed(ConnectBody(R"(evt_\"quoted\"\\ \u0001)")));
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(JsonString(response.body, "error"), "invalid_json");
  std::optional<std::string> message = JsonString(response.body, "message");
  ASSERT_TRUE(message.has_value()) << response.body;
  EXPECT_THAT(*message, HasSubstr("quoted"));
}

// --- Success -----------------------------------------------------------------

TEST_F(WebhookHandlerTest, AcceptedEventIsAnsweredWithItsSequence) {
  HttpServerResponse response = Handle(Signed(ConnectBody()));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(JsonBool(response.body, "received"), true);
  EXPECT_EQ(JsonString(response.body, "id"), kEventId);
  EXPECT_EQ(JsonInt(response.body, "sequence"), 1);
  EXPECT_EQ(JsonBool(response.body, "duplicate"), false);
  EXPECT_EQ(stats_.accepted(), 1u);
  EXPECT_EQ(stats_.duplicates(), 0u);
  ASSERT_EQ(log_.appended().size(), 1u);
}

TEST_F(WebhookHandlerTest, AnswersOnlyAfterTheAppendCompletes) {
  log_.set_mode(FakeEventLog::Mode::kHold);
  Answer answer;
  handler_.Handle(Signed(ConnectBody()), answer.Respond());
  ASSERT_EQ(log_.held(), 1u);
  EXPECT_FALSE(answer.answered()) << "answered before the event was durable";
  EXPECT_EQ(stats_.accepted(), 0u);

  log_.CompleteNext();
  HttpServerResponse response = answer.Get();
  EXPECT_EQ(answer.calls(), 1);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(JsonInt(response.body, "sequence"), 1);
  EXPECT_EQ(stats_.accepted(), 1u);
}

TEST_F(WebhookHandlerTest, AppendMayCompleteOnAnotherThread) {
  log_.set_mode(FakeEventLog::Mode::kHold);
  Answer answer;
  handler_.Handle(Signed(ConnectBody()), answer.Respond());
  ASSERT_EQ(log_.held(), 1u);
  std::thread log_thread([this] { log_.CompleteNext(); });
  EXPECT_EQ(answer.Get().status, 200);
  log_thread.join();
  EXPECT_EQ(answer.calls(), 1);
}

TEST_F(WebhookHandlerTest, OutOfOrderCompletionsAnswerTheRightRequests) {
  log_.set_mode(FakeEventLog::Mode::kHold);
  Answer first;
  Answer second;
  handler_.Handle(Signed(ConnectBody("evt_first")), first.Respond());
  handler_.Handle(Signed(ConnectBody("evt_second")), second.Respond());
  log_.CompleteNext();
  EXPECT_TRUE(first.answered());
  EXPECT_FALSE(second.answered());
  EXPECT_EQ(JsonString(first.Get().body, "id"), "evt_first");
  log_.CompleteNext();
  EXPECT_EQ(JsonString(second.Get().body, "id"), "evt_second");
  EXPECT_EQ(JsonInt(second.Get().body, "sequence"), 2);
}

TEST_F(WebhookHandlerTest, AppendedEventCarriesEverything) {
  const std::string body = ConnectBody();
  HttpServerResponse response = Handle(Signed(body));
  ASSERT_EQ(response.status, 200);
  std::vector<NewEvent> appended = log_.appended();
  ASSERT_EQ(appended.size(), 1u);
  const NewEvent& event = appended[0];
  EXPECT_EQ(event.id, kEventId);
  EXPECT_EQ(event.type, "payout.failed");
  EXPECT_EQ(event.account, kAccount);
  EXPECT_TRUE(event.livemode);
  EXPECT_EQ(event.receive_time, kNow);
  EXPECT_EQ(event.raw_json, body) << "raw_json must be the exact signed bytes";

  v1::Event parsed;
  ASSERT_TRUE(parsed.ParseFromString(event.event_bytes));
  EXPECT_EQ(parsed.id(), kEventId);
  EXPECT_EQ(parsed.type(), "payout.failed");
  EXPECT_EQ(parsed.account(), kAccount);
  EXPECT_TRUE(parsed.livemode());
  EXPECT_EQ(parsed.secret_label(), "connect-live");
  EXPECT_EQ(parsed.receive_time().seconds(), 1724929125);
  EXPECT_EQ(parsed.receive_time().nanos(), 123456789);
  EXPECT_EQ(parsed.create_time().seconds(), 1724929120);
  EXPECT_EQ(parsed.kind(), v1::EVENT_KIND_SNAPSHOT);
  EXPECT_EQ(parsed.object_type(), "payout");
  EXPECT_EQ(parsed.object_id(), "po_1");
  EXPECT_EQ(parsed.data_object().fields().at("description").string_value(), "Café – payé");
  // Set by the log and the sender, never stored in event_bytes.
  EXPECT_EQ(parsed.sequence(), 0u);
  EXPECT_TRUE(parsed.raw_json().empty());
}

TEST_F(WebhookHandlerTest, PlatformTestEventVerifiedBySecondSecret) {
  const std::string body = PlatformBody();
  ASSERT_EQ(Handle(Signed(body, kOtherSecret)).status, 200);
  std::vector<NewEvent> appended = log_.appended();
  ASSERT_EQ(appended.size(), 1u);
  EXPECT_EQ(appended[0].type, "customer.created");
  EXPECT_EQ(appended[0].account, "");
  EXPECT_FALSE(appended[0].livemode);
  v1::Event parsed;
  ASSERT_TRUE(parsed.ParseFromString(appended[0].event_bytes));
  EXPECT_EQ(parsed.secret_label(), "platform-test");
}

TEST_F(WebhookHandlerTest, ReceiveTimeFollowsTheClock) {
  clock_.Advance(absl::Seconds(10));
  ASSERT_EQ(Handle(Signed(ConnectBody())).status, 200);
  EXPECT_EQ(log_.appended().at(0).receive_time, kNow + absl::Seconds(10));
}

TEST_F(WebhookHandlerTest, DuplicateIsAcknowledgedAndCounted) {
  ASSERT_EQ(Handle(Signed(ConnectBody())).status, 200);
  HttpServerResponse response = Handle(Signed(ConnectBody()));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(JsonBool(response.body, "duplicate"), true);
  EXPECT_EQ(JsonInt(response.body, "sequence"), 1);
  EXPECT_EQ(JsonString(response.body, "id"), kEventId);
  EXPECT_EQ(stats_.accepted(), 1u);
  EXPECT_EQ(stats_.duplicates(), 1u);
}

// --- Log failure -------------------------------------------------------------

TEST_F(WebhookHandlerTest, LogFailureIs503WithRetryAfter) {
  log_.set_mode(FakeEventLog::Mode::kFail);
  HttpServerResponse response = Handle(Signed(ConnectBody()));
  EXPECT_EQ(response.status, 503);
  std::optional<std::string> retry_after = Header(response, "Retry-After");
  ASSERT_TRUE(retry_after.has_value());
  int seconds = 0;
  EXPECT_TRUE(absl::SimpleAtoi(*retry_after, &seconds) && seconds > 0) << *retry_after;
  EXPECT_EQ(JsonString(response.body, "error"), "store_unavailable");
  EXPECT_EQ(stats_.rejected(RejectReason::kStoreUnavailable), 1u);
  EXPECT_EQ(stats_.accepted(), 0u);
}

TEST_F(WebhookHandlerTest, DelayedLogFailureIs503) {
  log_.set_mode(FakeEventLog::Mode::kHold);
  Answer answer;
  handler_.Handle(Signed(ConnectBody()), answer.Respond());
  EXPECT_FALSE(answer.answered());
  log_.CompleteNext(absl::UnavailableError("I/O error"));
  EXPECT_EQ(answer.Get().status, 503);
  EXPECT_EQ(answer.calls(), 1);
}

TEST_F(WebhookHandlerTest, RetryAfterFailureIsStored) {
  log_.set_mode(FakeEventLog::Mode::kFail);
  HttpServerRequest request = Signed(ConnectBody());
  EXPECT_EQ(Handle(request).status, 503);
  log_.set_mode(FakeEventLog::Mode::kCompleteAtOnce);
  HttpServerResponse response = Handle(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(JsonBool(response.body, "duplicate"), false);
}

// --- Counters ---------------------------------------------------------------

TEST_F(WebhookHandlerTest, CountersMatchOutcomes) {
  ASSERT_EQ(Handle(Signed(ConnectBody("evt_a"))).status, 200);
  ASSERT_EQ(Handle(Signed(ConnectBody("evt_b"))).status, 200);
  ASSERT_EQ(Handle(Signed(ConnectBody("evt_a"))).status, 200);
  ASSERT_EQ(Handle(Request(ConnectBody(), std::nullopt)).status, 400);
  ASSERT_EQ(Handle(Signed(ConnectBody(), "whsec_other")).status, 400);
  ASSERT_EQ(Handle(Signed(ConnectBody(), "whsec_other")).status, 400);
  log_.set_mode(FakeEventLog::Mode::kFail);
  ASSERT_EQ(Handle(Signed(ConnectBody("evt_c"))).status, 503);

  v1::IngressStats proto = stats_.ToProto();
  EXPECT_EQ(proto.accepted(), 2u);
  EXPECT_EQ(proto.duplicates(), 1u);
  EXPECT_EQ(proto.rejections().at("missing_signature"), 1u);
  EXPECT_EQ(proto.rejections().at("signature_mismatch"), 2u);
  EXPECT_EQ(proto.rejections().at("store_unavailable"), 1u);
  EXPECT_EQ(proto.rejections().at("invalid_json"), 0u);
  EXPECT_EQ(proto.rejections().size(), std::size(kAllRejectReasons));
}

// --- Refuse (answers the HTTP server makes itself) ---------------------------

TEST_F(WebhookHandlerTest, RefuseBuildsTheAnswerAndCounts) {
  HttpServerResponse response = handler_.Refuse(RejectReason::kBodyTooLarge, "body over 1 MiB");
  EXPECT_EQ(response.status, 413);
  EXPECT_EQ(JsonString(response.body, "error"), "body_too_large");
  EXPECT_EQ(JsonString(response.body, "message"), "body over 1 MiB");
  EXPECT_EQ(stats_.rejected(RejectReason::kBodyTooLarge), 1u);

  response = handler_.Refuse(RejectReason::kBadRequest, "bad \"request\"\n");
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(JsonString(response.body, "message"), "bad \"request\"\n");
  EXPECT_THAT(response.headers, IsEmpty());
}

// --- JsonQuote -------------------------------------------------------------

// The string JSON decodes `quoted` to (fails the test when invalid).
std::optional<std::string> Unquote(const std::string& quoted) {
  return JsonString(absl::StrCat("{\"v\":", quoted, "}"), "v");
}

TEST(JsonQuoteTest, PlainText) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("payout.failed"), "\"payout.failed\"");
}

TEST(JsonQuoteTest, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(JsonQuote(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
  EXPECT_EQ(Unquote(JsonQuote(R"(a"b\c\"d)")), R"(a"b\c\"d)");
}

TEST(JsonQuoteTest, EscapesControlBytes) {
  std::string all_controls;
  for (int c = 0; c < 0x20; ++c) all_controls.push_back(static_cast<char>(c));
  all_controls.push_back('\x7f');
  const std::string quoted = JsonQuote(all_controls);
  for (char c : quoted) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20) << quoted;
    EXPECT_NE(c, '\x7f') << quoted;
  }
  EXPECT_EQ(JsonQuote("a\nb\rc\td"), R"("a\nb\rc\td")");
  EXPECT_EQ(JsonQuote(std::string("\0", 1)), R"("\u0000")");
  EXPECT_EQ(Unquote(quoted), all_controls);
}

TEST(JsonQuoteTest, NonAsciiBytesKeepTheBodyValidJson) {
  // Invalid UTF-8 (a lone continuation byte, a truncated sequence, 0xff) and
  // valid UTF-8 alike come out as ASCII, so the body is always valid JSON.
  for (const std::string& text :
       {std::string("\x80"), std::string("caf\xc3"), std::string("\xff\xfe"),
        std::string("Café – payé"), std::string("\xed\xa0\x80")}) {
    const std::string quoted = JsonQuote(text);
    for (char c : quoted) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << quoted;
    EXPECT_TRUE(Unquote(quoted).has_value()) << quoted;
  }
}

TEST(JsonQuoteTest, EveryByteValueGivesValidJson) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  std::optional<std::string> decoded = Unquote(JsonQuote(all_bytes));
  ASSERT_TRUE(decoded.has_value());
  // ASCII comes back byte for byte.
  EXPECT_EQ(decoded->substr(0, 0x80), all_bytes.substr(0, 0x80));
}

}  // namespace
}  // namespace sidestream
