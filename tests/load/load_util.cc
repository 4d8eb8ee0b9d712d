#include "tests/load/load_util.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include <sys/resource.h>

namespace sidestream::testing {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* text = std::getenv(name);
  int64_t value = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &value)) return fallback;
  return value;
}

absl::Status EnsureFdLimit(uint64_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return absl::InternalError("getrlimit failed");
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= wanted) return absl::OkStatus();
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) {
    return absl::FailedPreconditionError(
        absl::StrCat("need ", wanted, " file descriptors; hard limit is ", limit.rlim_max));
  }
  limit.rlim_cur = wanted;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return absl::InternalError("setrlimit failed");
  return absl::OkStatus();
}

int CountOpenFds(pid_t pid, absl::string_view target_prefix) {
  const std::string path = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    if (!target_prefix.empty()) {
      char target[256];
      const std::string link = absl::StrCat(path, "/", entry->d_name);
      const ssize_t n = readlink(link.c_str(), target, sizeof(target));
      // Gone since readdir (closed a moment ago): not open.
      if (n <= 0 || !absl::StartsWith(absl::string_view(target, n), target_prefix)) continue;
    }
    ++count;
  }
  closedir(dir);
  return count;
}

bool ProcessAlive(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  if (!std::getline(in, stat)) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
         stat[paren + 2] != 'X';
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

absl::StatusOr<v1::GetStatsResponse> GetStats(const std::string& grpc_target) {
  auto stub =
      v1::Admin::NewStub(grpc::CreateChannel(grpc_target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetStatsResponse stats;
  grpc::Status status = stub->GetStats(&context, v1::GetStatsRequest(), &stats);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return stats;
}

// Buckets: 10 µs wide below 1 ms, 100 µs below 100 ms, 1 ms below 10 s, and
// one overflow bucket.
namespace {
constexpr int64_t kFineEnd = 1000, kMidEnd = 100000, kCoarseEnd = 10000000;
constexpr size_t kFine = 100, kMid = (kMidEnd - kFineEnd) / 100,
                 kCoarse = (kCoarseEnd - kMidEnd) / 1000;
constexpr size_t kBuckets = kFine + kMid + kCoarse + 1;

size_t BucketOf(int64_t us) {
  if (us < kFineEnd) return static_cast<size_t>(us / 10);
  if (us < kMidEnd) return kFine + static_cast<size_t>((us - kFineEnd) / 100);
  if (us < kCoarseEnd) return kFine + kMid + static_cast<size_t>((us - kMidEnd) / 1000);
  return kBuckets - 1;
}

int64_t BucketUpperEdgeUs(size_t bucket) {
  if (bucket < kFine) return static_cast<int64_t>(bucket + 1) * 10;
  if (bucket < kFine + kMid) return kFineEnd + static_cast<int64_t>(bucket - kFine + 1) * 100;
  if (bucket < kFine + kMid + kCoarse) {
    return kMidEnd + static_cast<int64_t>(bucket - kFine - kMid + 1) * 1000;
  }
  return -1;  // overflow: the caller reports the maximum instead
}
}  // namespace

LatencyHistogram::LatencyHistogram() : buckets_(kBuckets, 0) {}

void LatencyHistogram::Add(absl::Duration latency) {
  if (latency < absl::ZeroDuration()) latency = absl::ZeroDuration();
  ++buckets_[BucketOf(absl::ToInt64Microseconds(latency))];
  ++count_;
  max_ = std::max(max_, latency);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

absl::Duration LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return absl::ZeroDuration();
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(p * count_ + 0.999999));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const int64_t edge = BucketUpperEdgeUs(i);
      return edge < 0 ? max_ : std::min(max_, absl::Microseconds(edge));
    }
  }
  return max_;
}

// One stream; reads until the stream ends. Lives until the group is
// destroyed (after OnDone).
class StreamGroup::Stream final : public grpc::ClientReadReactor<v1::SubscribeResponse> {
 public:
  Stream(StreamGroup* group, v1::Events::Stub* stub, const v1::SubscribeRequest& request)
      : group_(group), request_(request) {
    stub->async()->Subscribe(&context_, &request_, this);
    StartRead(&item_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }
  bool done() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(group_->mu_) { return done_; }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    {
      absl::MutexLock lock(&group_->mu_);
      if (item_.has_event()) ++group_->events_;
      if (item_.has_caught_up() && !caught_up_) {
        caught_up_ = true;
        ++group_->caught_up_;
      }
    }
    item_.Clear();
    StartRead(&item_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&group_->mu_);
    done_ = true;
    ++group_->done_;
    if (!caught_up_) ++group_->ended_before_caught_up_;
    ++group_->end_codes_[status.error_code()];
  }

 private:
  StreamGroup* const group_;
  const v1::SubscribeRequest request_;
  grpc::ClientContext context_;
  v1::SubscribeResponse item_;
  // Guarded by group_->mu_.
  bool caught_up_ = false;
  bool done_ = false;
};

StreamGroup::StreamGroup(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                         const v1::SubscribeRequest& request, int count) {
  for (const auto& channel : channels) stubs_.push_back(v1::Events::NewStub(channel));
  streams_.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    streams_.push_back(std::make_unique<Stream>(
        this, stubs_[static_cast<size_t>(i) % stubs_.size()].get(), request));
  }
}

StreamGroup::~StreamGroup() {
  CancelAll();
  if (WaitForAllDone(absl::Seconds(60))) return;
  absl::MutexLock lock(&mu_);
  size_t leaked = 0;
  for (auto& stream : streams_) {
    if (!stream->done()) {
      (void)stream.release();  // gRPC still owns a reference to it
      ++leaked;
    }
  }
  ADD_FAILURE() << leaked << " Subscribe stream(s) did not end within 60 s of cancellation";
}

bool StreamGroup::WaitForCaughtUp(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto settled = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return caught_up_ >= n || caught_up_ + ended_before_caught_up_ >= streams_.size();
  };
  mu_.AwaitWithTimeout(absl::Condition(&settled), timeout);
  return caught_up_ >= n;
}

bool StreamGroup::WaitForAllDone(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ == streams_.size(); };
  mu_.AwaitWithTimeout(absl::Condition(&all_done), timeout);
  return done_ == streams_.size();
}

void StreamGroup::CancelAll() {
  for (auto& stream : streams_) stream->Cancel();
}

size_t StreamGroup::caught_up() const {
  absl::MutexLock lock(&mu_);
  return caught_up_;
}

size_t StreamGroup::done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

uint64_t StreamGroup::events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

std::map<grpc::StatusCode, size_t> StreamGroup::end_codes() const {
  absl::MutexLock lock(&mu_);
  return end_codes_;
}

}  // namespace sidestream::testing
