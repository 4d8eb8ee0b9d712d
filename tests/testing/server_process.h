// ServerProcess: runs the real `sidestream` binary for end-to-end tests, on
// ephemeral loopback ports and a temporary data directory, and reads the
// addresses from its ready line.
#ifndef SIDESTREAM_TESTS_TESTING_SERVER_PROCESS_H_
#define SIDESTREAM_TESTS_TESTING_SERVER_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include <sys/types.h>

namespace sidestream::testing {

// The binary directory (SIDESTREAM_BIN_DIR, set by ctest).
std::string BinDir();

// A fresh empty directory under the test temp dir.
std::string MakeTempDir(const std::string& prefix);

struct ServerProcessOptions {
  std::string data_dir;  // required
  // Signing secrets, passed through SIDESTREAM_WEBHOOK_SECRETS.
  std::string secrets = "test=whsec_e2e_test_secret";
  // Extra flags. Listen addresses default to 127.0.0.1:0.
  std::vector<std::string> args;
  std::string http_listen = "127.0.0.1:0";
  std::string grpc_listen = "127.0.0.1:0";
  std::string admin_listen = "127.0.0.1:0";
  absl::Duration ready_timeout = absl::Seconds(30);
};

// Runs `args[0]` (a path) to completion with `env` added to the current
// environment (less inherited SIDESTREAM_* settings); killed after `timeout`.
struct CommandResult {
  int code = -1;  // exit code, or -signal
  std::string stdout_text;
  std::string stderr_text;
};
CommandResult RunCommand(const std::vector<std::string>& args, const std::vector<std::string>& env,
                         absl::Duration timeout);

class ServerProcess {
 public:
  // Starts the server and waits for its ready line. On failure (the process
  // exited or never got ready) the error carries its exit status and stderr.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const ServerProcessOptions& options);

  // Runs the binary to completion with `args` and `env` (added to the
  // current environment); returns exit code and combined stderr. The admin
  // listener gets an ephemeral port unless `args` sets --admin_listen.
  struct Exit {
    int code = -1;
    std::string stderr_text;
  };
  static Exit RunToExit(const std::vector<std::string>& args, const std::vector<std::string>& env,
                        absl::Duration timeout);

  ~ServerProcess();  // SIGKILL if still running

  const std::string& http_address() const { return http_; }
  const std::string& grpc_address() const { return grpc_; }
  const std::string& admin_address() const { return admin_; }
  const std::string& epoch() const { return epoch_; }
  std::string webhook_url() const { return "http://" + http_ + "/webhook"; }
  pid_t pid() const { return pid_; }

  // Sends SIGKILL and reaps the process.
  void Kill();
  // Sends SIGTERM and waits for exit; returns the exit code (or -signal).
  int Terminate(absl::Duration timeout);
  // Resident memory in KiB (VmRSS), or -1.
  long RssKib() const;
  // Everything the process wrote to stderr so far.
  std::string StderrText() const;

 private:
  ServerProcess() = default;
  int Reap(absl::Duration timeout);

  pid_t pid_ = -1;
  std::string http_, grpc_, admin_, epoch_;
  std::string stderr_path_;
};

}  // namespace sidestream::testing

#endif  // SIDESTREAM_TESTS_TESTING_SERVER_PROCESS_H_
