#include "tests/testing/nats_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

extern char** environ;

namespace sidestream::testing {
namespace {

// One HTTP GET to 127.0.0.1:port; the status code, or -1.
int HttpGetStatus(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  int status = -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[64] = {};
      const ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
      // "HTTP/1.0 200 OK"
      if (n > 12) status = std::atoi(buffer + 9);
    }
  }
  close(fd);
  return status;
}

}  // namespace

std::string NatsServerPath() {
  if (const char* env = std::getenv("NATS_SERVER"); env != nullptr && *env != '\0') return env;
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  }
  for (const char* sbin : {"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"}) {
    dirs.push_back(sbin);
  }
  for (const std::string& dir : dirs) {
    const std::string candidate = dir + "/nats-server";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

absl::StatusOr<std::unique_ptr<NatsProcess>> NatsProcess::Start(const NatsNodeOptions& options) {
  auto process = std::unique_ptr<NatsProcess>(new NatsProcess());
  process->options_ = options;
  process->client_port_ = options.client_port != 0 ? options.client_port : FreeLoopbackPort();
  process->monitor_port_ = FreeLoopbackPort();
  if (!options.cluster_name.empty()) {
    process->cluster_port_ = options.cluster_port != 0 ? options.cluster_port : FreeLoopbackPort();
  }
  process->log_path_ = options.store_dir + "/nats-server.log";
  if (absl::Status s = process->Spawn(); !s.ok()) return s;
  // A cluster node is healthy only once the others are up: the caller waits.
  if (options.cluster_name.empty()) {
    if (absl::Status s = process->WaitHealthy(options.ready_timeout); !s.ok()) return s;
  }
  return process;
}

absl::Status NatsProcess::Spawn() {
  const std::string binary = NatsServerPath();
  if (binary.empty()) return absl::NotFoundError("nats-server not found (set NATS_SERVER)");
  std::error_code ignored;
  std::filesystem::create_directories(options_.store_dir, ignored);
  std::vector<std::string> args = {binary,
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   absl::StrCat(client_port_),
                                   "-m",
                                   absl::StrCat(monitor_port_),
                                   "-n",
                                   options_.server_name,
                                   "-js",
                                   "-sd",
                                   options_.store_dir + "/js",
                                   "-l",
                                   log_path_};
  if (!options_.cluster_name.empty()) {
    std::vector<std::string> routes;
    for (int port : options_.route_ports) routes.push_back(absl::StrCat("nats://127.0.0.1:", port));
    args.insert(args.end(), {"--cluster_name", options_.cluster_name, "--cluster",
                             absl::StrCat("nats://127.0.0.1:", cluster_port_), "--routes",
                             absl::StrJoin(routes, ",")});
  }
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (log_path_ + ".stderr").c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::InternalError(absl::StrCat("spawning nats-server: ", strerror(rc)));
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status NatsProcess::WaitHealthy(absl::Duration timeout) const {
  // Polls with a deadline: nats-server gives no other signal that JetStream
  // (and, in a cluster, its meta leader) is ready.
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pid_ <= 0) break;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      return absl::InternalError(absl::StrCat("nats-server exited: ", LogText()));
    }
    if (HttpGetStatus(monitor_port_, "/healthz") == 200) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("nats-server on port ", client_port_, " not healthy: ", LogText()));
}

void NatsProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

absl::Status NatsProcess::Restart() {
  Kill();
  return Spawn();
}

std::string NatsProcess::LogText() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  if (all.size() > 4000) all = all.substr(all.size() - 4000);
  return all;
}

NatsProcess::~NatsProcess() { Kill(); }

absl::StatusOr<std::unique_ptr<NatsCluster>> NatsCluster::Start(const std::string& root_dir,
                                                                int nodes) {
  auto cluster = std::unique_ptr<NatsCluster>(new NatsCluster());
  std::vector<int> cluster_ports;
  for (int i = 0; i < nodes; ++i) cluster_ports.push_back(FreeLoopbackPort());
  for (int i = 0; i < nodes; ++i) {
    NatsNodeOptions options;
    options.store_dir = absl::StrCat(root_dir, "/n", i + 1);
    options.server_name = absl::StrCat("n", i + 1);
    options.cluster_name = "sidestream-test";
    options.cluster_port = cluster_ports[i];
    for (int j = 0; j < nodes; ++j) {
      if (j != i) options.route_ports.push_back(cluster_ports[j]);
    }
    absl::StatusOr<std::unique_ptr<NatsProcess>> node = NatsProcess::Start(options);
    if (!node.ok()) return node.status();
    cluster->nodes_.push_back(*std::move(node));
  }
  for (auto& node : cluster->nodes_) {
    if (absl::Status s = node->WaitHealthy(absl::Seconds(30)); !s.ok()) return s;
  }
  return cluster;
}

std::string NatsCluster::urls() const {
  std::vector<std::string> urls;
  for (const auto& node : nodes_) urls.push_back(node->url());
  return absl::StrJoin(urls, ",");
}

}  // namespace sidestream::testing
