// In-process benchmarks of Sidestream's stages, for instruction counts that
// stay repeatable on a busy machine (run under valgrind --tool=callgrind),
// and two helpers of the suite.
//
//   --mode=stage --stage=verify|decode|append|read|fanout --events=N
//       Runs one stage N times on N distinct realistic events. Everything
//       the stage needs is prepared first; callgrind's counters are zeroed
//       right before the loop and dumped right after it, so the dump holds
//       the stage alone (all threads: the append stage's work is on the
//       log's writer thread). Also prints wall-clock ns per event.
//         verify: SignatureVerifier::Verify (header parse, HMAC, compare).
//         decode: DecodeStripeEvent and the Event's serialization (what the
//                 webhook handler does between verify and append).
//         append: SqliteEventLog::Append with --in_flight appends
//                 outstanding (as many webhook connections), to durable.
//         read: SqliteEventLog::ReadAfter over the first N events of a
//               --data_dir filled by --mode=preload, in batches of 512 (a
//               catch-up's log reads: rows, checksums, records); the
//               preload runs in its own process, so none of its writer's
//               work is counted, nor is the page reads' kernel time.
//         fanout: EventHub::OnAppended and, for each of --subscribers
//                 (mixed filters), the subscription's step: read the
//                 window, match, build the shared-slice message. gRPC's own
//                 per-message cost is not in it (the raw gRPC baseline
//                 measures that).
//   --mode=fsync --dir=D --seconds=S
//       4 KiB write + fdatasync in a loop on D's disk; prints the rate.
//   --mode=preload --data_dir=D --events=N
//       Fills a Sidestream data directory with N events through the log
//       (fast: group commits of 512), for the start-up, catch-up and
//       stalled-subscriber scenarios.
//
// Output: one JSON object on stdout.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

#include "bench/bench_process.h"
#include "bench/filters.h"
#include "bench/histogram.h"
#include "bench/proc_stats.h"
#include "bench/webhook_requests.h"
#include "server/common/time_proto.h"
#include "server/decode/event_decoder.h"
#include "server/hub/event_filter.h"
#include "server/hub/event_hub.h"
#include "server/log/sqlite_event_log.h"
#include "server/rpc/wire.h"
#include "server/verify/stripe_signature.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
// Without valgrind's headers the markers do nothing (the wall-clock figures
// still work).
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(name)
#endif

ABSL_FLAG(std::string, mode, "stage", "stage, fsync or preload.");
ABSL_FLAG(std::string, stage, "verify", "verify, decode, append, read or fanout.");
ABSL_FLAG(uint64_t, events, 10000, "Events to run through the stage (or to preload).");
ABSL_FLAG(int, size, 3072, "Body size of the events in bytes.");
ABSL_FLAG(int, subscribers, 100, "Subscriptions of the fanout stage.");
ABSL_FLAG(std::string, filters, "mixed", "Filters of the fanout stage: mixed or all.");
ABSL_FLAG(int, in_flight, 16, "Appends outstanding at once in the append stage.");
ABSL_FLAG(std::string, data_dir, "", "Data directory (append stage, preload).");
ABSL_FLAG(std::string, dir, "", "Directory on the disk to test (fsync).");
ABSL_FLAG(double, seconds, 3, "Duration of the fsync loop.");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "Turn Abseil's Mutex deadlock detection back on (Debian's Abseil is built without "
          "NDEBUG, which leaves it on; every Sidestream binary turns it off: TuneProcess), to "
          "measure what it costs.");

namespace sidestream::bench {
namespace {

constexpr char kSecret[] = "whsec_stage_bench_secret";
// Preloaded events take ids far above the load generator's (which count
// from 0), so live traffic on a preloaded log is never a duplicate.
constexpr uint64_t kPreloadIndexBase = 100'000'000'000;

absl::StatusOr<WebhookRequestFactory> Factory() {
  WebhookRequestOptions options;
  options.sizes = {static_cast<size_t>(absl::GetFlag(FLAGS_size))};
  options.secret = kSecret;
  options.host = "127.0.0.1";
  return WebhookRequestFactory::Create(options);
}

// The handler's decode step (the same function the handler calls).
absl::StatusOr<NewEvent> DecodeToNewEvent(const std::string& body, absl::Time now) {
  NewEvent out;
  if (std::optional<Rejection> rejection = sidestream::DecodeToNewEvent(body, now, "bench", &out)) {
    return absl::InvalidArgumentError(rejection->detail);
  }
  return out;
}

// Counts appends that completed and lets the caller wait for a number of
// them.
class Completions {
 public:
  void Done(bool ok) {
    absl::MutexLock lock(&mu_);
    ++done_;
    if (!ok) ++failed_;
  }
  void WaitFor(uint64_t n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= n; };
    mu_.Await(absl::Condition(&reached));
  }
  uint64_t failed() {
    absl::MutexLock lock(&mu_);
    return failed_;
  }

 private:
  absl::Mutex mu_;
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
};

// Appends `events` with at most `in_flight` outstanding; false if any failed.
bool AppendAll(EventLog* log, std::vector<NewEvent> events, int in_flight) {
  Completions completions;
  uint64_t issued = 0;
  for (NewEvent& event : events) {
    if (issued >= static_cast<uint64_t>(in_flight)) completions.WaitFor(issued - in_flight + 1);
    log->Append(std::move(event), [&completions](absl::StatusOr<AppendResult> result) {
      completions.Done(result.ok());
    });
    ++issued;
  }
  completions.WaitFor(issued);
  return completions.failed() == 0;
}

class NoopWaiter final : public EventHub::Waiter {
 public:
  void Wake() override { wakes_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> wakes_{0};
};

// The log in --data_dir, with default options.
absl::StatusOr<std::unique_ptr<SqliteEventLog>> OpenLog() {
  SqliteEventLogOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  return SqliteEventLog::Open(options);
}

struct StageResult {
  uint64_t events = 0;
  uint64_t deliveries = 0;  // fanout only
  absl::Duration wall;
};

absl::StatusOr<StageResult> RunStage(const std::string& stage, uint64_t n) {
  if (stage == "read") {
    absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = OpenLog();
    if (!log.ok()) return log.status();
    const uint64_t stored = (*log)->Info().event_count;
    if (stored < n) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the read stage needs ", n, " events in --data_dir (--mode=preload), found ", stored));
    }
    // What a catch-up's log reads ask for (SubscriptionEnv's defaults).
    ReadOptions read_options;
    read_options.max_bytes = 4 << 20;
    StageResult result;
    uint64_t after = 0;
    const absl::Time start = absl::Now();
    CALLGRIND_ZERO_STATS;
    while (result.events < n) {
      read_options.max_events = std::min<uint64_t>(512, n - result.events);
      absl::StatusOr<std::vector<EventRecordPtr>> records = (*log)->ReadAfter(after, read_options);
      if (!records.ok()) return records.status();
      if (records->empty()) break;
      result.events += records->size();
      after = records->back()->sequence;
    }
    CALLGRIND_DUMP_STATS_AT("stage");
    result.wall = absl::Now() - start;
    if (result.events != n) {
      return absl::InternalError(absl::StrCat("read ", result.events, " of ", n, " events"));
    }
    return result;
  }

  absl::StatusOr<WebhookRequestFactory> factory = Factory();
  if (!factory.ok()) return factory.status();
  const absl::Time now = absl::Now();
  std::vector<std::string> bodies;
  bodies.reserve(n);
  for (uint64_t i = 0; i < n; ++i) bodies.push_back(factory->Body(i));
  StageResult result;
  result.events = n;

  if (stage == "verify") {
    absl::StatusOr<SignatureVerifier> verifier =
        SignatureVerifier::Create({{"bench", kSecret}}, absl::Seconds(300));
    if (!verifier.ok()) return verifier.status();
    std::vector<std::string> headers;
    headers.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      headers.push_back(MakeStripeSignatureHeader({kSecret}, absl::ToUnixSeconds(now), bodies[i]));
    }
    uint64_t ok = 0;
    const absl::Time start = absl::Now();
    CALLGRIND_ZERO_STATS;
    for (uint64_t i = 0; i < n; ++i) ok += verifier->Verify(headers[i], bodies[i], now).ok();
    CALLGRIND_DUMP_STATS_AT("stage");
    result.wall = absl::Now() - start;
    if (ok != n) return absl::InternalError("a signature did not verify");
    return result;
  }

  if (stage == "decode") {
    uint64_t bytes = 0;
    const absl::Time start = absl::Now();
    CALLGRIND_ZERO_STATS;
    for (uint64_t i = 0; i < n; ++i) {
      absl::StatusOr<NewEvent> event = DecodeToNewEvent(bodies[i], now);
      if (!event.ok()) return event.status();
      bytes += event->event_bytes.size();
    }
    CALLGRIND_DUMP_STATS_AT("stage");
    result.wall = absl::Now() - start;
    if (bytes == 0) return absl::InternalError("nothing decoded");
    return result;
  }

  // append and fanout work on decoded events.
  std::vector<NewEvent> events;
  events.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    absl::StatusOr<NewEvent> event = DecodeToNewEvent(bodies[i], now);
    if (!event.ok()) return event.status();
    events.push_back(*std::move(event));
  }
  bodies.clear();

  if (stage == "append") {
    absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = OpenLog();
    if (!log.ok()) return log.status();
    const absl::Time start = absl::Now();
    CALLGRIND_ZERO_STATS;
    const bool ok = AppendAll(log->get(), std::move(events), absl::GetFlag(FLAGS_in_flight));
    CALLGRIND_DUMP_STATS_AT("stage");
    result.wall = absl::Now() - start;
    if (!ok) return absl::InternalError("an append failed");
    return result;
  }

  if (stage == "fanout") {
    std::vector<EventRecordPtr> records;
    records.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      auto record = std::make_shared<EventRecord>();
      record->sequence = i + 1;
      record->id = events[i].id;
      record->type = events[i].type;
      record->account = events[i].account;
      record->livemode = events[i].livemode;
      record->receive_time = events[i].receive_time;
      record->event_bytes = std::move(events[i].event_bytes);
      record->raw_json = std::move(events[i].raw_json);
      records.push_back(std::move(record));
    }
    struct Sub {
      EventFilter filter;
      uint64_t cursor = 0;
    };
    std::vector<Sub> subs;
    EventHub hub(EventHubOptions(), 0);
    for (const NamedFilter& f :
         BenchFilters(absl::GetFlag(FLAGS_filters), absl::GetFlag(FLAGS_subscribers))) {
      absl::StatusOr<EventFilter> filter = EventFilter::Create(f.filter);
      if (!filter.ok()) return filter.status();
      subs.push_back({*std::move(filter), 0});
      hub.AddWaiter(std::make_shared<NoopWaiter>());
    }
    uint64_t deliveries = 0;
    const absl::Time start = absl::Now();
    CALLGRIND_ZERO_STATS;
    for (uint64_t i = 0; i < n; ++i) {
      hub.OnAppended(absl::MakeConstSpan(&records[i], 1));
      for (Sub& sub : subs) {
        EventHub::Read read = hub.ReadAfter(sub.cursor, 64);
        for (const EventRecordPtr& record : read.records) {
          sub.cursor = record->sequence;
          if (!sub.filter.Matches(*record)) continue;
          grpc::ByteBuffer message = SubscribeResponseBuffer(record, false);
          deliveries += message.Length() > 0;
        }
      }
    }
    CALLGRIND_DUMP_STATS_AT("stage");
    result.wall = absl::Now() - start;
    result.deliveries = deliveries;
    return result;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown stage ", stage));
}

int Stage() {
  const std::string stage = absl::GetFlag(FLAGS_stage);
  const uint64_t n = absl::GetFlag(FLAGS_events);
  absl::StatusOr<StageResult> result = RunStage(stage, n);
  if (!result.ok()) {
    std::cerr << "stage_bench: " << result.status() << "\n";
    return 1;
  }
  std::cout << absl::StrFormat(
                   R"({"mode":"stage","stage":"%s","events":%d,"size":%d,"subscribers":%d,)"
                   R"("deliveries":%d,"wall_ns_per_event":%.1f})",
                   stage, result->events, absl::GetFlag(FLAGS_size),
                   stage == "fanout" ? absl::GetFlag(FLAGS_subscribers) : 0, result->deliveries,
                   absl::ToDoubleNanoseconds(result->wall) / std::max<uint64_t>(n, 1))
            << std::endl;
  return 0;
}

int Fsync() {
  const std::string path = absl::StrCat(absl::GetFlag(FLAGS_dir), "/fsync-loop.bench");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::cerr << "stage_bench: cannot create " << path << "\n";
    return 1;
  }
  std::vector<char> block(4096, 'x');
  // Appends like a WAL does, wrapping at 64 MiB so the file stays small.
  constexpr off_t kWrap = 64 << 20;
  off_t offset = 0;
  uint64_t count = 0;
  // Each write + fdatasync's time: the disk's tail bounds the log's.
  LatencyHistogram latency;
  // The CPU each write + fdatasync costs this process (in a VM, submitting
  // the I/O to the virtual disk can cost more than the syscalls themselves).
  const absl::Duration cpu_before = ProcessCpuTime(getpid());
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(absl::GetFlag(FLAGS_seconds));
  absl::Time now = start;
  while (now < end) {
    if (pwrite(fd, block.data(), block.size(), offset) != static_cast<ssize_t>(block.size()) ||
        fdatasync(fd) != 0) {
      std::cerr << "stage_bench: write or fdatasync failed\n";
      close(fd);
      return 1;
    }
    offset = (offset + 4096) % kWrap;
    ++count;
    const absl::Time before = now;
    now = absl::Now();
    latency.Record(absl::ToInt64Nanoseconds(now - before));
  }
  const absl::Duration cpu = ProcessCpuTime(getpid()) - cpu_before;
  close(fd);
  std::filesystem::remove(path);
  const double seconds = absl::ToDoubleSeconds(now - start);
  std::cout << absl::StrFormat(R"({"mode":"fsync","fsyncs":%d,"seconds":%.3f,"per_s":%.1f,)"
                               R"("cpu_us_per_fsync":%.1f,"latency":%s})",
                               count, seconds, count / seconds,
                               count > 0 ? absl::ToDoubleMicroseconds(cpu) / count : 0.0,
                               latency.ToJson())
            << std::endl;
  return 0;
}

int Preload() {
  absl::StatusOr<WebhookRequestFactory> factory = Factory();
  if (!factory.ok()) {
    std::cerr << "stage_bench: " << factory.status() << "\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<SqliteEventLog>> log = OpenLog();
  if (!log.ok()) {
    std::cerr << "stage_bench: " << log.status() << "\n";
    return 1;
  }
  // Decode each template once; per event only the id's digits change, in
  // the raw body and in the serialized Event alike (same length).
  struct Template {
    NewEvent event;
    size_t raw_digits_at;
    size_t bytes_digits_at;
  };
  const absl::Time now = absl::Now();
  std::vector<Template> templates;
  for (uint64_t i = 0; i < 64; ++i) {
    const uint64_t index = kPreloadIndexBase + i;
    absl::StatusOr<NewEvent> event = DecodeToNewEvent(factory->Body(index), now);
    if (!event.ok()) {
      std::cerr << "stage_bench: " << event.status() << "\n";
      return 1;
    }
    const std::string id = EventId(index);
    const size_t raw_at = event->raw_json.find(id);
    const size_t bytes_at = event->event_bytes.find(id);
    if (raw_at == std::string::npos || bytes_at == std::string::npos) {
      std::cerr << "stage_bench: template id not found\n";
      return 1;
    }
    templates.push_back(
        {*std::move(event), raw_at + kEventIdPrefix.size(), bytes_at + kEventIdPrefix.size()});
  }
  const uint64_t n = absl::GetFlag(FLAGS_events);
  const absl::Time start = absl::Now();
  constexpr uint64_t kChunk = 50'000;
  for (uint64_t done = 0; done < n;) {
    std::vector<NewEvent> chunk;
    const uint64_t end = std::min(n, done + kChunk);
    chunk.reserve(end - done);
    for (uint64_t k = done; k < end; ++k) {
      const uint64_t index = kPreloadIndexBase + k;
      const Template& t = templates[index % templates.size()];
      NewEvent event = t.event;
      event.id = EventId(index);
      const absl::string_view digits = absl::string_view(event.id).substr(kEventIdPrefix.size());
      event.raw_json.replace(t.raw_digits_at, kEventIdDigits, digits.data(), digits.size());
      event.event_bytes.replace(t.bytes_digits_at, kEventIdDigits, digits.data(), digits.size());
      chunk.push_back(std::move(event));
    }
    if (!AppendAll(log->get(), std::move(chunk), 2048)) {
      std::cerr << "stage_bench: preload append failed\n";
      return 1;
    }
    done = end;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const LogInfo info = (*log)->Info();
  log->reset();
  std::cout << absl::StrFormat(R"({"mode":"preload","events":%d,"seconds":%.3f,"log_bytes":%d})",
                               info.event_count, seconds, info.event_bytes)
            << std::endl;
  return 0;
}

}  // namespace
}  // namespace sidestream::bench

int main(int argc, char** argv) {
  sidestream::bench::InitBenchProcess(
      argc, argv,
      "Sidestream's stages in-process, for callgrind's instruction counts, and the suite's\n"
      "helpers (preload, fsync loop).\n"
      "Usage: sidestream-bench-stages --mode=stage|preload|fsync [flags]");
  if (absl::GetFlag(FLAGS_mutex_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kAbort);  // Debian's default
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "stage") return sidestream::bench::Stage();
  if (mode == "fsync") return sidestream::bench::Fsync();
  if (mode == "preload") return sidestream::bench::Preload();
  std::cerr << "stage_bench: unknown --mode " << mode << "\n";
  return 2;
}
