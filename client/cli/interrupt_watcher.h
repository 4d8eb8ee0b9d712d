// Runs a callback when the user presses Ctrl-C (SIGINT) or the process gets
// SIGTERM, on a thread of its own: the callback may lock mutexes and call
// gRPC, which a signal handler must not. A second signal terminates the
// process as usual, so a stuck shutdown can still be interrupted.
#ifndef SIDESTREAM_CLIENT_CLI_INTERRUPT_WATCHER_H_
#define SIDESTREAM_CLIENT_CLI_INTERRUPT_WATCHER_H_

#include <atomic>
#include <functional>
#include <thread>

namespace sidestream::cli {

// At most one instance may exist at a time (signal dispositions are
// process-wide).
class InterruptWatcher {
 public:
  // Installs the handlers. `on_interrupt` runs at most once.
  explicit InterruptWatcher(std::function<void()> on_interrupt);
  // Restores the default handlers and joins the thread.
  ~InterruptWatcher();

  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  // Whether a signal arrived.
  bool interrupted() const { return interrupted_.load(); }

 private:
  void Watch();

  const std::function<void()> on_interrupt_;
  std::atomic<bool> interrupted_{false};
  // The handler writes to pipe_[1]; the thread reads pipe_[0].
  int pipe_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace sidestream::cli

#endif  // SIDESTREAM_CLIENT_CLI_INTERRUPT_WATCHER_H_
