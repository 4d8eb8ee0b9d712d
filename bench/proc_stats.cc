#include "bench/proc_stats.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace sidestream::bench {

namespace {

// utime + stime from a /proc stat file (of a process or of one thread), or a
// negative duration when it cannot be read.
absl::Duration CpuTimeFromStat(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return absl::Seconds(-1);
  // The command name (field 2) is in parentheses and may contain spaces:
  // count fields after its closing parenthesis. utime and stime are fields
  // 14 and 15, i.e. the 12th and 13th after it.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return absl::Seconds(-1);
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(line).substr(close + 1), ' ', absl::SkipEmpty());
  uint64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::Seconds(-1);
  }
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  return absl::Seconds(static_cast<double>(utime + stime) / static_cast<double>(ticks_per_second));
}

}  // namespace

absl::Duration ProcessCpuTime(pid_t pid) {
  return CpuTimeFromStat(absl::StrCat("/proc/", pid, "/stat"));
}

std::map<pid_t, ThreadCpu> ThreadCpuTimes(pid_t pid) {
  std::map<pid_t, ThreadCpu> threads;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
    pid_t tid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &tid)) continue;
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (!std::getline(comm, name)) continue;  // exited meanwhile
    const absl::Duration cpu = CpuTimeFromStat(entry.path() / "stat");
    if (cpu < absl::ZeroDuration()) continue;
    threads[tid] = {std::move(name), cpu};
  }
  return threads;
}

int64_t ProcessRssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      v = absl::StripAsciiWhitespace(v);
      int64_t kib = -1;
      if (!absl::SimpleAtoi(v.substr(0, v.find(' ')), &kib)) return -1;
      return kib;
    }
  }
  return -1;
}

RssSampler::RssSampler(pid_t pid, absl::Duration interval)
    : thread_([this, pid, interval] { Run(pid, interval); }) {}

RssSampler::~RssSampler() {
  stop_.Notify();
  thread_.join();
}

void RssSampler::Run(pid_t pid, absl::Duration interval) {
  do {
    const int64_t rss = ProcessRssKib(pid);
    int64_t peak = peak_kib_.load();
    while (rss > peak && !peak_kib_.compare_exchange_weak(peak, rss)) {
    }
  } while (!stop_.WaitForNotificationWithTimeout(interval));
}

}  // namespace sidestream::bench
