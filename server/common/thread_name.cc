#include "server/common/thread_name.h"

#include <pthread.h>

#include <string>

namespace sidestream {

void SetCurrentThreadName(absl::string_view name) {
  constexpr size_t kMaxNameBytes = 15;  // TASK_COMM_LEN - 1
  const std::string cut(name.substr(0, kMaxNameBytes));
  // Best effort: a name is a diagnostic aid, never a reason to fail.
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace sidestream
