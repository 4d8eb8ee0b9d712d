#include "server/hub/event_hub.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sidestream {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// How long a test waits for something that should happen at once.
constexpr absl::Duration kDeadline = absl::Seconds(10);

EventRecordPtr Record(uint64_t sequence, size_t event_bytes = 10, size_t raw_bytes = 0) {
  auto record = std::make_shared<EventRecord>();
  record->sequence = sequence;
  record->id = absl::StrCat("evt_", sequence);
  record->type = "payout.failed";
  record->event_bytes.assign(event_bytes, 'e');
  record->raw_json.assign(raw_bytes, 'r');
  return record;
}

std::vector<EventRecordPtr> Records(uint64_t first, uint64_t last, size_t event_bytes = 10) {
  std::vector<EventRecordPtr> records;
  for (uint64_t s = first; s <= last; ++s) records.push_back(Record(s, event_bytes));
  return records;
}

std::vector<uint64_t> Sequences(const std::vector<EventRecordPtr>& records) {
  std::vector<uint64_t> sequences;
  for (const EventRecordPtr& r : records) sequences.push_back(r->sequence);
  return sequences;
}

// The sequences of every record of the window, oldest first, read by walking
// ReadAfter from `cursor`.
std::vector<uint64_t> WindowAfter(const EventHub& hub, uint64_t cursor) {
  return Sequences(hub.ReadAfter(cursor, 1 << 20).records);
}

class CountingWaiter : public EventHub::Waiter {
 public:
  void Wake() override {
    absl::MutexLock lock(&mu_);
    ++wakes_;
  }
  int wakes() const {
    absl::MutexLock lock(&mu_);
    return wakes_;
  }

 private:
  mutable absl::Mutex mu_;
  int wakes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs `fn` on its own thread and waits for it up to kDeadline. Returns false
// when it did not finish (a deadlock); the thread is then abandoned, and the
// objects it uses must be leaked by the caller.
bool FinishesInTime(absl::AnyInvocable<void() &&> fn) {
  auto done = std::make_shared<absl::Notification>();
  std::thread thread([fn = std::move(fn), done]() mutable {
    std::move(fn)();
    done->Notify();
  });
  if (done->WaitForNotificationWithTimeout(kDeadline)) {
    thread.join();
    return true;
  }
  thread.detach();
  return false;
}

TEST(EventHubTest, StartsEmptyAtTheGivenHead) {
  EventHub hub(EventHubOptions(), 41);
  EXPECT_EQ(hub.head(), 41u);
  EventHub::Read read = hub.ReadAfter(41, 10);
  EXPECT_FALSE(read.behind);
  EXPECT_THAT(read.records, IsEmpty());
}

TEST(EventHubTest, CursorBeforeAnEmptyWindowIsBehind) {
  // Events up to 41 were stored before the hub started: only the log has them.
  EventHub hub(EventHubOptions(), 41);
  EXPECT_TRUE(hub.ReadAfter(40, 10).behind);
  EXPECT_TRUE(hub.ReadAfter(0, 10).behind);
}

TEST(EventHubTest, ReadAfterReturnsRecordsInOrder) {
  EventHub hub(EventHubOptions(), 0);
  hub.OnAppended(Records(1, 3));
  hub.OnAppended(Records(4, 5));
  EXPECT_EQ(hub.head(), 5u);

  EventHub::Read read = hub.ReadAfter(0, 100);
  EXPECT_FALSE(read.behind);
  EXPECT_THAT(Sequences(read.records), ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(WindowAfter(hub, 2), ElementsAre(3, 4, 5));
  EXPECT_THAT(WindowAfter(hub, 4), ElementsAre(5));
}

TEST(EventHubTest, ReadAfterSharesTheAppendedRecords) {
  EventHub hub(EventHubOptions(), 0);
  std::vector<EventRecordPtr> records = Records(1, 2);
  hub.OnAppended(records);
  EventHub::Read read = hub.ReadAfter(0, 10);
  ASSERT_EQ(read.records.size(), 2u);
  EXPECT_EQ(read.records[0].get(), records[0].get());
  EXPECT_EQ(read.records[1].get(), records[1].get());
}

TEST(EventHubTest, ReadAfterHonoursMax) {
  EventHub hub(EventHubOptions(), 0);
  hub.OnAppended(Records(1, 10));
  EventHub::Read read = hub.ReadAfter(2, 3);
  EXPECT_FALSE(read.behind);
  EXPECT_THAT(Sequences(read.records), ElementsAre(3, 4, 5));
  read = hub.ReadAfter(8, 3);
  EXPECT_THAT(Sequences(read.records), ElementsAre(9, 10));
}

TEST(EventHubTest, CaughtUpCursorGetsNothing) {
  EventHub hub(EventHubOptions(), 0);
  hub.OnAppended(Records(1, 3));
  for (uint64_t cursor : {3u, 4u, 100u}) {
    SCOPED_TRACE(cursor);
    EventHub::Read read = hub.ReadAfter(cursor, 10);
    EXPECT_FALSE(read.behind);
    EXPECT_THAT(read.records, IsEmpty());
  }
}

TEST(EventHubTest, WindowIsBoundedByCount) {
  EventHubOptions options;
  options.max_events = 3;
  EventHub hub(options, 0);
  hub.OnAppended(Records(1, 5));
  EXPECT_EQ(hub.head(), 5u);
  EXPECT_THAT(WindowAfter(hub, 2), ElementsAre(3, 4, 5));
  // 1 and 2 were evicted: a cursor that needs them reads the log.
  EXPECT_TRUE(hub.ReadAfter(1, 10).behind);
  EXPECT_TRUE(hub.ReadAfter(0, 10).behind);
  EXPECT_THAT(hub.ReadAfter(1, 10).records, IsEmpty());

  // One record at a time evicts one at a time.
  hub.OnAppended(Records(6, 6));
  EXPECT_TRUE(hub.ReadAfter(2, 10).behind);
  EXPECT_THAT(WindowAfter(hub, 3), ElementsAre(4, 5, 6));
}

TEST(EventHubTest, WindowIsBoundedByBytesOfEventAndRawJson) {
  EventHubOptions options;
  options.max_bytes = 100;
  EventHub hub(options, 0);
  // 30 + 10 = 40 bytes each: two fit (80), a third would make 120.
  hub.OnAppended({Record(1, 30, 10), Record(2, 30, 10)});
  EXPECT_THAT(WindowAfter(hub, 0), ElementsAre(1, 2));
  hub.OnAppended({Record(3, 30, 10)});
  EXPECT_TRUE(hub.ReadAfter(0, 10).behind);
  EXPECT_THAT(WindowAfter(hub, 1), ElementsAre(2, 3));
}

TEST(EventHubTest, WindowAtExactByteLimitKeepsEverything) {
  EventHubOptions options;
  options.max_bytes = 100;
  EventHub hub(options, 0);
  hub.OnAppended({Record(1, 50), Record(2, 50)});
  EXPECT_THAT(WindowAfter(hub, 0), ElementsAre(1, 2));
}

TEST(EventHubTest, RecordLargerThanTheWindowLeavesItEmptyAndBehind) {
  EventHubOptions options;
  options.max_bytes = 100;
  EventHub hub(options, 0);
  hub.OnAppended({Record(1, 10)});
  hub.OnAppended({Record(2, 500)});
  EXPECT_EQ(hub.head(), 2u);
  // The window is empty but the head moved past the cursor: read the log.
  EventHub::Read read = hub.ReadAfter(1, 10);
  EXPECT_TRUE(read.behind);
  EXPECT_THAT(read.records, IsEmpty());
  EXPECT_TRUE(hub.ReadAfter(0, 10).behind);
  EXPECT_FALSE(hub.ReadAfter(2, 10).behind);

  // The window refills with the next record.
  hub.OnAppended({Record(3, 10)});
  EXPECT_THAT(WindowAfter(hub, 2), ElementsAre(3));
  EXPECT_TRUE(hub.ReadAfter(1, 10).behind);
}

TEST(EventHubTest, BytesAreReleasedOnEviction) {
  // If evicted bytes were not subtracted, the byte bound would evict
  // everything after a while.
  EventHubOptions options;
  options.max_events = 2;
  options.max_bytes = 100;
  EventHub hub(options, 0);
  for (uint64_t s = 1; s <= 50; ++s) hub.OnAppended({Record(s, 40)});
  EXPECT_THAT(WindowAfter(hub, 48), ElementsAre(49, 50));
}

TEST(EventHubTest, GapInSequencesRestartsTheWindow) {
  EventHub hub(EventHubOptions(), 0);
  hub.OnAppended(Records(1, 3));
  hub.OnAppended({Record(7), Record(8)});
  EXPECT_EQ(hub.head(), 8u);
  // The window holds 7 and 8 only: a cursor at 3 must read the log (for
  // whatever 4..6 are), not skip to 7.
  EXPECT_TRUE(hub.ReadAfter(3, 10).behind);
  EXPECT_TRUE(hub.ReadAfter(5, 10).behind);
  EXPECT_TRUE(hub.ReadAfter(0, 10).behind);
  EXPECT_THAT(WindowAfter(hub, 6), ElementsAre(7, 8));
}

TEST(EventHubTest, GapInsideOneBatchRestartsTheWindow) {
  EventHub hub(EventHubOptions(), 0);
  hub.OnAppended({Record(1), Record(2), Record(5), Record(6)});
  EXPECT_TRUE(hub.ReadAfter(2, 10).behind);
  EXPECT_THAT(WindowAfter(hub, 4), ElementsAre(5, 6));
}

TEST(EventHubTest, GapAfterTheStartHead) {
  EventHub hub(EventHubOptions(), 10);
  hub.OnAppended({Record(12)});
  EXPECT_TRUE(hub.ReadAfter(10, 10).behind);
  EXPECT_THAT(WindowAfter(hub, 11), ElementsAre(12));
}

TEST(EventHubTest, AlreadySeenSequencesAreIgnored) {
  EventHub hub(EventHubOptions(), 0);
  hub.OnAppended(Records(1, 3));
  hub.OnAppended({Record(2), Record(3), Record(4)});
  EXPECT_EQ(hub.head(), 4u);
  EXPECT_THAT(WindowAfter(hub, 0), ElementsAre(1, 2, 3, 4));
}

TEST(EventHubTest, EmptyAppendChangesNothingAndWakesNobody) {
  EventHub hub(EventHubOptions(), 5);
  auto waiter = std::make_shared<CountingWaiter>();
  hub.AddWaiter(waiter);
  hub.OnAppended({});
  EXPECT_EQ(hub.head(), 5u);
  EXPECT_EQ(waiter->wakes(), 0);
  hub.RemoveWaiter(waiter.get());
}

TEST(EventHubTest, WaitersAreWokenOnAppend) {
  EventHub hub(EventHubOptions(), 0);
  auto a = std::make_shared<CountingWaiter>();
  auto b = std::make_shared<CountingWaiter>();
  hub.AddWaiter(a);
  hub.AddWaiter(b);
  hub.OnAppended(Records(1, 3));  // one batch, one wake each
  EXPECT_EQ(a->wakes(), 1);
  EXPECT_EQ(b->wakes(), 1);
  hub.OnAppended(Records(4, 4));
  EXPECT_EQ(a->wakes(), 2);
  EXPECT_EQ(b->wakes(), 2);
  hub.RemoveWaiter(a.get());
  hub.RemoveWaiter(b.get());
}

TEST(EventHubTest, RemovedWaiterIsNotWoken) {
  EventHub hub(EventHubOptions(), 0);
  auto a = std::make_shared<CountingWaiter>();
  auto b = std::make_shared<CountingWaiter>();
  hub.AddWaiter(a);
  hub.AddWaiter(b);
  hub.RemoveWaiter(a.get());
  hub.OnAppended(Records(1, 1));
  EXPECT_EQ(a->wakes(), 0);
  EXPECT_EQ(b->wakes(), 1);
  hub.RemoveWaiter(b.get());
  hub.OnAppended(Records(2, 2));
  EXPECT_EQ(b->wakes(), 1);
}

TEST(EventHubTest, HubKeepsWaiterAliveUntilRemoved) {
  EventHub hub(EventHubOptions(), 0);
  auto waiter = std::make_shared<CountingWaiter>();
  std::weak_ptr<CountingWaiter> weak = waiter;
  hub.AddWaiter(waiter);
  waiter.reset();
  ASSERT_FALSE(weak.expired());
  hub.OnAppended(Records(1, 1));
  EXPECT_EQ(weak.lock()->wakes(), 1);
  hub.RemoveWaiter(weak.lock().get());
  EXPECT_TRUE(weak.expired());
}

TEST(EventHubTest, RemovingAnUnknownWaiterIsHarmless) {
  EventHub hub(EventHubOptions(), 0);
  auto a = std::make_shared<CountingWaiter>();
  CountingWaiter never_added;
  hub.AddWaiter(a);
  hub.RemoveWaiter(&never_added);
  hub.OnAppended(Records(1, 1));
  EXPECT_EQ(a->wakes(), 1);
  hub.RemoveWaiter(a.get());
}

TEST(EventHubTest, WokenWaiterSeesTheNewRecords) {
  // The wake comes after the window was updated, so a waiter that reads at
  // once finds what woke it.
  class ReadingWaiter : public EventHub::Waiter {
   public:
    explicit ReadingWaiter(EventHub* hub) : hub_(hub) {}
    void Wake() override { seen = Sequences(hub_->ReadAfter(0, 10).records); }
    std::vector<uint64_t> seen;

   private:
    EventHub* hub_;
  };
  EventHub hub(EventHubOptions(), 0);
  auto waiter = std::make_shared<ReadingWaiter>(&hub);
  hub.AddWaiter(waiter);
  hub.OnAppended(Records(1, 2));
  EXPECT_THAT(waiter->seen, ElementsAre(1, 2));
  hub.RemoveWaiter(waiter.get());
}

// A waiter that calls every hub method from Wake(), as a subscription does
// (ReadAfter, head) or may do (removing itself, registering another).
class ReentrantWaiter : public EventHub::Waiter {
 public:
  explicit ReentrantWaiter(EventHub* hub) : hub_(hub) {}
  void Wake() override {
    read_ = hub_->ReadAfter(0, 10).records.size();
    head_ = hub_->head();
    hub_->AddWaiter(std::make_shared<CountingWaiter>());
    hub_->RemoveWaiter(this);
  }
  size_t read() const { return read_.load(); }
  uint64_t head() const { return head_.load(); }

 private:
  EventHub* const hub_;
  std::atomic<size_t> read_{0};
  std::atomic<uint64_t> head_{0};
};

TEST(EventHubTest, WaiterMayCallBackIntoTheHubFromWake) {
  auto* hub = new EventHub(EventHubOptions(), 0);
  auto waiter = std::make_shared<ReentrantWaiter>(hub);
  hub->AddWaiter(waiter);
  const bool finished = FinishesInTime([hub] { hub->OnAppended(Records(1, 2)); });
  if (!finished) {
    // The appending thread is stuck inside the hub; leak both so it never
    // touches freed memory.
    new std::shared_ptr<ReentrantWaiter>(waiter);
    FAIL() << "OnAppended deadlocked while a waiter called back into the hub";
  }
  EXPECT_EQ(waiter->read(), 2u);
  EXPECT_EQ(waiter->head(), 2u);
  delete hub;
}

TEST(EventHubTest, ConcurrentAppendsAndReadsStayConsistent) {
  EventHubOptions options;
  options.max_events = 16;
  EventHub hub(options, 0);
  constexpr uint64_t kLast = 2000;
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> reached{0};
  std::thread reader([&] {
    const absl::Time deadline = absl::Now() + kDeadline;
    uint64_t cursor = 0;
    while (cursor < kLast && !failed.load() && absl::Now() < deadline) {
      EventHub::Read read = hub.ReadAfter(cursor, 8);
      if (read.behind) {
        // Skip to the start of the window, as a subscription would after
        // reading the log.
        std::vector<uint64_t> window = WindowAfter(hub, hub.head() > 16 ? hub.head() - 16 : 0);
        if (!window.empty()) cursor = window.front() - 1;
        continue;
      }
      for (const EventRecordPtr& r : read.records) {
        if (r->sequence != cursor + 1) failed = true;
        cursor = r->sequence;
      }
    }
    reached = cursor;
  });
  for (uint64_t s = 1; s <= kLast; ++s) hub.OnAppended({Record(s)});
  reader.join();
  EXPECT_FALSE(failed.load()) << "ReadAfter returned records out of order or with a gap";
  EXPECT_EQ(reached.load(), kLast) << "the reader never caught up with the head";
  EXPECT_EQ(hub.head(), kLast);
}

}  // namespace
}  // namespace sidestream
