// Hostile gRPC requests: invalid filters, absurd page sizes, unknown start
// positions, cursors from another epoch or beyond the head, undecodable
// request bytes, and 2,000 concurrent Subscribe calls cancelled at once.
// Each gets a clear status; the server stays alive and keeps serving.
#include <climits>
#include <iostream>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include <grpcpp/generic/generic_stub.h>

#include "tests/load/load_util.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

class HostileGrpcTest : public ::testing::Test {
 protected:
  void StartServer() {
    ServerProcessOptions options;
    options.data_dir = MakeTempDir("hostile-grpc");
    options.args = {"--log_level=error"};
    absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
  }

  void SendEvents(int n, const std::string& prefix) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<HttpResponse> r =
          PostWebhook(server_->webhook_url(),
                      SampleBody(i % 2 ? "payout.paid" : "account.updated", i % 3 ? "acct_1G" : "",
                                 i % 2, absl::StrCat(prefix, i)));
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->status_code, 200) << r->body;
    }
  }

  // The server is alive, takes a webhook and streams it to a new subscriber.
  void ExpectHealthy(const std::string& id) {
    EXPECT_TRUE(ProcessAlive(server_->pid()));
    v1::SubscribeRequest request;
    request.mutable_filter()->add_types("invoice.paid");
    StreamCollector s(server_->grpc_address(), request);
    ASSERT_TRUE(s.WaitForCaughtUp());
    absl::StatusOr<HttpResponse> r =
        PostWebhook(server_->webhook_url(), SampleBody("invoice.paid", "", false, id));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status_code, 200) << r->body;
    ASSERT_TRUE(s.WaitForEvents(1));
    EXPECT_EQ(s.events()[0].id(), id);
  }

  std::unique_ptr<ServerProcess> server_;
};

struct SubscribeCase {
  std::string name;
  v1::SubscribeRequest request;
  grpc::StatusCode code;
};

TEST_F(HostileGrpcTest, BadRequestsGetClearStatusCodes) {
  StartServer();
  SendEvents(5, "evt_g");
  const std::string epoch = server_->epoch();

  auto filter_case = [](std::string name, auto fill, grpc::StatusCode code) {
    v1::SubscribeRequest r;
    fill(r.mutable_filter());
    return SubscribeCase{std::move(name), r, code};
  };
  using F = v1::EventFilter*;
  constexpr grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  constexpr grpc::StatusCode kPrecondition = grpc::StatusCode::FAILED_PRECONDITION;
  std::vector<SubscribeCase> cases = {
      filter_case(
          "type with a trailing dot", [](F f) { f->add_types("payout."); }, kInvalid),
      filter_case(
          "empty type", [](F f) { f->add_types(""); }, kInvalid),
      filter_case(
          "upper-case type", [](F f) { f->add_types("PAYOUT.FAILED"); }, kInvalid),
      filter_case(
          "*.*", [](F f) { f->add_types("*.*"); }, kInvalid),
      filter_case(
          "payout.**", [](F f) { f->add_types("payout.**"); }, kInvalid),
      filter_case(
          "empty token", [](F f) { f->add_types("a..b"); }, kInvalid),
      filter_case(
          "NUL in a type", [](F f) { f->add_types(std::string("pay\0out", 7)); }, kInvalid),
      filter_case(
          "1,001 types",
          [](F f) {
            for (int i = 0; i <= 1000; ++i) f->add_types(absl::StrCat("t", i, ".x"));
          },
          kInvalid),
      filter_case(
          "bogus account", [](F f) { f->add_accounts("bogus"); }, kInvalid),
      filter_case(
          "bare acct_", [](F f) { f->add_accounts("acct_"); }, kInvalid),
      filter_case(
          "account of 300 characters",
          [](F f) { f->add_accounts("acct_" + std::string(300, 'a')); }, kInvalid),
      filter_case(
          "1,001 accounts",
          [](F f) {
            for (int i = 0; i <= 1000; ++i) f->add_accounts(absl::StrCat("acct_", i));
          },
          kInvalid),
      filter_case(
          "accounts with ORIGIN_PLATFORM",
          [](F f) {
            f->add_accounts("acct_1G");
            f->set_origin(v1::ORIGIN_PLATFORM);
          },
          kInvalid),
      filter_case(
          "origin 99", [](F f) { f->set_origin(static_cast<v1::Origin>(99)); }, kInvalid),
      filter_case(
          "livemode -1", [](F f) { f->set_livemode(static_cast<v1::Livemode>(-1)); }, kInvalid),
  };
  {
    v1::SubscribeRequest r;
    r.set_position(static_cast<v1::StartPosition>(7));
    cases.push_back({"start position 7", r, kInvalid});
    r.set_position(static_cast<v1::StartPosition>(-1));
    cases.push_back({"start position -1", r, kInvalid});
  }
  {
    v1::SubscribeRequest r;
    r.set_after_sequence(1000);
    cases.push_back({"cursor beyond the head", r, kPrecondition});
    r.set_after_sequence(UINT64_MAX);
    cases.push_back({"cursor 2^64-1", r, kPrecondition});
    r.set_after_sequence(1);
    r.set_log_epoch("0123456789abcdef0123456789abcdef");
    cases.push_back({"cursor from another epoch", r, kPrecondition});
    r.set_log_epoch(std::string(100000, 'e'));
    cases.push_back({"100 KB epoch", r, kPrecondition});
  }
  {
    v1::SubscribeRequest r;
    r.mutable_start_time()->set_seconds(1);
    r.mutable_start_time()->set_nanos(-1);
    cases.push_back({"start_time with negative nanos", r, kInvalid});
    r.mutable_start_time()->set_nanos(0);
    r.mutable_start_time()->set_seconds(INT64_MAX);
    cases.push_back({"start_time at 2^63-1 s", r, kInvalid});
    r.mutable_start_time()->set_seconds(INT64_MIN);
    cases.push_back({"start_time at -2^63 s", r, kInvalid});
  }
  for (const SubscribeCase& c : cases) {
    SCOPED_TRACE(c.name);
    StreamCollector s(server_->grpc_address(), c.request);
    ASSERT_TRUE(s.WaitForEnd(absl::Seconds(10)));
    EXPECT_EQ(s.status().error_code(), c.code) << s.status().error_message();
    EXPECT_FALSE(s.status().error_message().empty());
    EXPECT_TRUE(s.events().empty());
  }

  // Odd but valid: the longest type there is (255 characters), and a start
  // time far in the future (starts at the head).
  {
    v1::SubscribeRequest r;
    r.mutable_filter()->add_types(std::string(127, 'a') + "." + std::string(127, 'b'));
    StreamCollector s(server_->grpc_address(), r);
    EXPECT_TRUE(s.WaitForCaughtUp(absl::Seconds(10))) << s.status().error_message();
  }
  {
    v1::SubscribeRequest r;
    r.mutable_start_time()->set_seconds(absl::ToUnixSeconds(absl::Now()) + 86400 * 365);
    StreamCollector s(server_->grpc_address(), r);
    EXPECT_TRUE(s.WaitForCaughtUp(absl::Seconds(10))) << s.status().error_message();
    EXPECT_TRUE(s.events().empty());
  }

  // ListEvents: page sizes, page tokens, positions.
  auto stub = EventsStub(server_->grpc_address());
  struct ListCase {
    std::string name;
    v1::ListEventsRequest request;
    grpc::StatusCode code;
  };
  std::vector<ListCase> list_cases;
  {
    v1::ListEventsRequest r;
    r.set_page_size(-1);
    list_cases.push_back({"page size -1", r, kInvalid});
    r.set_page_size(INT32_MIN);
    list_cases.push_back({"page size -2^31", r, kInvalid});
    r.set_page_size(INT32_MAX);
    list_cases.push_back({"page size 2^31-1", r, grpc::StatusCode::OK});
  }
  {
    v1::ListEventsRequest r;
    r.set_page_token("not a token!");
    list_cases.push_back({"garbage page token", r, kInvalid});
    r.set_page_token(absl::WebSafeBase64Escape("x:y"));
    list_cases.push_back({"page token with a bad cursor", r, kInvalid});
    r.set_page_token(absl::WebSafeBase64Escape(absl::StrCat(epoch, ":1:2")));
    list_cases.push_back({"page token with three parts", r, kInvalid});
    r.set_page_token(absl::WebSafeBase64Escape("0123456789abcdef0123456789abcdef:1"));
    list_cases.push_back({"page token from another epoch", r, kPrecondition});
    r.set_page_token(absl::WebSafeBase64Escape(absl::StrCat(epoch, ":18446744073709551615")));
    list_cases.push_back({"page token beyond the head", r, kPrecondition});
    r.set_page_token(std::string(1 << 20, 'A'));
    list_cases.push_back({"1 MB page token", r, kInvalid});
  }
  {
    v1::ListEventsRequest r;
    r.set_position(static_cast<v1::StartPosition>(7));
    list_cases.push_back({"list start position 7", r, kInvalid});
    r.set_after_sequence(99999);
    list_cases.push_back({"list cursor beyond the head", r, kPrecondition});
    r.mutable_filter()->add_types("payout.");
    list_cases.push_back({"list with an invalid filter", r, kInvalid});
  }
  for (const ListCase& c : list_cases) {
    SCOPED_TRACE(c.name);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListEventsResponse response;
    grpc::Status s = stub->ListEvents(&ctx, c.request, &response);
    EXPECT_EQ(s.error_code(), c.code) << s.error_message();
    if (c.code == grpc::StatusCode::OK) {
      EXPECT_EQ(response.events_size(), 5);
      EXPECT_TRUE(response.next_page_token().empty());
    } else {
      EXPECT_FALSE(s.error_message().empty());
    }
  }

  // GetEvent with odd ids.
  struct GetCase {
    std::string id;
    grpc::StatusCode code;
  };
  for (const GetCase& c :
       std::vector<GetCase>{{"", kInvalid},
                            {std::string(1 << 20, 'e'), grpc::StatusCode::NOT_FOUND},
                            {std::string("evt_g1\0x", 8), grpc::StatusCode::NOT_FOUND},
                            {"evt_g1' OR '1'='1", grpc::StatusCode::NOT_FOUND}}) {
    SCOPED_TRACE(absl::CHexEscape(c.id.substr(0, 40)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetEventRequest request;
    request.set_id(c.id);
    v1::GetEventResponse response;
    EXPECT_EQ(stub->GetEvent(&ctx, request, &response).error_code(), c.code);
  }

  // Bytes that are not a SubscribeRequest at all.
  {
    grpc::GenericStub generic(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::CompletionQueue cq;
    // Field 1 (filter) claims 100 bytes but 3 follow.
    const std::string garbage("\x0a\x64\x01\x02\x03", 5);
    grpc::Slice slice(garbage);
    grpc::ByteBuffer request(&slice, 1);
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
        generic.PrepareCall(&ctx, "/sidestream.v1.Events/Subscribe", &cq);
    void* tag = nullptr;
    bool ok = false;
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    call->Write(request, reinterpret_cast<void*>(2));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    call->WritesDone(reinterpret_cast<void*>(3));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(4));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_FALSE(ok) << "no message may come back";
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), kInvalid) << status.error_message();
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }

  ExpectHealthy("evt_g_after");
}

TEST_F(HostileGrpcTest, TwoThousandConcurrentSubscribesThenAllCancelled) {
  constexpr int kStreams = 2000;
  absl::Status fd_limit = EnsureFdLimit(4096);
  ASSERT_TRUE(fd_limit.ok()) << fd_limit;
  StartServer();
  SendEvents(100, "evt_many_before_");
  const long rss_before = server_->RssKib();

  // Two groups of 1,000, each over two HTTP/2 connections (500 streams on
  // each): one replays everything with raw JSON, one waits for new events.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < 4; ++c) channels.push_back(NewChannel(server_->grpc_address()));
  v1::SubscribeRequest replay;
  replay.set_position(v1::START_POSITION_OLDEST);
  replay.set_include_raw_json(true);
  v1::SubscribeRequest live;
  live.mutable_filter()->add_types("payout.*");
  const absl::Time start = absl::Now();
  auto replaying = std::make_unique<StreamGroup>(
      std::vector<std::shared_ptr<grpc::Channel>>{channels[0], channels[1]}, replay, kStreams / 2);
  auto waiting = std::make_unique<StreamGroup>(
      std::vector<std::shared_ptr<grpc::Channel>>{channels[2], channels[3]}, live, kStreams / 2);
  SendEvents(50, "evt_many_during_");  // while the streams start
  ASSERT_TRUE(replaying->WaitForCaughtUp(kStreams / 2, absl::Seconds(120)))
      << replaying->caught_up() << " caught up";
  ASSERT_TRUE(waiting->WaitForCaughtUp(kStreams / 2, absl::Seconds(120)))
      << waiting->caught_up() << " caught up";
  const absl::Duration started_in = absl::Now() - start;
  absl::StatusOr<v1::GetStatsResponse> stats = GetStats(server_->grpc_address());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->subscriptions_size(), kStreams);
  const long rss_loaded = server_->RssKib();

  // Every replaying stream read at least the 100 events from before it
  // started (events during the start may come before or after caught_up).
  EXPECT_GE(replaying->events(), 100u * (kStreams / 2));

  const absl::Time cancel_start = absl::Now();
  replaying->CancelAll();
  waiting->CancelAll();
  ASSERT_TRUE(replaying->WaitForAllDone(absl::Seconds(60)));
  ASSERT_TRUE(waiting->WaitForAllDone(absl::Seconds(60)));
  EXPECT_EQ(replaying->end_codes()[grpc::StatusCode::CANCELLED], static_cast<size_t>(kStreams / 2));
  EXPECT_EQ(waiting->end_codes()[grpc::StatusCode::CANCELLED], static_cast<size_t>(kStreams / 2));
  // The server forgets them.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  int open = -1;
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::GetStatsResponse> s = GetStats(server_->grpc_address());
    ASSERT_TRUE(s.ok()) << s.status();
    open = s->subscriptions_size();
    if (open == 0) break;
    absl::SleepFor(absl::Milliseconds(50));  // polling: the server announces nothing
  }
  EXPECT_EQ(open, 0) << "subscriptions still registered after cancellation";
  const absl::Duration cancelled_in = absl::Now() - cancel_start;
  replaying.reset();
  waiting.reset();

  ExpectHealthy("evt_many_after");
  std::cout << "2000 streams: started and caught up in " << absl::ToDoubleSeconds(started_in)
            << " s, all cancelled and unregistered in " << absl::ToDoubleSeconds(cancelled_in)
            << " s; server RSS " << rss_before / 1024 << " -> " << rss_loaded / 1024 << " -> "
            << server_->RssKib() / 1024 << " MiB\n";
}

}  // namespace
}  // namespace sidestream::testing
