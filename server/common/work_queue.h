// WorkQueue: a fixed set of threads running submitted tasks in FIFO order.
// Used for blocking work (log reads for catching-up subscribers, unary RPCs
// that read the log) so that gRPC reactions and the HTTP event loop never
// block. Thread-safe.
#ifndef SIDESTREAM_SERVER_COMMON_WORK_QUEUE_H_
#define SIDESTREAM_SERVER_COMMON_WORK_QUEUE_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace sidestream {

class WorkQueue {
 public:
  // Starts `threads` (>= 1) workers, each named `name` (SetCurrentThreadName).
  WorkQueue(int threads, std::string name);
  // Runs every task already submitted, then joins the workers.
  ~WorkQueue();

  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `task`. Tasks submitted after destruction began are dropped.
  void Submit(absl::AnyInvocable<void() &&> task);

 private:
  void Loop(const std::string& name);

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_WORK_QUEUE_H_
