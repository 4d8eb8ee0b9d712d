// What the kernel says about a process: CPU time used and resident memory,
// read from /proc. Used to report the server's CPU per event and its RSS.
#ifndef SIDESTREAM_BENCH_PROC_STATS_H_
#define SIDESTREAM_BENCH_PROC_STATS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include <sys/types.h>

namespace sidestream::bench {

// User plus system CPU time of `pid` so far (utime + stime of
// /proc/<pid>/stat), or a negative duration when the process is gone.
// Resolution is the kernel's clock tick (usually 10 ms): measure over
// seconds, not milliseconds.
absl::Duration ProcessCpuTime(pid_t pid);

// The same for each live thread of `pid` (/proc/<pid>/task/*), by thread id,
// with its name (comm; the server names its threads, see
// server/common/thread_name.h). A thread that has exited is gone from it, so
// a window's per-thread figures leave out threads that ended within it.
struct ThreadCpu {
  std::string name;
  absl::Duration cpu;
};
std::map<pid_t, ThreadCpu> ThreadCpuTimes(pid_t pid);

// VmRSS of `pid` in KiB, or -1 when the process is gone.
int64_t ProcessRssKib(pid_t pid);

// Samples a process's RSS on a background thread, to catch the peak of a
// run (RSS can fall back before the end). Stops in the destructor.
class RssSampler {
 public:
  RssSampler(pid_t pid, absl::Duration interval);
  ~RssSampler();

  int64_t peak_kib() const { return peak_kib_.load(); }

 private:
  void Run(pid_t pid, absl::Duration interval);

  std::atomic<int64_t> peak_kib_{-1};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_PROC_STATS_H_
