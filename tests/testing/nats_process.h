// NatsProcess: a real nats-server with JetStream for tests, alone or as a
// node of a loopback cluster, on ports chosen at start (kept across a
// restart so that clients reconnect to the same URL) and a temporary store
// directory. Only processes started here are ever signalled.
#ifndef SIDESTREAM_TESTS_TESTING_NATS_PROCESS_H_
#define SIDESTREAM_TESTS_TESTING_NATS_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include <sys/types.h>

namespace sidestream::testing {

// The nats-server binary: $NATS_SERVER, else the first nats-server on PATH
// or in the sbin directories. Empty when there is none.
std::string NatsServerPath();

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then
// released).
int FreeLoopbackPort();

struct NatsNodeOptions {
  std::string store_dir;  // required; JetStream keeps its files here
  std::string server_name = "n1";
  // Cluster membership; empty cluster_name: a single server.
  std::string cluster_name;
  int cluster_port = 0;          // 0: a free port
  std::vector<int> route_ports;  // cluster ports of the other nodes
  int client_port = 0;           // 0: a free port
  absl::Duration ready_timeout = absl::Seconds(20);
};

class NatsProcess {
 public:
  // Starts the server and waits until it reports healthy, with JetStream
  // current (its monitoring /healthz answers 200).
  static absl::StatusOr<std::unique_ptr<NatsProcess>> Start(const NatsNodeOptions& options);
  ~NatsProcess();  // SIGKILL if still running

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(client_port_); }
  int client_port() const { return client_port_; }
  int cluster_port() const { return cluster_port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // SIGKILL and reap.
  void Kill();
  // Starts again with the same ports and store (after Kill).
  absl::Status Restart();
  // Waits until /healthz answers 200 (after a restart or a cluster change).
  absl::Status WaitHealthy(absl::Duration timeout) const;
  // The server's own log so far (for failure messages).
  std::string LogText() const;

 private:
  NatsProcess() = default;
  absl::Status Spawn();

  NatsNodeOptions options_;
  int client_port_ = 0;
  int cluster_port_ = 0;
  int monitor_port_ = 0;
  pid_t pid_ = -1;
  std::string log_path_;
};

// A three-node loopback cluster (n1, n2, n3), each node routed to the
// others, all healthy when Start returns.
class NatsCluster {
 public:
  static absl::StatusOr<std::unique_ptr<NatsCluster>> Start(const std::string& root_dir,
                                                            int nodes = 3);
  NatsProcess& node(int i) { return *nodes_[i]; }
  int size() const { return static_cast<int>(nodes_.size()); }
  // Comma list of every node's URL (the --nats_url value).
  std::string urls() const;

 private:
  std::vector<std::unique_ptr<NatsProcess>> nodes_;
};

}  // namespace sidestream::testing

#endif  // SIDESTREAM_TESTS_TESTING_NATS_PROCESS_H_
