#include "tests/testing/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char** environ;

namespace sidestream::testing {
namespace {

std::atomic<int> g_counter{0};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Spawns `args` with `extra_env` added; stdout into `stdout_fd` (or
// /dev/null when -1), stderr appended to `stderr_path`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args,
                            const std::vector<std::string>& extra_env, int stdout_fd,
                            const std::string& stderr_path) {
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    // Drop inherited SIDESTREAM_* settings so tests are hermetic.
    if (!absl::StartsWith(*e, "SIDESTREAM_") || absl::StartsWith(*e, "SIDESTREAM_BIN_DIR=")) {
      env_storage.emplace_back(*e);
    }
  }
  for (const std::string& e : extra_env) env_storage.push_back(e);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_storage = args;
  std::vector<char*> argv;
  for (std::string& a : arg_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", args[0], ": ", std::strerror(rc)));
  }
  return pid;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1000;
}

// Waits for the child to exit (a pidfd becomes readable when it does);
// SIGKILLs it at the deadline. Returns the decoded exit status.
int WaitForExit(pid_t pid, absl::Duration timeout) {
  int status = 0;
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    close(pidfd);
    if (ready <= 0) kill(pid, SIGKILL);
  }
  // Without a pidfd (kernels before 5.3) this blocks until exit.
  waitpid(pid, &status, 0);
  return DecodeWaitStatus(status);
}

}  // namespace

std::string BinDir() {
  const char* dir = std::getenv("SIDESTREAM_BIN_DIR");
  return dir != nullptr ? dir : "build/bin";
}

std::string MakeTempDir(const std::string& prefix) {
  std::string base = ::testing::TempDir();
  if (!base.empty() && base.back() != '/') base += '/';
  std::string templ = absl::StrCat(base, prefix, "-", getpid(), "-", g_counter++, "-XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  char* dir = mkdtemp(buf.data());
  return dir != nullptr ? std::string(dir) : std::string();
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const ServerProcessOptions& options) {
  auto process = std::unique_ptr<ServerProcess>(new ServerProcess());
  process->stderr_path_ = absl::StrCat(options.data_dir, ".server-", g_counter++, ".log");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> args = {BinDir() + "/sidestream", "--data_dir=" + options.data_dir,
                                   "--http_listen=" + options.http_listen,
                                   "--grpc_listen=" + options.grpc_listen,
                                   "--admin_listen=" + options.admin_listen};
  args.insert(args.end(), options.args.begin(), options.args.end());
  std::vector<std::string> env;
  if (!options.secrets.empty()) env.push_back("SIDESTREAM_WEBHOOK_SECRETS=" + options.secrets);
  absl::StatusOr<pid_t> pid = Spawn(args, env, fds[1], process->stderr_path_);
  close(fds[1]);
  if (!pid.ok()) {
    close(fds[0]);
    return pid.status();
  }
  process->pid_ = *pid;

  // Read stdout until the ready line, the process's exit, or the deadline.
  std::string out;
  const absl::Time deadline = absl::Now() + options.ready_timeout;
  while (out.find('\n') == std::string::npos) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;  // EOF: the process exited
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (!absl::StartsWith(out, "sidestream ready ")) {
    const int code = process->Reap(absl::Seconds(5));
    process->pid_ = -1;
    return absl::UnavailableError(absl::StrCat("server did not get ready (exit ", code,
                                               "); stderr:\n", process->StderrText()));
  }
  for (absl::string_view field : absl::StrSplit(out.substr(0, out.find('\n')), ' ')) {
    if (absl::ConsumePrefix(&field, "http=")) process->http_ = std::string(field);
    if (absl::ConsumePrefix(&field, "grpc=")) process->grpc_ = std::string(field);
    if (absl::ConsumePrefix(&field, "admin=")) process->admin_ = std::string(field);
    if (absl::ConsumePrefix(&field, "epoch=")) process->epoch_ = std::string(field);
  }
  return process;
}

CommandResult RunCommand(const std::vector<std::string>& args, const std::vector<std::string>& env,
                         absl::Duration timeout) {
  CommandResult result;
  const std::string dir = MakeTempDir("cmd");
  const std::string out_path = dir + "/stdout";
  const std::string err_path = dir + "/stderr";
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  absl::StatusOr<pid_t> pid = Spawn(args, env, out_fd, err_path);
  close(out_fd);
  if (!pid.ok()) {
    result.stderr_text = std::string(pid.status().message());
    return result;
  }
  result.code = WaitForExit(*pid, timeout);
  result.stdout_text = ReadFile(out_path);
  result.stderr_text = ReadFile(err_path);
  return result;
}

ServerProcess::Exit ServerProcess::RunToExit(const std::vector<std::string>& args,
                                             const std::vector<std::string>& env,
                                             absl::Duration timeout) {
  Exit exit;
  const std::string err_path = MakeTempDir("run") + "/stderr";
  // An ephemeral admin port unless `args` says otherwise (a later flag
  // wins), so that a run that gets as far as listening never takes 9090.
  std::vector<std::string> full = {BinDir() + "/sidestream", "--admin_listen=127.0.0.1:0"};
  full.insert(full.end(), args.begin(), args.end());
  absl::StatusOr<pid_t> pid = Spawn(full, env, -1, err_path);
  if (!pid.ok()) {
    exit.stderr_text = std::string(pid.status().message());
    return exit;
  }
  ServerProcess p;
  p.pid_ = *pid;
  exit.code = p.Reap(timeout);
  p.pid_ = -1;
  exit.stderr_text = ReadFile(err_path);
  return exit;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
}

int ServerProcess::Reap(absl::Duration timeout) { return WaitForExit(pid_, timeout); }

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int ServerProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return -1000;
  kill(pid_, SIGTERM);
  int code = Reap(timeout);
  pid_ = -1;
  return code;
}

long ServerProcess::RssKib() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      long kib = -1;
      v = absl::StripAsciiWhitespace(v);
      (void)absl::SimpleAtoi(v.substr(0, v.find(' ')), &kib);
      return kib;
    }
  }
  return -1;
}

std::string ServerProcess::StderrText() const { return ReadFile(stderr_path_); }

}  // namespace sidestream::testing
