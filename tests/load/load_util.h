// Helpers shared by the load, slow-consumer and hostile-input tests: process
// limits and probes, Admin.GetStats, a latency histogram, and a group of
// Subscribe streams on gRPC's callback API (no thread per stream).
#ifndef SIDESTREAM_TESTS_LOAD_LOAD_UTIL_H_
#define SIDESTREAM_TESTS_LOAD_LOAD_UTIL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include "sidestream/v1/admin_service.grpc.pb.h"
#include "sidestream/v1/events_service.grpc.pb.h"

namespace sidestream::testing {

// An integer from the environment, or `fallback` when unset or not a number.
int64_t EnvInt(const char* name, int64_t fallback);

// Raises this process's soft RLIMIT_NOFILE to at least `wanted` (children
// started afterwards inherit it). FAILED_PRECONDITION when the hard limit
// is lower.
absl::Status EnsureFdLimit(uint64_t wanted);

// Open file descriptors of `pid` (entries of /proc/<pid>/fd), or -1. With
// `target_prefix`, only those whose link target starts with it ("socket:"
// for sockets, which a file the process opens for a moment never is).
int CountOpenFds(pid_t pid, absl::string_view target_prefix = "");

// True while `pid` exists and is not a zombie.
bool ProcessAlive(pid_t pid);

// A channel with a TCP connection of its own: gRPC otherwise shares one
// connection among all channels to the same target with the same arguments.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& target);

absl::StatusOr<v1::GetStatsResponse> GetStats(const std::string& grpc_target);

// Latencies in 100 µs buckets up to 10 s (one overflow bucket beyond);
// exact maximum. Not thread-safe; merge per-thread histograms.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void Add(absl::Duration latency);  // negative latencies count as zero
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  absl::Duration max() const { return max_; }
  // The upper edge of the bucket holding the `p`-quantile (0 < p <= 1).
  absl::Duration Percentile(double p) const;

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  absl::Duration max_ = absl::ZeroDuration();
};

// Many Subscribe streams with the same request, spread round-robin over
// `channels`, each read continuously on gRPC's callback threads. Counts
// what arrives; remembers how each stream ended.
class StreamGroup {
 public:
  StreamGroup(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
              const v1::SubscribeRequest& request, int count);
  // Cancels every stream and waits (bounded) for each to end. A stream that
  // does not end in time is leaked rather than freed under gRPC's feet, and
  // reported as a test failure.
  ~StreamGroup();

  // Waits until `n` streams got their caught_up item (or ended).
  bool WaitForCaughtUp(size_t n, absl::Duration timeout);
  // Waits until every stream has ended.
  bool WaitForAllDone(absl::Duration timeout);
  void CancelAll();

  size_t caught_up() const;
  size_t done() const;
  uint64_t events() const;
  // How many streams ended with each status code.
  std::map<grpc::StatusCode, size_t> end_codes() const;

 private:
  class Stream;
  friend class Stream;

  std::vector<std::unique_ptr<v1::Events::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  mutable absl::Mutex mu_;
  size_t caught_up_ ABSL_GUARDED_BY(mu_) = 0;
  size_t done_ ABSL_GUARDED_BY(mu_) = 0;
  size_t ended_before_caught_up_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t events_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<grpc::StatusCode, size_t> end_codes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sidestream::testing

#endif  // SIDESTREAM_TESTS_LOAD_LOAD_UTIL_H_
