#include "client/subscriber.h"

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>

#include "sidestream/v1/events_service.grpc.pb.h"

namespace sidestream {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What the fake server does with one Subscribe call.
struct StreamScript {
  std::vector<v1::SubscribeResponse> items;
  // How the call ends after the items.
  grpc::Status end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
  // Instead of ending: keep the stream open until the client cancels it.
  bool hold_open = false;
};

StreamScript HoldOpen(std::vector<v1::SubscribeResponse> items = {}) {
  StreamScript script;
  script.items = std::move(items);
  script.hold_open = true;
  return script;
}

StreamScript EndWith(grpc::StatusCode code, std::vector<v1::SubscribeResponse> items = {}) {
  StreamScript script;
  script.items = std::move(items);
  script.end = grpc::Status(code, absl::StrCat("scripted ", static_cast<int>(code)));
  return script;
}

v1::SubscribeResponse Event(uint64_t sequence) {
  v1::SubscribeResponse item;
  item.mutable_event()->set_sequence(sequence);
  item.mutable_event()->set_id(absl::StrCat("evt_", sequence));
  return item;
}

// One `batch` item of the events first..last.
v1::SubscribeResponse Batch(uint64_t first, uint64_t last) {
  v1::SubscribeResponse item;
  for (uint64_t sequence = first; sequence <= last; ++sequence) {
    *item.mutable_batch()->add_events() = Event(sequence).event();
  }
  return item;
}

v1::SubscribeResponse Checkpoint(uint64_t head, absl::string_view epoch) {
  v1::SubscribeResponse item;
  item.mutable_checkpoint()->set_head_sequence(head);
  item.mutable_checkpoint()->set_log_epoch(std::string(epoch));
  return item;
}

v1::SubscribeResponse CaughtUp(uint64_t head, absl::string_view epoch) {
  v1::SubscribeResponse item;
  item.mutable_caught_up()->set_head_sequence(head);
  item.mutable_caught_up()->set_log_epoch(std::string(epoch));
  return item;
}

// An Events service that plays one script per Subscribe call, in order, and
// records the requests. Calls beyond the scripts are held open.
class FakeEvents final : public v1::Events::Service {
 public:
  void AddScript(StreamScript script) {
    absl::MutexLock lock(&mu_);
    scripts_.push_back(std::move(script));
  }

  std::vector<v1::SubscribeRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  // Releases held-open calls so that the server can shut down.
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

  grpc::Status Subscribe(grpc::ServerContext* context, const v1::SubscribeRequest* request,
                         grpc::ServerWriter<v1::SubscribeResponse>* writer) override {
    StreamScript script;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*request);
      if (scripts_.empty()) {
        script.hold_open = true;
      } else {
        script = std::move(scripts_.front());
        scripts_.pop_front();
      }
    }
    for (const v1::SubscribeResponse& item : script.items) {
      if (!writer->Write(item)) return grpc::Status::CANCELLED;
    }
    if (!script.hold_open) return script.end;
    // The sync API has no cancellation callback: check for it while
    // waiting for the fixture's release.
    absl::MutexLock lock(&mu_);
    while (!released_ && !context->IsCancelled()) {
      mu_.AwaitWithTimeout(absl::Condition(&released_), absl::Milliseconds(5));
    }
    return grpc::Status::CANCELLED;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<StreamScript> scripts_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SubscribeRequest> requests_ ABSL_GUARDED_BY(mu_);
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

class SubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void TearDown() override {
    service_.Release();
    server_->Shutdown();
  }

  // Options for the fake server, with short backoffs to keep tests fast.
  SubscriberOptions Options() const {
    SubscriberOptions options;
    options.target = absl::StrCat("127.0.0.1:", port_);
    options.initial_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(4);
    return options;
  }

  std::unique_ptr<Subscriber> Make(SubscriberOptions options) {
    absl::StatusOr<std::unique_ptr<Subscriber>> subscriber = Subscriber::Create(std::move(options));
    EXPECT_TRUE(subscriber.ok()) << subscriber.status();
    return subscriber.ok() ? *std::move(subscriber) : nullptr;
  }

  FakeEvents service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// Runs `subscriber` until an event with `last_sequence` arrives, returning
// the event sequences delivered.
std::vector<uint64_t> RunUntilEvent(Subscriber& subscriber, uint64_t last_sequence,
                                    absl::Status* status) {
  std::vector<uint64_t> sequences;
  *status = subscriber.Run([&](const v1::SubscribeResponse& item) {
    if (!item.has_event()) return;
    sequences.push_back(item.event().sequence());
    if (item.event().sequence() == last_sequence) subscriber.Stop();
  });
  return sequences;
}

TEST_F(SubscriberTest, ResumesAfterCursorAndEpochAcrossBrokenStreams) {
  service_.AddScript(
      EndWith(grpc::StatusCode::UNAVAILABLE, {CaughtUp(5, "E"), Event(6), Event(7)}));
  service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE, {Event(8), Checkpoint(12, "E")}));
  service_.AddScript(HoldOpen({Event(13)}));
  SubscriberOptions options = Options();
  options.filter.add_types("payout.*");
  options.include_raw_json = true;
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);

  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 13, &status), ElementsAre(6, 7, 8, 13));
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(subscriber->cursor(), 13u);
  EXPECT_EQ(subscriber->log_epoch(), "E");
  EXPECT_EQ(subscriber->reconnects(), 2);

  std::vector<v1::SubscribeRequest> requests = service_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].start_case(), v1::SubscribeRequest::kPosition);
  EXPECT_EQ(requests[0].position(), v1::START_POSITION_LATEST);
  EXPECT_EQ(requests[0].log_epoch(), "");
  EXPECT_EQ(requests[1].after_sequence(), 7u);
  EXPECT_EQ(requests[1].log_epoch(), "E");
  EXPECT_EQ(requests[2].after_sequence(), 12u);
  EXPECT_EQ(requests[2].log_epoch(), "E");
  for (const v1::SubscribeRequest& request : requests) {
    EXPECT_THAT(request.filter().types(), ElementsAre("payout.*"));
    EXPECT_TRUE(request.include_raw_json());
  }
}

TEST_F(SubscriberTest, UsesOriginalStartUntilACursorIsKnown) {
  service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE));
  service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE));
  service_.AddScript(HoldOpen({Event(3)}));
  SubscriberOptions options = Options();
  options.start_time = absl::FromUnixSeconds(1700000000) + absl::Milliseconds(250);
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);
  EXPECT_EQ(subscriber->cursor(), std::nullopt);

  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 3, &status), ElementsAre(3));
  EXPECT_TRUE(status.ok()) << status;

  std::vector<v1::SubscribeRequest> requests = service_.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const v1::SubscribeRequest& request : requests) {
    ASSERT_EQ(request.start_case(), v1::SubscribeRequest::kStartTime);
    EXPECT_EQ(request.start_time().seconds(), 1700000000);
    EXPECT_EQ(request.start_time().nanos(), 250000000);
  }
}

TEST_F(SubscriberTest, StartsAfterTheGivenCursorAndEpoch) {
  service_.AddScript(HoldOpen({Event(42)}));
  SubscriberOptions options = Options();
  options.after_sequence = 41;
  options.log_epoch = "E1";
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);
  EXPECT_EQ(subscriber->cursor(), 41u);
  EXPECT_EQ(subscriber->log_epoch(), "E1");

  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 42, &status), ElementsAre(42));
  std::vector<v1::SubscribeRequest> requests = service_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].start_case(), v1::SubscribeRequest::kAfterSequence);
  EXPECT_EQ(requests[0].after_sequence(), 41u);
  EXPECT_EQ(requests[0].log_epoch(), "E1");
}

TEST_F(SubscriberTest, RetriesEveryRetryableEnding) {
  const std::vector<grpc::StatusCode> retryable = {grpc::StatusCode::UNAVAILABLE,
                                                   grpc::StatusCode::DEADLINE_EXCEEDED,
                                                   grpc::StatusCode::ABORTED,
                                                   grpc::StatusCode::INTERNAL,
                                                   grpc::StatusCode::RESOURCE_EXHAUSTED,
                                                   grpc::StatusCode::UNKNOWN,
                                                   grpc::StatusCode::OK};
  for (grpc::StatusCode code : retryable) service_.AddScript(EndWith(code));
  service_.AddScript(HoldOpen({Event(1)}));
  std::vector<absl::StatusCode> causes;
  SubscriberOptions options = Options();
  options.on_retry = [&causes](const absl::Status& cause, absl::Duration) {
    causes.push_back(cause.code());
  };
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);

  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 1, &status), ElementsAre(1));
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(service_.requests().size(), retryable.size() + 1);
  EXPECT_EQ(subscriber->reconnects(), static_cast<int>(retryable.size()));
  // A clean end of stream is reported as UNAVAILABLE.
  EXPECT_THAT(causes, ElementsAre(absl::StatusCode::kUnavailable,
                                  absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kAborted,
                                  absl::StatusCode::kInternal, absl::StatusCode::kResourceExhausted,
                                  absl::StatusCode::kUnknown, absl::StatusCode::kUnavailable));
}

TEST_F(SubscriberTest, ReturnsNonRetryableStatusesWithoutRetrying) {
  const std::vector<grpc::StatusCode> fatal = {grpc::StatusCode::INVALID_ARGUMENT,
                                               grpc::StatusCode::OUT_OF_RANGE,
                                               grpc::StatusCode::FAILED_PRECONDITION,
                                               grpc::StatusCode::PERMISSION_DENIED,
                                               grpc::StatusCode::UNAUTHENTICATED,
                                               grpc::StatusCode::UNIMPLEMENTED,
                                               grpc::StatusCode::NOT_FOUND};
  size_t expected_requests = 0;
  for (grpc::StatusCode code : fatal) {
    service_.AddScript(EndWith(code));
    std::unique_ptr<Subscriber> subscriber = Make(Options());
    ASSERT_NE(subscriber, nullptr);
    absl::Status status = subscriber->Run([](const v1::SubscribeResponse&) {});
    EXPECT_EQ(status.code(), static_cast<absl::StatusCode>(code));
    EXPECT_EQ(status.message(), absl::StrCat("scripted ", static_cast<int>(code)));
    EXPECT_EQ(service_.requests().size(), ++expected_requests) << status;
    EXPECT_EQ(subscriber->reconnects(), 0);
  }
}

TEST_F(SubscriberTest, GivesUpAfterMaxAttemptsWithGrowingBackoff) {
  for (int i = 0; i < 3; ++i) service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE));
  std::vector<absl::Duration> delays;
  SubscriberOptions options = Options();
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(100);
  options.max_attempts = 3;
  options.on_retry = [&delays](const absl::Status&, absl::Duration delay) {
    delays.push_back(delay);
  };
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);

  absl::Status status = subscriber->Run([](const v1::SubscribeResponse&) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(service_.requests().size(), 3u);
  // 10 ms, then 20 ms, each +-20%.
  ASSERT_EQ(delays.size(), 2u);
  EXPECT_GE(delays[0], absl::Milliseconds(8));
  EXPECT_LE(delays[0], absl::Milliseconds(12));
  EXPECT_GE(delays[1], absl::Milliseconds(16));
  EXPECT_LE(delays[1], absl::Milliseconds(24));
}

TEST_F(SubscriberTest, BackoffIsCappedAndResetByAHealthyStream) {
  for (int i = 0; i < 4; ++i) service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE));
  service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE, {Event(1)}));
  service_.AddScript(HoldOpen({Event(2)}));
  std::vector<absl::Duration> delays;
  SubscriberOptions options = Options();
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(25);
  options.on_retry = [&delays](const absl::Status&, absl::Duration delay) {
    delays.push_back(delay);
  };
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);

  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 2, &status), ElementsAre(1, 2));
  // Nominal 10, 20, 25, 25 ms, then 10 ms after the stream that delivered.
  const std::vector<absl::Duration> nominal = {absl::Milliseconds(10), absl::Milliseconds(20),
                                               absl::Milliseconds(25), absl::Milliseconds(25),
                                               absl::Milliseconds(10)};
  ASSERT_EQ(delays.size(), nominal.size());
  for (size_t i = 0; i < nominal.size(); ++i) {
    EXPECT_GE(delays[i], nominal[i] * 0.8) << i;
    EXPECT_LE(delays[i], nominal[i] * 1.2) << i;
  }
}

TEST_F(SubscriberTest, StopCancelsAnOpenStream) {
  service_.AddScript(HoldOpen({CaughtUp(0, "E")}));
  std::unique_ptr<Subscriber> subscriber = Make(Options());
  ASSERT_NE(subscriber, nullptr);
  absl::Notification caught_up;
  absl::Notification returned;
  absl::Status status = absl::UnknownError("not returned");
  std::thread runner([&] {
    status = subscriber->Run([&](const v1::SubscribeResponse& item) {
      if (item.has_caught_up()) caught_up.Notify();
    });
    returned.Notify();
  });
  ASSERT_TRUE(caught_up.WaitForNotificationWithTimeout(absl::Seconds(10)));
  subscriber->Stop();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(absl::Seconds(10)));
  runner.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(subscriber->cursor(), 0u);
}

TEST_F(SubscriberTest, NothingIsDeliveredAfterStop) {
  std::vector<v1::SubscribeResponse> burst;
  for (uint64_t sequence = 1; sequence <= 200; ++sequence) burst.push_back(Event(sequence));
  service_.AddScript(HoldOpen(std::move(burst)));
  std::unique_ptr<Subscriber> subscriber = Make(Options());
  ASSERT_NE(subscriber, nullptr);
  // Stops on the first event, while the rest are already in flight.
  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 1, &status), ElementsAre(1));
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(subscriber->cursor(), 1u);
}

TEST_F(SubscriberTest, BatchesAreAskedForAndHandedOutOneEventAtATime) {
  service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE, {Batch(1, 3), Event(4), Batch(5, 6)}));
  service_.AddScript(HoldOpen({Batch(7, 8)}));
  std::unique_ptr<Subscriber> subscriber = Make(Options());
  ASSERT_NE(subscriber, nullptr);
  std::vector<uint64_t> cursors;  // cursor() while each event is handled
  absl::Status status;
  std::vector<uint64_t> sequences;
  status = subscriber->Run([&](const v1::SubscribeResponse& item) {
    ASSERT_TRUE(item.has_event()) << "the callback saw a " << item.item_case();
    sequences.push_back(item.event().sequence());
    cursors.push_back(subscriber->cursor().value_or(0));
    if (item.event().sequence() == 8) subscriber->Stop();
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(sequences, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_EQ(cursors, sequences);
  const std::vector<v1::SubscribeRequest> requests = service_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].max_batch_events(), 256u);
  EXPECT_EQ(requests[1].after_sequence(), 6u);  // resumed after the last event of a batch
}

TEST_F(SubscriberTest, NothingIsDeliveredAfterStopInsideABatch) {
  service_.AddScript(HoldOpen({Batch(1, 100)}));
  std::unique_ptr<Subscriber> subscriber = Make(Options());
  ASSERT_NE(subscriber, nullptr);
  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 2, &status), ElementsAre(1, 2));
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(subscriber->cursor(), 2u);
}

TEST_F(SubscriberTest, StopCutsTheBackoffWaitShort) {
  service_.AddScript(EndWith(grpc::StatusCode::UNAVAILABLE));
  absl::Notification waiting;
  SubscriberOptions options = Options();
  options.initial_backoff = absl::Hours(1);
  options.max_backoff = absl::Hours(1);
  options.on_retry = [&waiting](const absl::Status&, absl::Duration) { waiting.Notify(); };
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);
  absl::Notification returned;
  absl::Status status = absl::UnknownError("not returned");
  std::thread runner([&] {
    status = subscriber->Run([](const v1::SubscribeResponse&) {});
    returned.Notify();
  });
  ASSERT_TRUE(waiting.WaitForNotificationWithTimeout(absl::Seconds(10)));
  subscriber->Stop();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(absl::Seconds(10)));
  runner.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(service_.requests().size(), 1u);
}

TEST_F(SubscriberTest, StopBeforeRunReturnsAtOnce) {
  std::unique_ptr<Subscriber> subscriber = Make(Options());
  ASSERT_NE(subscriber, nullptr);
  subscriber->Stop();
  EXPECT_TRUE(subscriber->Run([](const v1::SubscribeResponse&) {}).ok());
  EXPECT_TRUE(service_.requests().empty());
}

TEST_F(SubscriberTest, ReopensAStreamThatStaysSilent) {
  service_.AddScript(HoldOpen());  // Never sends anything.
  service_.AddScript(HoldOpen({Event(1)}));
  std::vector<std::string> causes;
  SubscriberOptions options = Options();
  options.idle_timeout = absl::Milliseconds(200);
  options.on_retry = [&causes](const absl::Status& cause, absl::Duration) {
    causes.push_back(cause.ToString());
  };
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);

  absl::Status status;
  EXPECT_THAT(RunUntilEvent(*subscriber, 1, &status), ElementsAre(1));
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_THAT(causes[0], HasSubstr("no message from the server"));
  EXPECT_EQ(service_.requests().size(), 2u);
}

TEST_F(SubscriberTest, UnreachableServerIsRetriedThenReported) {
  SubscriberOptions options = Options();
  options.target = "127.0.0.1:1";  // Nothing listens on port 1.
  options.max_attempts = 2;
  std::unique_ptr<Subscriber> subscriber = Make(options);
  ASSERT_NE(subscriber, nullptr);
  absl::Status status = subscriber->Run([](const v1::SubscribeResponse&) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(subscriber->reconnects(), 1);
}

TEST(SubscriberCreateTest, RejectsInconsistentOptions) {
  auto invalid = [](auto mutate) {
    SubscriberOptions options;
    mutate(options);
    return Subscriber::Create(options).status().code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid([](SubscriberOptions& o) { o.target = ""; }));
  EXPECT_TRUE(invalid([](SubscriberOptions& o) {
    o.after_sequence = 1;
    o.start_time = absl::Now();
  }));
  EXPECT_TRUE(invalid([](SubscriberOptions& o) { o.log_epoch = "E"; }));
  EXPECT_TRUE(invalid([](SubscriberOptions& o) { o.start_time = absl::InfiniteFuture(); }));
  EXPECT_TRUE(invalid([](SubscriberOptions& o) { o.initial_backoff = absl::ZeroDuration(); }));
  EXPECT_TRUE(invalid([](SubscriberOptions& o) {
    o.initial_backoff = absl::Seconds(2);
    o.max_backoff = absl::Seconds(1);
  }));
  EXPECT_TRUE(invalid([](SubscriberOptions& o) { o.max_attempts = -1; }));
  EXPECT_TRUE(invalid([](SubscriberOptions& o) { o.idle_timeout = absl::Seconds(-1); }));
  EXPECT_FALSE(invalid([](SubscriberOptions&) {}));
}

}  // namespace
}  // namespace sidestream
