// Disk full while running: webhooks get 503 (Stripe retries them), nothing
// already acknowledged is lost or damaged, reads keep working, and the
// server recovers by itself when space returns; after a later kill -9 the
// whole history is still there.
//
// Two ways to run out of space:
//   - a file-size limit (RLIMIT_FSIZE lowered on the running server with
//     prlimit(2), SIGXFSZ ignored, so writes fail with EFBIG): needs no
//     privilege;
//   - a small tmpfs filled up with a filler file (real ENOSPC): needs
//     permission to mount; where mounting is refused the test says so and
//     runs the file-size limit instead (recorded as `mechanism`).
// When the log reports `LogInfo::writable`, gRPC health must also turn
// NOT_SERVING during the outage and SERVING after it.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include <sys/resource.h>
#include <sys/statvfs.h>

#include "client/http_client.h"
#include "server/log/event_log.h"
#include "tests/chaos/chaos_util.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

// Whether this build's log reports writability (and health follows it).
template <typename Info>
constexpr bool ReportsWritable() {
  return requires(const Info& info) { info.writable; };
}
constexpr bool kHealthFollowsWritable = ReportsWritable<LogInfo>();

constexpr int kServing = 1, kNotServing = 2;  // grpc.health.v1 values
constexpr int64_t kFileSizeLimit = 64 << 10;

enum class Mechanism { kFileSizeLimit, kFullFileSystem };

class DiskFullTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // The server must be gone before its file system can be unmounted.
    if (server_ != nullptr) server_->Kill();
    server_.reset();
    if (!mount_point_.empty()) {
      CommandResult r = RunCommand({"/bin/umount", mount_point_}, {}, absl::Seconds(30));
      EXPECT_EQ(r.code, 0) << "umount " << mount_point_ << ": " << r.stderr_text;
    }
  }

  // Mounts a small tmpfs for the data directory; false when not permitted.
  bool MountSmallFileSystem(std::string* why_not) {
    const std::string dir = MakeTempDir("chaos-tmpfs");
    CommandResult r =
        RunCommand({"/bin/mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", dir}, {},
                   absl::Seconds(30));
    if (r.code != 0) {
      *why_not = absl::StrCat("mount -t tmpfs failed (", r.code, "): ", r.stderr_text);
      return false;
    }
    mount_point_ = dir;
    return true;
  }

  // Fills the file system of `dir` to the last byte with a filler file:
  // a disk that is really full (a little room left would let small writes,
  // such as the log's one-row probe, succeed). Returns its path.
  std::string FillFileSystem(const std::string& dir) {
    const std::string filler = dir + "/filler";
    const int fd = open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << filler;
    const std::string chunk(64 << 10, 'f');
    // Bounded by the size of the file system (8 MiB); ends with ENOSPC.
    for (int i = 0; i < 1000; ++i) {
      if (write(fd, chunk.data(), chunk.size()) <= 0) break;
    }
    for (int i = 0; i < 100000; ++i) {  // the last partial pages
      if (write(fd, chunk.data(), 512) <= 0) break;
    }
    close(fd);
    struct statvfs vfs;
    EXPECT_EQ(statvfs(dir.c_str(), &vfs), 0);
    EXPECT_EQ(vfs.f_bavail, 0u) << "the file system is not full";
    return filler;
  }

  // The scenario; `mechanism` may fall back to the file-size limit.
  void Run(Mechanism mechanism);

  std::unique_ptr<ServerProcess> server_;
  std::string mount_point_;
};

void DiskFullTest::Run(Mechanism mechanism) {
  const uint64_t seed = ChaosSeed() + (mechanism == Mechanism::kFileSizeLimit ? 10 : 11);
  std::mt19937_64 rng(seed);
  std::string mechanism_name = "file_size_limit";
  if (mechanism == Mechanism::kFullFileSystem) {
    std::string why_not;
    if (MountSmallFileSystem(&why_not)) {
      mechanism_name = "full_tmpfs";
    } else {
      std::cout << "disk full: " << why_not << "; using the file-size limit instead" << std::endl;
      mechanism = Mechanism::kFileSizeLimit;
      mechanism_name = "file_size_limit (tmpfs mount not permitted)";
    }
  }
  RecordProperty("mechanism", mechanism_name);
  RecordProperty("health_checked", kHealthFollowsWritable ? "yes" : "no (LogInfo has no writable)");

  ServerProcessOptions options;
  options.data_dir = mount_point_.empty() ? MakeTempDir("chaos-diskfull") : mount_point_;
  // An ignored SIGXFSZ stays ignored across exec: the server then sees
  // EFBIG instead of being killed by the signal, as a full disk gives
  // ENOSPC. Restored for this process once the server runs.
  struct sigaction ignore = {}, previous = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &previous);
  absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(options);
  sigaction(SIGXFSZ, &previous, nullptr);
  ASSERT_TRUE(started.ok()) << started.status();
  server_ = *std::move(started);
  options.http_listen = server_->http_address();
  options.grpc_listen = server_->grpc_address();
  const std::string target = server_->grpc_address();
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
      HttpConnection::Create(server_->webhook_url());
  ASSERT_TRUE(connection.ok());

  std::map<std::string, SentEvent> sent;
  std::map<std::string, uint64_t> acknowledged;  // id -> sequence
  int next_id = 0;
  auto new_event = [&] {
    SentEvent event = MakeEvent(absl::StrCat("evt_full", next_id++), rng);
    sent.emplace(event.id, event);
    return event;
  };
  // 1. Normal operation.
  for (int i = 0; i < 30; ++i) {
    SentEvent event = new_event();
    Delivery d = DeliverLikeStripe(**connection, event, absl::Now() + absl::Seconds(30), rng, 3);
    ASSERT_TRUE(d.acknowledged) << d.last_error;
    acknowledged[event.id] = d.sequence;
  }

  // 2. The disk fills up.
  const std::string db = options.data_dir + "/events.db";
  std::string filler;
  if (mechanism == Mechanism::kFileSizeLimit) {
    // No file may grow past 64 KiB: the WAL is already larger, so every
    // append fails, and a checkpoint cannot grow events.db to let the WAL
    // start over (which would hand the log new room).
    ASSERT_GT(FileSize(db + "-wal"), kFileSizeLimit) << "too little written to fill the WAL";
    const rlimit limit = {static_cast<rlim_t>(kFileSizeLimit), RLIM_INFINITY};
    ASSERT_EQ(prlimit(server_->pid(), RLIMIT_FSIZE, &limit, nullptr), 0) << std::strerror(errno);
  } else {
    filler = FillFileSystem(options.data_dir);
  }
  // Send single attempts until one gets 503 (bounded), then a few more.
  std::vector<SentEvent> refused;  // answered 503, to be retried later
  int answered_200 = 0, answered_503 = 0, answered_other = 0, transport_errors = 0;
  const absl::Time fill_deadline = absl::Now() + absl::Seconds(60);
  int after_first_503 = 0;
  for (int i = 0; i < 5000 && absl::Now() < fill_deadline && after_first_503 < 10; ++i) {
    SentEvent event = new_event();
    absl::StatusOr<HttpResponse> response = PostOnce(**connection, event);
    if (answered_503 > 0) ++after_first_503;
    if (!response.ok()) {
      ++transport_errors;
      refused.push_back(event);
    } else if (response->status_code == 200) {
      ++answered_200;
      acknowledged[event.id] = AckSequence(*response);
    } else if (response->status_code == 503) {
      ++answered_503;
      refused.push_back(event);
    } else {
      ++answered_other;
      ADD_FAILURE() << "unexpected answer while the disk is full: " << response->status_code << " "
                    << response->body;
    }
  }
  ASSERT_GT(answered_503, 0) << "the disk never filled up (" << answered_200 << " events stored)";
  EXPECT_EQ(transport_errors, 0) << "the server should answer 503, not drop connections";
  ASSERT_TRUE(ProcessAlive(server_->pid())) << "the server died: " << server_->StderrText();

  // During the outage: health, and reads of everything acknowledged.
  std::string health_text = "not checked (LogInfo has no writable)";
  if constexpr (kHealthFollowsWritable) {
    const absl::Time outage_seen = absl::Now();
    const bool whole = WaitForHealth(target, "", kNotServing, absl::Seconds(10));
    const bool events =
        WaitForHealth(target, "sidestream.v1.Events", kNotServing, absl::Seconds(10));
    EXPECT_TRUE(whole) << "health \"\" stayed SERVING while the disk is full";
    EXPECT_TRUE(events) << "health sidestream.v1.Events stayed SERVING while the disk is full";
    health_text = absl::StrCat(whole && events ? "NOT_SERVING" : "SERVING", " after ",
                               absl::FormatDuration(absl::Now() - outage_seen));
    // The Kubernetes readiness probe says the same.
    EXPECT_TRUE(WaitForReadyz(server_->admin_address(), 503, absl::Seconds(10)))
        << "/readyz stayed 200 while the disk is full";
  }
  RecordProperty("health_during_outage", health_text);
  absl::StatusOr<std::vector<v1::Event>> during = ListAllEvents(target);
  ASSERT_TRUE(during.ok()) << "reads fail while the disk is full: " << during.status();
  EXPECT_EQ(during->size(), acknowledged.size());
  std::vector<std::string> problems = CheckServedAgainstSent(*during, sent);
  EXPECT_TRUE(problems.empty()) << problems.front();

  // 3. Space returns; Stripe's retries and new events succeed.
  if (mechanism == Mechanism::kFileSizeLimit) {
    const rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
    ASSERT_EQ(prlimit(server_->pid(), RLIMIT_FSIZE, &unlimited, nullptr), 0)
        << std::strerror(errno);
  } else {
    ASSERT_EQ(unlink(filler.c_str()), 0);
  }
  int retries_stored_before = 0, retry_attempts = 0;
  for (const SentEvent& event : refused) {
    Delivery d = DeliverLikeStripe(**connection, event, absl::Now() + absl::Seconds(30), rng);
    retry_attempts += d.attempts;
    ASSERT_TRUE(d.acknowledged) << event.id
                                << " still refused after space returned: " << d.last_error;
    if (d.duplicate) ++retries_stored_before;  // a 503 for a stored event: harmless, but noted
    acknowledged[event.id] = d.sequence;
  }
  int new_attempts = 0;
  for (int i = 0; i < 20; ++i) {
    SentEvent event = new_event();
    Delivery d = DeliverLikeStripe(**connection, event, absl::Now() + absl::Seconds(30), rng);
    new_attempts += d.attempts;
    ASSERT_TRUE(d.acknowledged) << d.last_error;
    acknowledged[event.id] = d.sequence;
  }
  EXPECT_EQ(new_attempts, 20) << "new events after recovery needed retries";
  if constexpr (kHealthFollowsWritable) {
    EXPECT_TRUE(WaitForHealth(target, "", kServing, absl::Seconds(10)));
    EXPECT_TRUE(WaitForHealth(target, "sidestream.v1.Events", kServing, absl::Seconds(10)));
    EXPECT_TRUE(WaitForReadyz(server_->admin_address(), 200, absl::Seconds(10)))
        << "/readyz stayed 503 after recovery";
    absl::StrAppend(&health_text, ", SERVING again after recovery");
  }

  // 4. Everything acknowledged is stored once, intact; and survives kill -9.
  int64_t lost = 0, duplicated = 0;
  auto expect_all_there = [&](const char* when) {
    absl::StatusOr<std::vector<v1::Event>> stored = ListAllEvents(target);
    ASSERT_TRUE(stored.ok()) << when << ": " << stored.status();
    std::map<std::string, uint64_t> stored_sequence;
    for (const v1::Event& event : *stored) {
      if (!stored_sequence.emplace(event.id(), event.sequence()).second) {
        ++duplicated;
        ADD_FAILURE() << when << ": " << event.id() << " stored twice";
      }
    }
    for (const auto& [id, sequence] : acknowledged) {
      auto it = stored_sequence.find(id);
      if (it == stored_sequence.end() || it->second != sequence) {
        ++lost;
        ADD_FAILURE() << when << ": acknowledged " << id << " (sequence " << sequence
                      << ") is missing or moved";
      }
    }
    EXPECT_EQ(stored->size(), acknowledged.size()) << when;
    std::vector<std::string> wrong = CheckServedAgainstSent(*stored, sent);
    EXPECT_TRUE(wrong.empty()) << when << ": " << wrong.front();
  };
  expect_all_there("after recovery");
  server_->Kill();
  absl::StatusOr<std::unique_ptr<ServerProcess>> restarted = ServerProcess::Start(options);
  ASSERT_TRUE(restarted.ok()) << "no restart after a disk-full episode: " << restarted.status();
  server_ = *std::move(restarted);
  expect_all_there("after kill -9 and restart");

  const std::string summary = absl::StrCat(
      "disk full (", mechanism_name, "): acknowledged=", acknowledged.size(),
      " answered_200_while_filling=", answered_200, " answered_503=", answered_503,
      " transport_errors=", transport_errors, " retried_after_recovery=", refused.size(),
      " retry_attempts=", retry_attempts, " retries_already_stored=", retries_stored_before,
      " new_after_recovery_attempts=", new_attempts, " health_during=", health_text, " lost=", lost,
      " duplicated=", duplicated);
  std::cout << summary << std::endl;
  RecordProperty("acknowledged", absl::StrCat(acknowledged.size()));
  RecordProperty("answered_503", absl::StrCat(answered_503));
  RecordProperty("retries_already_stored", absl::StrCat(retries_stored_before));
}

TEST_F(DiskFullTest, FileSizeLimitGives503LosesNothingAndRecovers) {
  Run(Mechanism::kFileSizeLimit);
}

TEST_F(DiskFullTest, FullFileSystemGives503LosesNothingAndRecovers) {
  Run(Mechanism::kFullFileSystem);
}

}  // namespace
}  // namespace sidestream::testing
