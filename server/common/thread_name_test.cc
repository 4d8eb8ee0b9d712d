#include "server/common/thread_name.h"

#include <pthread.h>

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include <gtest/gtest.h>

#include "server/common/work_queue.h"

namespace sidestream {
namespace {

std::string CurrentThreadName() {
  char name[64] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0) return "<error>";
  return name;
}

TEST(ThreadNameTest, NamesTheCallingThread) {
  std::string seen;
  std::thread t([&seen] {
    SetCurrentThreadName("ss-log-writer");
    seen = CurrentThreadName();
  });
  t.join();
  EXPECT_EQ(seen, "ss-log-writer");
}

TEST(ThreadNameTest, CutsANameLongerThanLinuxKeeps) {
  std::string seen;
  std::thread t([&seen] {
    SetCurrentThreadName("ss-a-name-longer-than-fifteen-bytes");
    seen = CurrentThreadName();
  });
  t.join();
  EXPECT_EQ(seen, "ss-a-name-longe");  // the first 15 bytes
}

TEST(ThreadNameTest, WorkQueueThreadsCarryTheQueuesName) {
  std::string seen;
  absl::Notification ran;
  {
    WorkQueue queue(2, "ss-reader");
    queue.Submit([&] {
      seen = CurrentThreadName();
      ran.Notify();
    });
    ran.WaitForNotification();
  }
  EXPECT_EQ(seen, "ss-reader");
}

}  // namespace
}  // namespace sidestream
