#include "client/cli/interrupt_watcher.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace sidestream::cli {
namespace {

// The write end of the active watcher's pipe, for the signal handler.
std::atomic<int> g_signal_fd{-1};

constexpr char kSignalByte = 's';
constexpr char kQuitByte = 'q';

// Async-signal-safe: write(2) only. SA_RESETHAND has already restored the
// default action, so the next signal terminates the process.
extern "C" void HandleSignal(int) {
  const int saved_errno = errno;
  const int fd = g_signal_fd.load();
  if (fd >= 0) {
    const char byte = kSignalByte;
    [[maybe_unused]] ssize_t ignored = write(fd, &byte, 1);
  }
  errno = saved_errno;
}

void SetHandler(int signal_number, void (*handler)(int), int flags) {
  struct sigaction action = {};
  action.sa_handler = handler;
  action.sa_flags = flags;
  sigemptyset(&action.sa_mask);
  sigaction(signal_number, &action, nullptr);
}

}  // namespace

InterruptWatcher::InterruptWatcher(std::function<void()> on_interrupt)
    : on_interrupt_(std::move(on_interrupt)) {
  if (pipe2(pipe_, O_CLOEXEC) != 0) {
    // Without a pipe, Ctrl-C keeps its default action (terminate): worse
    // output, but nothing is lost that the server has not kept.
    std::perror("sidestream-cli: pipe");
    return;
  }
  g_signal_fd.store(pipe_[1]);
  thread_ = std::thread([this] { Watch(); });
  SetHandler(SIGINT, HandleSignal, SA_RESETHAND | SA_RESTART);
  SetHandler(SIGTERM, HandleSignal, SA_RESETHAND | SA_RESTART);
}

InterruptWatcher::~InterruptWatcher() {
  if (pipe_[1] < 0) return;
  SetHandler(SIGINT, SIG_DFL, 0);
  SetHandler(SIGTERM, SIG_DFL, 0);
  g_signal_fd.store(-1);
  const char byte = kQuitByte;
  ssize_t written;
  do {
    written = write(pipe_[1], &byte, 1);
  } while (written < 0 && errno == EINTR);
  thread_.join();
  close(pipe_[0]);
  close(pipe_[1]);
}

void InterruptWatcher::Watch() {
  for (;;) {
    char byte;
    const ssize_t n = read(pipe_[0], &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || byte == kQuitByte) return;
    if (!interrupted_.exchange(true)) on_interrupt_();
  }
}

}  // namespace sidestream::cli
