// End-to-end tests on the real `sidestream` binary: real HTTP in, real gRPC
// out, ephemeral loopback ports, a temporary data directory per test.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "client/http_client.h"
#include "client/sample_events.h"
#include "server/verify/stripe_signature.h"
#include "sidestream/v1/admin_service.grpc.pb.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

using ::testing::HasSubstr;

class E2eTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args = {}) {
    if (data_dir_.empty()) data_dir_ = MakeTempDir("e2e");
    ServerProcessOptions options;
    options.data_dir = data_dir_;
    options.args = std::move(args);
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Posts a sample event and expects 200; returns the sequence it got.
  void Send(const std::string& type, const std::string& account, bool live, const std::string& id) {
    absl::StatusOr<HttpResponse> r =
        PostWebhook(server_->webhook_url(), SampleBody(type, account, live, id));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status_code, 200) << r->body;
  }

  v1::GetStatsResponse Stats() {
    auto stub = v1::Admin::NewStub(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::GetStatsResponse stats;
    grpc::Status s = stub->GetStats(&ctx, v1::GetStatsRequest(), &stats);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return stats;
  }

  std::string data_dir_;
  std::unique_ptr<ServerProcess> server_;
};

v1::SubscribeRequest FromOldest() {
  v1::SubscribeRequest request;
  request.set_position(v1::START_POSITION_OLDEST);
  return request;
}

std::vector<std::string> Ids(const std::vector<v1::Event>& events) {
  std::vector<std::string> ids;
  for (const auto& e : events) ids.push_back(e.id());
  return ids;
}

void ExpectStrictlyIncreasing(const std::vector<v1::Event>& events) {
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LT(events[i - 1].sequence(), events[i].sequence()) << "at " << i;
  }
}

TEST_F(E2eTest, FilteredSubscribersGetExactlyTheMatchingEventsInOrder) {
  StartServer();
  v1::SubscribeRequest payouts_live_connect;
  payouts_live_connect.mutable_filter()->add_types("payout.*");
  payouts_live_connect.mutable_filter()->set_origin(v1::ORIGIN_CONNECT);
  payouts_live_connect.mutable_filter()->set_livemode(v1::LIVEMODE_LIVE);
  v1::SubscribeRequest one_account;
  one_account.mutable_filter()->add_accounts("acct_1B");
  v1::SubscribeRequest platform_test;
  platform_test.mutable_filter()->set_origin(v1::ORIGIN_PLATFORM);
  platform_test.mutable_filter()->set_livemode(v1::LIVEMODE_TEST);

  StreamCollector all(server_->grpc_address(), v1::SubscribeRequest());
  StreamCollector a(server_->grpc_address(), payouts_live_connect);
  StreamCollector b(server_->grpc_address(), one_account);
  StreamCollector c(server_->grpc_address(), platform_test);
  for (StreamCollector* s : {&all, &a, &b, &c}) ASSERT_TRUE(s->WaitForCaughtUp());

  const std::vector<std::string> types = {"payout.failed", "account.updated", "payout.paid",
                                          "balance.available", "person.updated"};
  const std::vector<std::string> accounts = {"", "acct_1A", "acct_1B"};
  std::vector<std::string> want_all, want_a, want_b, want_c;
  for (int i = 0; i < 30; ++i) {
    const std::string& type = types[i % types.size()];
    const std::string& account = accounts[i % accounts.size()];
    const bool live = (i / 2) % 2 == 0;
    const std::string id = absl::StrCat("evt_filter", i);
    Send(type, account, live, id);
    want_all.push_back(id);
    if (absl::StartsWith(type, "payout.") && !account.empty() && live) want_a.push_back(id);
    if (account == "acct_1B") want_b.push_back(id);
    if (account.empty() && !live) want_c.push_back(id);
  }
  ASSERT_FALSE(want_a.empty());
  ASSERT_FALSE(want_c.empty());
  ASSERT_TRUE(all.WaitForEvents(want_all.size()));
  ASSERT_TRUE(a.WaitForEvents(want_a.size()));
  ASSERT_TRUE(b.WaitForEvents(want_b.size()));
  ASSERT_TRUE(c.WaitForEvents(want_c.size()));
  // The unfiltered stream has seen everything, so the filtered ones have too
  // (same server, same order): nothing more can still arrive for them.
  EXPECT_EQ(Ids(all.events()), want_all);
  EXPECT_EQ(Ids(a.events()), want_a);
  EXPECT_EQ(Ids(b.events()), want_b);
  EXPECT_EQ(Ids(c.events()), want_c);
  ExpectStrictlyIncreasing(all.events());
  for (const v1::Event& e : a.events()) {
    EXPECT_TRUE(e.livemode());
    EXPECT_FALSE(e.account().empty());
    EXPECT_EQ(e.object_type(), "payout");
    EXPECT_TRUE(e.raw_json().empty()) << "raw_json only when asked";
  }
}

TEST_F(E2eTest, EventCarriesParsedFieldsAndExactRawJsonWhenAsked) {
  StartServer();
  v1::SubscribeRequest request;
  request.set_include_raw_json(true);
  StreamCollector s(server_->grpc_address(), request);
  ASSERT_TRUE(s.WaitForCaughtUp());
  const std::string body = SampleBody("payout.failed", "acct_1Nv0FGQ9RKHgCVdK", true, "evt_raw1");
  absl::StatusOr<HttpResponse> r = PostWebhook(server_->webhook_url(), body);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status_code, 200) << r->body;
  ASSERT_TRUE(s.WaitForEvents(1));
  const v1::Event e = s.events()[0];
  EXPECT_EQ(e.raw_json(), body);
  EXPECT_EQ(e.id(), "evt_raw1");
  EXPECT_EQ(e.type(), "payout.failed");
  EXPECT_EQ(e.account(), "acct_1Nv0FGQ9RKHgCVdK");
  EXPECT_TRUE(e.livemode());
  EXPECT_EQ(e.kind(), v1::EVENT_KIND_SNAPSHOT);
  EXPECT_EQ(e.object_type(), "payout");
  EXPECT_EQ(e.secret_label(), "test");
  EXPECT_GT(e.receive_time().seconds(), 0);
  EXPECT_GE(e.sequence(), 1u);
  EXPECT_TRUE(e.data_object().fields().contains("failure_code"));

  // GetEvent returns the same event, with raw JSON only when asked.
  auto stub = EventsStub(server_->grpc_address());
  for (bool raw : {false, true}) {
    grpc::ClientContext ctx;
    v1::GetEventRequest get;
    get.set_id("evt_raw1");
    get.set_include_raw_json(raw);
    v1::GetEventResponse got;
    ASSERT_TRUE(stub->GetEvent(&ctx, get, &got).ok());
    EXPECT_EQ(got.event().sequence(), e.sequence());
    EXPECT_EQ(got.event().raw_json(), raw ? body : "");
  }
  grpc::ClientContext ctx;
  v1::GetEventRequest missing;
  missing.set_id("evt_missing");
  v1::GetEventResponse none;
  EXPECT_EQ(stub->GetEvent(&ctx, missing, &none).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(E2eTest, DuplicateDeliveryIsAcknowledgedAndStoredOnce) {
  StartServer();
  StreamCollector s(server_->grpc_address(), v1::SubscribeRequest());
  ASSERT_TRUE(s.WaitForCaughtUp());
  const std::string body = SampleBody("account.updated", "acct_1A", false, "evt_dup");
  std::string first_sequence;
  for (int attempt = 0; attempt < 3; ++attempt) {
    // Each retry is signed afresh, as Stripe does.
    absl::StatusOr<HttpResponse> r = PostWebhook(server_->webhook_url(), body);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status_code, 200) << r->body;
    EXPECT_THAT(r->body, HasSubstr(attempt == 0 ? "\"duplicate\":false" : "\"duplicate\":true"));
  }
  Send("account.updated", "acct_1A", false, "evt_after_dup");
  ASSERT_TRUE(s.WaitForEvents(2));
  EXPECT_EQ(Ids(s.events()), (std::vector<std::string>{"evt_dup", "evt_after_dup"}));
  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.ingress().accepted(), 2u);
  EXPECT_EQ(stats.ingress().duplicates(), 2u);
  EXPECT_EQ(stats.log().event_count(), 2u);
}

TEST_F(E2eTest, ResumeAfterLastSequenceHasNoGapAndNoDuplicate) {
  StartServer();
  for (int i = 0; i < 10; ++i) Send("payout.paid", "acct_1A", false, absl::StrCat("evt_r", i));
  uint64_t cursor = 0;
  std::string epoch;
  {
    StreamCollector first(server_->grpc_address(), FromOldest());
    ASSERT_TRUE(first.WaitForEvents(5));
    first.Cancel();
    ASSERT_TRUE(first.WaitForEnd());
    std::vector<v1::Event> got = first.events();
    ASSERT_GE(got.size(), 5u);
    cursor = got[4].sequence();  // processed only the first five
  }
  for (int i = 10; i < 20; ++i) Send("payout.paid", "acct_1A", false, absl::StrCat("evt_r", i));
  v1::SubscribeRequest resume;
  resume.set_after_sequence(cursor);
  resume.set_log_epoch(server_->epoch());
  StreamCollector second(server_->grpc_address(), resume);
  ASSERT_TRUE(second.WaitForCaughtUp());
  for (int i = 20; i < 25; ++i) Send("payout.paid", "acct_1A", false, absl::StrCat("evt_r", i));
  ASSERT_TRUE(second.WaitForEvents(20));
  std::vector<std::string> want;
  for (int i = 5; i < 25; ++i) want.push_back(absl::StrCat("evt_r", i));
  EXPECT_EQ(Ids(second.events()), want);
  ExpectStrictlyIncreasing(second.events());
}

TEST_F(E2eTest, BatchesCarryTheSameEventsOnlyWhenAskedAndWithinTheirLimits) {
  // The window holds 8 events, so most of the history is read from the log.
  StartServer({"--hub_window_events=8"});
  std::vector<std::string> want;
  for (int i = 0; i < 60; ++i) {
    want.push_back(absl::StrCat("evt_b", i));
    Send(i % 3 == 0 ? "invoice.paid" : "payout.paid", "acct_1A", false, want.back());
  }
  StreamCollector single(server_->grpc_address(), FromOldest());
  v1::SubscribeRequest batched = FromOldest();
  batched.set_max_batch_events(16);
  batched.set_include_raw_json(true);
  StreamCollector many(server_->grpc_address(), batched);
  v1::SubscribeRequest filtered = batched;
  filtered.mutable_filter()->add_types("invoice.paid");
  StreamCollector some(server_->grpc_address(), filtered);
  ASSERT_TRUE(single.WaitForCaughtUp());
  ASSERT_TRUE(many.WaitForCaughtUp());
  ASSERT_TRUE(some.WaitForCaughtUp());

  EXPECT_EQ(Ids(single.events()), want);
  for (const v1::SubscribeResponse& item : single.items()) EXPECT_FALSE(item.has_batch());

  // The same events, in order, with their raw JSON, in batches of 2 to 16.
  const std::vector<v1::Event> events = many.events();
  EXPECT_EQ(Ids(events), want);
  ExpectStrictlyIncreasing(events);
  for (const v1::Event& event : events) EXPECT_THAT(event.raw_json(), HasSubstr(event.id()));
  size_t batches = 0;
  for (const v1::SubscribeResponse& item : many.items()) {
    if (!item.has_batch()) continue;
    ++batches;
    EXPECT_GE(item.batch().events_size(), 2);
    EXPECT_LE(item.batch().events_size(), 16);
  }
  EXPECT_GE(batches, 60u / 16);

  // A filter applies inside batches too.
  std::vector<std::string> invoices;
  for (int i = 0; i < 60; i += 3) invoices.push_back(absl::StrCat("evt_b", i));
  EXPECT_EQ(Ids(some.events()), invoices);

  // Live events keep arriving after the history, batched or not.
  Send("invoice.paid", "acct_1A", false, "evt_b_live");
  ASSERT_TRUE(many.WaitForEvents(61));
  EXPECT_EQ(many.events().back().id(), "evt_b_live");
  ASSERT_TRUE(some.WaitForEvents(invoices.size() + 1));
}

TEST_F(E2eTest, LongCatchUpWhileEventsArriveIsExactlyOnceInOrder) {
  // Several log batches (512 events each) behind an 8-event window, read
  // ahead while the previous batch is sent, while new events keep arriving:
  // no event may be skipped or repeated at the seams.
  StartServer({"--hub_window_events=8"});
  std::vector<std::string> want;
  auto send_range = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      want.push_back(absl::StrCat("evt_c", i));
      Send(i % 2 == 0 ? "invoice.paid" : "payout.paid", "acct_1A", false, want.back());
    }
  };
  send_range(0, 1300);
  StreamCollector single(server_->grpc_address(), FromOldest());
  v1::SubscribeRequest batched = FromOldest();
  batched.set_max_batch_events(100);
  StreamCollector many(server_->grpc_address(), batched);
  v1::SubscribeRequest filtered = batched;
  filtered.mutable_filter()->add_types("payout.paid");
  StreamCollector some(server_->grpc_address(), filtered);
  send_range(1300, 1400);  // while the streams catch up
  ASSERT_TRUE(single.WaitForEvents(want.size()));
  ASSERT_TRUE(many.WaitForEvents(want.size()));
  std::vector<std::string> payouts;
  for (size_t i = 1; i < want.size(); i += 2) payouts.push_back(want[i]);
  ASSERT_TRUE(some.WaitForEvents(payouts.size()));
  EXPECT_EQ(Ids(single.events()), want);
  EXPECT_EQ(Ids(many.events()), want);
  EXPECT_EQ(Ids(some.events()), payouts);
  ExpectStrictlyIncreasing(many.events());
  EXPECT_GE(Stats().delivery().log_reads(), 3u * 3);  // the history came from the log
}

TEST_F(E2eTest, BatchesStayUnderOneMebibyte) {
  StartServer();
  // About 16 KB per event with its raw JSON; 1000 allowed per batch.
  std::vector<std::string> want;
  for (int i = 0; i < 200; ++i) {
    want.push_back(absl::StrCat("evt_big", i));
    absl::StatusOr<HttpResponse> r = PostWebhook(
        server_->webhook_url(),
        SampleBody("payout.paid", "acct_1A", false, want.back(), /*padding_bytes=*/8000));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status_code, 200) << r->body;
  }
  v1::SubscribeRequest request = FromOldest();
  request.set_max_batch_events(5000);  // lowered to 1000
  request.set_include_raw_json(true);
  StreamCollector stream(server_->grpc_address(), request);
  ASSERT_TRUE(stream.WaitForCaughtUp());
  EXPECT_EQ(Ids(stream.events()), want);
  size_t batches = 0;
  for (const v1::SubscribeResponse& item : stream.items()) {
    if (!item.has_batch()) continue;
    ++batches;
    EXPECT_LE(item.ByteSizeLong(), size_t{1} << 20);
  }
  EXPECT_GE(batches, 2u);
}

TEST_F(E2eTest, CursorsFromAnotherLogAreRefusedClearly) {
  StartServer();
  Send("payout.paid", "", false, "evt_c1");
  struct Case {
    const char* name;
    v1::SubscribeRequest request;
    grpc::StatusCode code;
  };
  std::vector<Case> cases;
  {
    v1::SubscribeRequest r;
    r.set_after_sequence(1);
    r.set_log_epoch("0123456789abcdef0123456789abcdef");
    cases.push_back({"other epoch", r, grpc::StatusCode::FAILED_PRECONDITION});
  }
  {
    v1::SubscribeRequest r;
    r.set_after_sequence(1000);
    cases.push_back({"beyond head", r, grpc::StatusCode::FAILED_PRECONDITION});
  }
  {
    v1::SubscribeRequest r;
    r.mutable_filter()->add_types("payout.");
    cases.push_back({"bad type", r, grpc::StatusCode::INVALID_ARGUMENT});
  }
  {
    v1::SubscribeRequest r;
    r.mutable_filter()->add_accounts("acct_1A");
    r.mutable_filter()->set_origin(v1::ORIGIN_PLATFORM);
    cases.push_back({"contradiction", r, grpc::StatusCode::INVALID_ARGUMENT});
  }
  {
    v1::SubscribeRequest r;
    r.set_position(static_cast<v1::StartPosition>(7));
    cases.push_back({"unknown position", r, grpc::StatusCode::INVALID_ARGUMENT});
  }
  for (const Case& c : cases) {
    StreamCollector s(server_->grpc_address(), c.request);
    ASSERT_TRUE(s.WaitForEnd()) << c.name;
    EXPECT_EQ(s.status().error_code(), c.code) << c.name << ": " << s.status().error_message();
    EXPECT_FALSE(s.status().error_message().empty()) << c.name;
  }
}

TEST_F(E2eTest, StartTimeStartsAtTheFirstEventReceivedThen) {
  StartServer();
  for (int i = 0; i < 6; ++i) Send("charge.succeeded", "", true, absl::StrCat("evt_t", i));
  auto stub = EventsStub(server_->grpc_address());
  grpc::ClientContext ctx;
  v1::GetEventRequest get;
  get.set_id("evt_t3");
  v1::GetEventResponse fourth;
  ASSERT_TRUE(stub->GetEvent(&ctx, get, &fourth).ok());

  v1::SubscribeRequest request;
  *request.mutable_start_time() = fourth.event().receive_time();
  StreamCollector s(server_->grpc_address(), request);
  ASSERT_TRUE(s.WaitForCaughtUp());
  EXPECT_EQ(Ids(s.events()), (std::vector<std::string>{"evt_t3", "evt_t4", "evt_t5"}));
}

TEST_F(E2eTest, CursorOlderThanRetentionIsOutOfRangeNamingTheOldest) {
  // Size retention: a few events' worth, so trimming starts quickly.
  StartServer({"--log_max_bytes=10000"});
  for (int i = 0; i < 40; ++i) Send("payout.paid", "", false, absl::StrCat("evt_o", i));
  // Trimming runs in the background; wait (bounded) until it has happened.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  v1::GetStatsResponse stats = Stats();
  while (stats.log().first_sequence() <= 1 && absl::Now() < deadline) {
    // Polling the condition: the server announces nothing when it trims.
    absl::SleepFor(absl::Milliseconds(100));
    stats = Stats();
  }
  const uint64_t oldest = stats.log().first_sequence();
  ASSERT_GT(oldest, 1u) << "size retention never trimmed";
  EXPECT_LE(stats.log().event_bytes(), 10000u);

  v1::SubscribeRequest request;
  request.set_after_sequence(0);
  StreamCollector stale(server_->grpc_address(), request);
  ASSERT_TRUE(stale.WaitForEnd());
  EXPECT_EQ(stale.status().error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(stale.status().error_message(),
              HasSubstr(absl::StrCat("oldest available sequence is ", oldest)));

  // Dedup outlives size retention: a trimmed event's retry is still a duplicate.
  absl::StatusOr<HttpResponse> retry =
      PostWebhook(server_->webhook_url(), SampleBody("payout.paid", "", false, "evt_o0"));
  ASSERT_TRUE(retry.ok());
  EXPECT_THAT(retry->body, HasSubstr("\"duplicate\":true"));

  // OLDEST starts at the oldest retained event.
  StreamCollector from_oldest(server_->grpc_address(), FromOldest());
  ASSERT_TRUE(from_oldest.WaitForCaughtUp());
  ASSERT_FALSE(from_oldest.events().empty());
  EXPECT_EQ(from_oldest.events().front().sequence(), oldest);
}

TEST_F(E2eTest, SparseSubscriberReceivesCheckpoints) {
  StartServer({"--checkpoint_interval=1s"});
  v1::SubscribeRequest request;
  request.mutable_filter()->add_types("person.updated");
  StreamCollector s(server_->grpc_address(), request);
  ASSERT_TRUE(s.WaitForCaughtUp());
  for (int i = 0; i < 5; ++i) Send("payout.paid", "", false, absl::StrCat("evt_cp", i));
  ASSERT_TRUE(s.WaitForCheckpoints(2, absl::Seconds(10)));
  const std::vector<v1::SubscribeResponse> items = s.items();
  const v1::Checkpoint& last = items.back().checkpoint();
  EXPECT_EQ(last.head_sequence(), 5u);
  EXPECT_EQ(last.log_epoch(), server_->epoch());
  EXPECT_TRUE(s.events().empty());
}

TEST_F(E2eTest, AcknowledgedEventsSurviveKill9) {
  StartServer();
  constexpr int kSenders = 4, kPerSender = 50;
  std::atomic<int> acknowledged{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerSender; ++i) {
        absl::StatusOr<HttpResponse> r =
            PostWebhook(server_->webhook_url(), SampleBody("payment_intent.succeeded", "acct_1A",
                                                           true, absl::StrCat("evt_k", t, "_", i)));
        if (r.ok() && r->status_code == 200) ++acknowledged;
      }
    });
  }
  for (auto& t : senders) t.join();
  ASSERT_EQ(acknowledged.load(), kSenders * kPerSender);
  const std::string epoch = server_->epoch();
  server_->Kill();  // SIGKILL: no shutdown path runs
  StartServer();
  EXPECT_EQ(server_->epoch(), epoch);

  StreamCollector s(server_->grpc_address(), FromOldest());
  ASSERT_TRUE(s.WaitForCaughtUp());
  std::set<std::string> ids;
  for (const v1::Event& e : s.events()) ids.insert(e.id());
  EXPECT_EQ(s.events().size(), static_cast<size_t>(kSenders * kPerSender));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kSenders * kPerSender));
  for (int t = 0; t < kSenders; ++t) {
    for (int i = 0; i < kPerSender; ++i)
      EXPECT_TRUE(ids.contains(absl::StrCat("evt_k", t, "_", i)));
  }
  // Dedup survives the restart too.
  absl::StatusOr<HttpResponse> again = PostWebhook(
      server_->webhook_url(), SampleBody("payment_intent.succeeded", "acct_1A", true, "evt_k0_0"));
  ASSERT_TRUE(again.ok());
  EXPECT_THAT(again->body, HasSubstr("\"duplicate\":true"));
}

TEST_F(E2eTest, BadInputsGetTheirDocumentedStatusAndNothingIsStored) {
  StartServer({"--max_body_bytes=4096"});
  const std::string url = server_->webhook_url();
  const std::string good = SampleBody("payout.failed", "acct_1A", false, "evt_bad");
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  auto signed_header = [](const std::string& body, int64_t t) {
    return MakeStripeSignatureHeader({kTestSecret}, t, body);
  };
  const std::string json = "application/json; charset=utf-8";
  struct Case {
    std::string name;
    std::string method;
    std::string path;
    HttpHeaders headers;
    std::string body;
    int status;
    std::string reason;
  };
  const std::string not_json = "{\"id\":\"evt_x\",";
  const std::string customer = R"({"id":"cus_1","object":"customer"})";
  const std::string big = std::string(5000, ' ') + good;
  std::vector<Case> cases = {
      {"missing signature",
       "POST",
       "/webhook",
       {{"Content-Type", json}},
       good,
       400,
       "missing_signature"},
      {"garbage signature",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", "bad_header"}},
       good,
       400,
       "malformed_signature"},
      {"v0 only",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", absl::StrCat("t=", now, ",v0=abc")}},
       good,
       400,
       "no_v1_signature"},
      {"wrong secret",
       "POST",
       "/webhook",
       {{"Content-Type", json},
        {"Stripe-Signature", MakeStripeSignatureHeader({"whsec_other"}, now, good)}},
       good,
       400,
       "signature_mismatch"},
      {"signature over another body",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", signed_header(good + " ", now)}},
       good,
       400,
       "signature_mismatch"},
      {"replay of an old request",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", signed_header(good, now - 3600)}},
       good,
       400,
       "timestamp_out_of_tolerance"},
      {"signed but not JSON",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", signed_header(not_json, now)}},
       not_json,
       400,
       "invalid_json"},
      {"signed but not an event",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", signed_header(customer, now)}},
       customer,
       400,
       "unsupported_object"},
      {"signed empty body",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", signed_header("", now)}},
       "",
       400,
       "invalid_json"},
      {"wrong path", "POST", "/hooks", {{"Content-Type", json}}, good, 404, "not_found"},
      {"wrong method", "GET", "/webhook", {}, "", 405, "method_not_allowed"},
      {"wrong content type",
       "POST",
       "/webhook",
       {{"Content-Type", "text/plain"}, {"Stripe-Signature", signed_header(good, now)}},
       good,
       415,
       "unsupported_media_type"},
      {"body too large",
       "POST",
       "/webhook",
       {{"Content-Type", json}, {"Stripe-Signature", signed_header(big, now)}},
       big,
       413,
       "body_too_large"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<HttpResponse> r =
        c.method == "GET" ? HttpGet(absl::StrCat("http://", server_->http_address(), c.path),
                                    c.headers, absl::Seconds(10))
                          : HttpPost(absl::StrCat("http://", server_->http_address(), c.path),
                                     c.headers, c.body, absl::Seconds(10));
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
    EXPECT_EQ(r->status_code, c.status) << c.name << ": " << r->body;
    EXPECT_THAT(r->body, HasSubstr(absl::StrCat("\"error\":\"", c.reason, "\""))) << c.name;
  }
  const v1::GetStatsResponse stats = Stats();
  EXPECT_EQ(stats.log().event_count(), 0u);
  EXPECT_EQ(stats.log().last_sequence(), 0u);
  EXPECT_EQ(stats.ingress().accepted(), 0u);
  for (const Case& c : cases) {
    EXPECT_GE(stats.ingress().rejections().at(c.reason), 1u) << c.reason;
  }
}

TEST_F(E2eTest, StalledSubscriberDoesNotGrowServerMemoryAndLaterGetsEverything) {
  // A small in-memory window, so that staying bounded is visible: the
  // stalled subscriber must be served from the log, not from memory.
  StartServer({"--hub_window_events=256"});
  constexpr int kEvents = 4000;
  constexpr size_t kPadding = 6000;  // ~8 KB per event with the raw body
  v1::SubscribeRequest request = FromOldest();
  request.set_include_raw_json(true);

  // A raw stream that reads one message and then stops reading.
  auto channel = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Events::NewStub(channel);
  grpc::ClientContext ctx;
  auto reader = stub->Subscribe(&ctx, request);
  v1::SubscribeResponse item;
  ASSERT_TRUE(reader->Read(&item));  // caught_up on the empty log
  ASSERT_TRUE(item.has_caught_up());

  const long rss_before = server_->RssKib();
  auto conn = HttpConnection::Create(server_->webhook_url());
  ASSERT_TRUE(conn.ok());
  for (int i = 0; i < kEvents; ++i) {
    SampleEventOptions o;
    o.type = "invoice.paid";
    o.account = "acct_1A";
    o.id = absl::StrCat("evt_slow", i);
    o.padding_bytes = kPadding;
    absl::StatusOr<std::string> body = BuildSampleEvent(o);
    ASSERT_TRUE(body.ok());
    HttpHeaders headers = {
        {"Content-Type", "application/json"},
        {"Stripe-Signature",
         MakeStripeSignatureHeader({kTestSecret}, absl::ToUnixSeconds(absl::Now()), *body)}};
    absl::StatusOr<HttpResponse> r = (*conn)->Post(headers, *body, absl::Seconds(30));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status_code, 200) << r->body;
  }
  const long rss_after = server_->RssKib();
  const v1::GetStatsResponse stats = Stats();
  const uint64_t stored_kib = stats.log().event_bytes() / 1024;
  ASSERT_GT(stored_kib, 40u * 1024) << "the backlog must be large for this test to mean much";
  // Growth stays far below the backlog: the window (256 events, ~3 MB),
  // gRPC's flow-control buffers and SQLite's page caches.
  EXPECT_LT(rss_after - rss_before, 32 * 1024)
      << "RSS grew from " << rss_before << " KiB to " << rss_after << " KiB with a " << stored_kib
      << " KiB backlog";
  ASSERT_EQ(stats.subscriptions_size(), 1);
  EXPECT_GT(stats.subscriptions(0).lag(), 0u);

  // Now it reads again and receives every event once, in order.
  std::vector<std::string> ids;
  uint64_t last = 0;
  while (ids.size() < static_cast<size_t>(kEvents) && reader->Read(&item)) {
    if (!item.has_event()) continue;
    EXPECT_GT(item.event().sequence(), last);
    last = item.event().sequence();
    ids.push_back(item.event().id());
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) EXPECT_EQ(ids[i], absl::StrCat("evt_slow", i));
  ctx.TryCancel();
}

TEST_F(E2eTest, ListEventsPagesThroughTheLog) {
  StartServer();
  for (int i = 0; i < 25; ++i) {
    Send(i % 2 ? "payout.paid" : "charge.succeeded", "", false, absl::StrCat("evt_l", i));
  }
  auto stub = EventsStub(server_->grpc_address());
  std::vector<std::string> ids;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListEventsRequest req;
    req.mutable_filter()->add_types("payout.paid");
    req.set_page_size(5);
    req.set_page_token(token);
    v1::ListEventsResponse resp;
    grpc::Status s = stub->ListEvents(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& e : resp.events()) ids.push_back(e.id());
    token = resp.next_page_token();
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  std::vector<std::string> want;
  for (int i = 1; i < 25; i += 2) want.push_back(absl::StrCat("evt_l", i));
  EXPECT_EQ(ids, want);

  grpc::ClientContext ctx;
  v1::ListEventsRequest bad;
  bad.set_page_size(-1);
  v1::ListEventsResponse resp;
  EXPECT_EQ(stub->ListEvents(&ctx, bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(E2eTest, GracefulShutdownEndsStreamsWithUnavailable) {
  StartServer();
  StreamCollector s(server_->grpc_address(), v1::SubscribeRequest());
  ASSERT_TRUE(s.WaitForCaughtUp());
  EXPECT_EQ(server_->Terminate(absl::Seconds(30)), 0);
  ASSERT_TRUE(s.WaitForEnd());
  EXPECT_EQ(s.status().error_code(), grpc::StatusCode::UNAVAILABLE);
}

// A raw TCP connection to the webhook port, for what an HTTP client library
// would not do (trickle, pipeline).
class RawConnection {
 public:
  explicit RawConnection(const std::string& address) {
    const size_t colon = address.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() { close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Whatever arrives next (empty on close or timeout).
  std::string ReadSome(absl::Duration timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return "";
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  // Reads until the peer closes or `timeout` passes. Returns what arrived
  // and whether the peer closed.
  std::pair<std::string, bool> ReadUntilClosed(absl::Duration timeout) {
    std::string out;
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) return {out, false};
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return {out, true};
      out.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST_F(E2eTest, SlowAndIdleClientsAreCutOffWithoutBlockingOthers) {
  StartServer({"--http_request_timeout=1s", "--http_idle_timeout=2s"});
  RawConnection trickler(server_->http_address());
  RawConnection idle(server_->http_address());
  ASSERT_TRUE(trickler.connected());
  ASSERT_TRUE(idle.connected());
  ASSERT_TRUE(trickler.Send("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-"));
  // Others are served meanwhile.
  Send("payout.paid", "", false, "evt_while_slow");
  const absl::Time start = absl::Now();
  auto [trickled, trickler_closed] = trickler.ReadUntilClosed(absl::Seconds(10));
  EXPECT_TRUE(trickler_closed) << "a client trickling headers must be cut off";
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  auto [idled, idle_closed] = idle.ReadUntilClosed(absl::Seconds(10));
  EXPECT_TRUE(idle_closed) << "an idle keep-alive connection must be closed";
  EXPECT_TRUE(idled.empty());
}

TEST_F(E2eTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  RawConnection conn(server_->http_address());
  ASSERT_TRUE(conn.connected());
  std::string requests;
  for (int i = 0; i < 3; ++i) {
    const std::string body = SampleBody("payout.paid", "", false, absl::StrCat("evt_pipe", i));
    absl::StrAppend(
        &requests, "POST /webhook HTTP/1.1\r\nHost: x\r\n",
        "Content-Type: application/json\r\nStripe-Signature: ",
        MakeStripeSignatureHeader({kTestSecret}, absl::ToUnixSeconds(absl::Now()), body),
        "\r\nContent-Length: ", body.size(), "\r\n", i == 2 ? "Connection: close\r\n" : "", "\r\n",
        body);
  }
  ASSERT_TRUE(conn.Send(requests));
  auto [responses, closed] = conn.ReadUntilClosed(absl::Seconds(30));
  EXPECT_TRUE(closed);
  size_t at = 0;
  for (int i = 0; i < 3; ++i) {
    at = responses.find(absl::StrCat("\"id\":\"evt_pipe", i, "\""), at);
    ASSERT_NE(at, std::string::npos) << "response " << i << " missing or out of order:\n"
                                     << responses;
  }
}

TEST_F(E2eTest, ExpectContinueGetsAGoAheadBeforeTheBody) {
  StartServer();
  RawConnection conn(server_->http_address());
  ASSERT_TRUE(conn.connected());
  const std::string body = SampleBody("payout.paid", "", false, "evt_expect");
  ASSERT_TRUE(conn.Send(
      absl::StrCat("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
                   "Expect: 100-continue\r\nConnection: close\r\nStripe-Signature: ",
                   MakeStripeSignatureHeader({kTestSecret}, absl::ToUnixSeconds(absl::Now()), body),
                   "\r\nContent-Length: ", body.size(), "\r\n\r\n")));
  std::string got;
  while (got.find("\r\n\r\n") == std::string::npos) {
    std::string chunk = conn.ReadSome(absl::Seconds(10));
    ASSERT_FALSE(chunk.empty()) << "no 100 Continue; got: " << got;
    got += chunk;
  }
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 100 Continue")) << got;
  ASSERT_TRUE(conn.Send(body));
  auto [response, closed] = conn.ReadUntilClosed(absl::Seconds(30));
  EXPECT_THAT(got + response, HasSubstr("\"id\":\"evt_expect\""));
}

TEST(E2eConfigTest, BadConfigurationExitsNonZeroWithAHint) {
  const std::string dir = MakeTempDir("cfg");
  struct Case {
    const char* name;
    std::vector<std::string> args;
    std::vector<std::string> env;
    const char* hint;
  };
  const std::vector<Case> cases = {
      {"no secret",
       {"--data_dir=" + dir, "--http_listen=127.0.0.1:0", "--grpc_listen=127.0.0.1:0"},
       {},
       "no webhook signing secret"},
      {"zero tolerance",
       {"--data_dir=" + dir, "--signature_tolerance=0s", "--http_listen=127.0.0.1:0",
        "--grpc_listen=127.0.0.1:0"},
       {"SIDESTREAM_WEBHOOK_SECRETS=whsec_x"},
       "signature_tolerance"},
      {"bad address",
       {"--data_dir=" + dir, "--http_listen=nowhere"},
       {"SIDESTREAM_WEBHOOK_SECRETS=whsec_x"},
       "http_listen"},
      {"remote gRPC without TLS or tokens",
       {"--data_dir=" + dir, "--http_listen=127.0.0.1:0", "--grpc_listen=0.0.0.0:0"},
       {"SIDESTREAM_WEBHOOK_SECRETS=whsec_x"},
       "allow_insecure_remote"},
      {"unwritable data dir",
       {"--data_dir=/proc/sidestream-cannot-exist", "--http_listen=127.0.0.1:0",
        "--grpc_listen=127.0.0.1:0"},
       {"SIDESTREAM_WEBHOOK_SECRETS=whsec_x"},
       "/proc/sidestream-cannot-exist"},
      {"env flag",
       {"--data_dir=" + dir},
       {"SIDESTREAM_WEBHOOK_SECRETS=whsec_x", "SIDESTREAM_SIGNATURE_TOLERANCE=-5s"},
       "signature_tolerance"},
  };
  for (const Case& c : cases) {
    ServerProcess::Exit exit = ServerProcess::RunToExit(c.args, c.env, absl::Seconds(30));
    EXPECT_NE(exit.code, 0) << c.name;
    EXPECT_THAT(exit.stderr_text, HasSubstr(c.hint)) << c.name;
  }
}

}  // namespace
}  // namespace sidestream::testing
