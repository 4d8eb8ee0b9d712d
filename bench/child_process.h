// ChildProcess: runs a baseline binary of this directory (bare Beast
// responder, raw gRPC sender) for the load generator and reads the
// addresses from its ready line. The Sidestream server itself is started
// with tests/testing/server_process.h.
#ifndef SIDESTREAM_BENCH_CHILD_PROCESS_H_
#define SIDESTREAM_BENCH_CHILD_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include <sys/types.h>

namespace sidestream::bench {

class ChildProcess {
 public:
  // Spawns `args` (args[0] is a path) with stderr appended to `stderr_path`
  // and waits until its first stdout line, which must start with "ready ",
  // and hold "key=value" words.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& args,
                                                             const std::string& stderr_path,
                                                             absl::Duration timeout);
  ~ChildProcess();  // SIGKILL and reap, if still running

  pid_t pid() const { return pid_; }
  // The value of `key=` in the ready line, or "".
  std::string ReadyField(absl::string_view key) const;

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  std::string ready_line_;
};

}  // namespace sidestream::bench

#endif  // SIDESTREAM_BENCH_CHILD_PROCESS_H_
