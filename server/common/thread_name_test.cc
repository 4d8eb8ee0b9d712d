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

// The name a new thread reads back after setting `name` on itself.
std::string NameReadBackAfterSetting(const std::string& name) {
  std::string seen;
  std::thread t([&] {
    SetCurrentThreadName(name);
    seen = CurrentThreadName();
  });
  t.join();
  return seen;
}

TEST(ThreadNameTest, NamesTheCallingThread) {
  EXPECT_EQ(NameReadBackAfterSetting("ss-log-writer"), "ss-log-writer");
}

TEST(ThreadNameTest, CutsANameLongerThanLinuxKeeps) {
  // The first 15 bytes.
  EXPECT_EQ(NameReadBackAfterSetting("ss-a-name-longer-than-fifteen-bytes"), "ss-a-name-longe");
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
