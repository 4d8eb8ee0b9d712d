// sidestream-loadgen: runs one benchmark scenario against a target it starts
// itself (the real sidestream binary on ephemeral ports and a fresh data
// directory, or one of the baselines of this directory) and prints one JSON
// object with what it measured. scripts/bench runs the whole suite with it.
//
// Scenarios (--scenario):
//   ingest   HTTP load over --connections keep-alive connections, at --rate
//            requests/s or flat out (--rate=0), with optional Subscribe
//            streams (--subscribers, --stalled of them stalled, --filters).
//            Targets: sidestream, beast (bare Beast responder), beast_hmac,
//            node (the Node.js receiver of the issue: express and the stripe
//            SDK, bench/node_receiver.js; needs --node_modules).
//   fanout   --subscribers streams each receive --events events.
//            sidestream: a burst of --events webhooks, read from the hub's
//            window by streams opened after it (OLDEST), or live (--live).
//            grpc_raw: the raw pre-serialized gRPC sender.
//   backlog  sidestream on a preloaded --data_dir: start-up time, idle RSS,
//            catch-up rate from OLDEST, then --stalled stalled streams and
//            --subscribers live ones during --rate load: RSS growth and
//            end-to-end latency.
//
// Every latency is measured on one monotonic clock in this process. At a
// fixed rate, acknowledgement and end-to-end latencies start at the time
// each request was due (no coordinated omission).
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include <sys/resource.h>

#include "bench/bench_process.h"
#include "bench/child_process.h"
#include "bench/filters.h"
#include "bench/http_driver.h"
#include "bench/json.h"
#include "bench/proc_stats.h"
#include "bench/subscribers.h"
#include "bench/webhook_requests.h"
#include "sidestream/v1/admin_service.grpc.pb.h"
#include "sidestream/v1/events_service.pb.h"
#include "tests/testing/e2e_util.h"
#include "tests/testing/server_process.h"

ABSL_FLAG(std::string, scenario, "ingest", "ingest, fanout or backlog.");
ABSL_FLAG(std::string, target, "sidestream", "sidestream, beast, beast_hmac, node or grpc_raw.");
ABSL_FLAG(std::string, node, "/usr/bin/node", "The Node.js binary of --target=node.");
ABSL_FLAG(std::string, node_modules, "",
          "--target=node: a directory whose node_modules has express and stripe.");
ABSL_FLAG(std::string, label, "", "Name of this run in the report.");
ABSL_FLAG(std::string, bin_dir, "",
          "Directory holding sidestream and the baseline binaries. Default: this binary's.");
ABSL_FLAG(std::string, work_dir, "",
          "Scratch directory for data directories and logs, on the disk to measure. Default: "
          "a new directory under $TMPDIR (or /tmp).");
ABSL_FLAG(std::string, data_parent, "",
          "Where sidestream's fresh data directories go. Default: --work_dir. A tmpfs here "
          "(/dev/shm) makes fsync free: a diagnostic of the CPU path, not a durable setup.");
ABSL_FLAG(int, connections, 16, "HTTP keep-alive connections.");
ABSL_FLAG(int, threads, 1, "HTTP sender threads.");
ABSL_FLAG(double, rate, 0, "Webhooks per second; 0 = flat out.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Load before measuring starts.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Measured load.");
ABSL_FLAG(std::vector<std::string>, sizes, {"3072"},
          "Webhook body sizes in bytes, used in turn (comma list).");
ABSL_FLAG(int, subscribers, 0, "Subscribe streams (not stalled).");
ABSL_FLAG(int, stalled, 0, "Additional Subscribe streams that stop reading.");
ABSL_FLAG(std::string, filters, "mixed", "Filters of the streams: mixed or all.");
ABSL_FLAG(uint32_t, max_batch_events, 0,
          "ingest: the live streams' SubscribeRequest.max_batch_events (0: one event per "
          "message; the C++ client asks for 256).");
ABSL_FLAG(uint64_t, events, 5000, "fanout: events every stream receives.");
ABSL_FLAG(bool, live, false,
          "fanout: open the streams before the burst (LATEST) instead of after it (OLDEST).");
ABSL_FLAG(std::string, data_dir, "", "backlog: a preloaded data directory, used in place.");
ABSL_FLAG(bool, catch_up_only, false,
          "backlog: measure start-up, idle RSS and the catch-ups, then stop (no load, no "
          "stalled streams); for A/B runs of the read path.");
ABSL_FLAG(std::vector<std::string>, server_flags, {},
          "Extra flags for sidestream (comma list), such as --http_threads=2.");
ABSL_FLAG(uint64_t, presign, 200000,
          "Most requests signed before the run; later ones are signed on the spot.");
ABSL_FLAG(std::string, out, "", "Also append the JSON line to this file.");

namespace sidestream::bench {
namespace {

constexpr char kSubscribeMethod[] = "/sidestream.v1.Events/Subscribe";

std::string SelfDir() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : self.parent_path().string();
}

std::string MakeDir(const std::string& parent, const std::string& prefix) {
  std::string templ = absl::StrCat(parent, "/", prefix, "-XXXXXX");
  return mkdtemp(templ.data()) != nullptr ? templ : "";
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return absl::StrCat(a, " ", b, " ", c);
}

absl::Duration SelfCpuTime() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return absl::DurationFromTimeval(usage.ru_utime) + absl::DurationFromTimeval(usage.ru_stime);
}

void SleepUntilNs(int64_t when) {
  const int64_t left = when - NowNs();
  if (left > 0) absl::SleepFor(absl::Nanoseconds(left));
}

// What is being measured: a running process and its addresses.
struct Target {
  std::unique_ptr<testing::ServerProcess> server;
  std::unique_ptr<ChildProcess> child;
  pid_t pid = -1;
  std::string http_host;
  int http_port = 0;
  std::string grpc;  // host:port
  double ready_ms = 0;
  std::string data_dir;
  bool owns_data_dir = false;

  ~Target() {
    server.reset();
    child.reset();
    if (owns_data_dir && !data_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir, ec);
      // ServerProcess keeps the server's stderr beside the data directory.
      const std::filesystem::path dir(data_dir);
      const std::string log_prefix = dir.filename().string() + ".server-";
      for (const auto& entry : std::filesystem::directory_iterator(dir.parent_path(), ec)) {
        if (absl::StartsWith(entry.path().filename().string(), log_prefix)) {
          std::filesystem::remove(entry.path(), ec);
        }
      }
    }
  }
};

absl::Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), port)) {
    return absl::InternalError(absl::StrCat("bad address ", address));
  }
  *host = address.substr(0, colon);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Target>> StartTarget(const std::string& kind,
                                                    const std::string& work_dir,
                                                    const std::string& bin_dir,
                                                    const std::string& data_dir) {
  auto target = std::make_unique<Target>();
  const int64_t t0 = NowNs();
  if (kind == "sidestream") {
    testing::ServerProcessOptions options;
    if (data_dir.empty()) {
      const std::string parent = absl::GetFlag(FLAGS_data_parent);
      options.data_dir = MakeDir(parent.empty() ? work_dir : parent, "data");
      if (options.data_dir.empty()) {
        return absl::InternalError("cannot create a data directory");
      }
      target->owns_data_dir = true;
    } else {
      options.data_dir = data_dir;
    }
    target->data_dir = options.data_dir;
    options.args = absl::GetFlag(FLAGS_server_flags);
    options.ready_timeout = absl::Minutes(5);
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
        testing::ServerProcess::Start(options);
    if (!server.ok()) return server.status();
    target->server = *std::move(server);
    target->pid = target->server->pid();
    target->grpc = target->server->grpc_address();
    absl::Status split =
        SplitHostPort(target->server->http_address(), &target->http_host, &target->http_port);
    if (!split.ok()) return split;
  } else if (kind == "beast" || kind == "beast_hmac" || kind == "grpc_raw" || kind == "node") {
    std::vector<std::string> args;
    if (kind == "node") {
      args = {absl::GetFlag(FLAGS_node), bin_dir + "/sidestream-bench-node.js",
              absl::StrCat("--secret=", testing::kTestSecret),
              absl::StrCat("--modules=", absl::GetFlag(FLAGS_node_modules))};
    } else if (kind == "grpc_raw") {
      args = {bin_dir + "/sidestream-bench-grpc", "--listen=127.0.0.1:0",
              absl::StrCat("--messages_per_stream=", absl::GetFlag(FLAGS_events)),
              absl::StrCat("--event_size=", absl::GetFlag(FLAGS_sizes).front())};
    } else {
      args = {bin_dir + "/sidestream-bench-beast", "--listen=127.0.0.1:0"};
      if (kind == "beast_hmac")
        args.push_back(absl::StrCat("--hmac_secret=", testing::kTestSecret));
    }
    absl::StatusOr<std::unique_ptr<ChildProcess>> child =
        ChildProcess::Start(args, absl::StrCat(work_dir, "/", kind, ".log"), absl::Seconds(30));
    if (!child.ok()) return child.status();
    target->child = *std::move(child);
    target->pid = target->child->pid();
    if (kind == "grpc_raw") {
      target->grpc = target->child->ReadyField("grpc");
    } else {
      absl::Status split =
          SplitHostPort(target->child->ReadyField("http"), &target->http_host, &target->http_port);
      if (!split.ok()) return split;
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown --target ", kind));
  }
  target->ready_ms = (NowNs() - t0) / 1e6;
  return target;
}

std::vector<SubscriberSpec> Specs(const std::string& filters, int live, int stalled,
                                  v1::StartPosition live_position,
                                  v1::StartPosition stalled_position,
                                  uint32_t max_batch_events = 0) {
  std::vector<SubscriberSpec> specs;
  for (const NamedFilter& f : BenchFilters(filters, live)) {
    v1::SubscribeRequest request;
    *request.mutable_filter() = f.filter;
    request.set_position(live_position);
    request.set_max_batch_events(max_batch_events);
    specs.push_back({request.SerializeAsString(), false, f.label});
  }
  for (int i = 0; i < stalled; ++i) {
    v1::SubscribeRequest request;
    request.set_position(stalled_position);
    specs.push_back({request.SerializeAsString(), true, "all (stalled)"});
  }
  return specs;
}

absl::StatusOr<WebhookRequestFactory> Factory(const Target& target) {
  WebhookRequestOptions options;
  for (const std::string& size : absl::GetFlag(FLAGS_sizes)) {
    size_t bytes = 0;
    if (!absl::SimpleAtoi(size, &bytes)) {
      return absl::InvalidArgumentError(absl::StrCat("bad --sizes entry ", size));
    }
    options.sizes.push_back(bytes);
  }
  options.secret = testing::kTestSecret;
  options.host = absl::StrCat(target.http_host, ":", target.http_port);
  return WebhookRequestFactory::Create(options);
}

std::string HttpJson(const HttpLoadOptions& options, const HttpLoadResult& r,
                     double measured_seconds, const RequestPool& pool,
                     const WebhookRequestFactory& factory) {
  JsonObject statuses;
  for (const auto& [status, count] : r.status_counts) statuses.Uint(absl::StrCat(status), count);
  return JsonObject()
      .Int("connections", options.connections)
      .Int("threads", options.threads)
      .Double("rate_target", options.rate)
      .Double("measured_s", measured_seconds)
      .Uint("body_bytes_mean", factory.mean_body_bytes())
      .Uint("sent", r.sent)
      .Uint("measured_answers", r.measured_answers)
      .Uint("measured_ok", r.measured_ok)
      .Double("throughput_per_s", measured_seconds > 0 ? r.measured_ok / measured_seconds : 0)
      .Raw("statuses", statuses.str())
      .Uint("io_errors", r.io_errors)
      .Uint("missed", r.missed)
      .Uint("unsent", r.unsent)
      .Uint("unanswered", r.unanswered)
      .Uint("signed_on_the_spot", pool.built_on_the_spot())
      .Raw("ack_latency", r.ack_latency.ToJson())
      .str();
}

std::string SubscribersJson(const SubscriberTotals& t, double seconds) {
  return JsonObject()
      .Uint("streams", t.streams)
      .Uint("stalled", t.stalled)
      .Uint("deliveries", t.deliveries)
      .Double("deliveries_per_s", seconds > 0 ? t.deliveries / seconds : 0)
      .Double("bytes_per_delivery", t.deliveries > 0 ? double(t.bytes) / t.deliveries : 0)
      .Uint("checkpoints", t.checkpoints)
      .Uint("ended_early", t.ended_early)
      .String("first_error", t.first_error)
      .Raw("end_to_end_latency", t.end_to_end.ToJson())
      .str();
}

// CPU and RSS of the target and the generator over a measured window.
struct Usage {
  absl::Duration target_cpu;
  absl::Duration self_cpu;
  std::map<std::string, absl::Duration> target_threads;  // by thread name
};
struct UsageMark {
  absl::Duration target;
  absl::Duration self;
  std::map<pid_t, ThreadCpu> threads;
};
UsageMark Mark(pid_t pid) { return {ProcessCpuTime(pid), SelfCpuTime(), ThreadCpuTimes(pid)}; }
Usage Between(const UsageMark& a, const UsageMark& b) {
  Usage usage{b.target - a.target, b.self - a.self, {}};
  // By thread id, then summed by name: a thread that started in the window
  // counts from zero; one that ended in it is not counted.
  for (const auto& [tid, thread] : b.threads) {
    auto before = a.threads.find(tid);
    const absl::Duration used =
        thread.cpu - (before == a.threads.end() ? absl::ZeroDuration() : before->second.cpu);
    if (used > absl::ZeroDuration()) usage.target_threads[thread.name] += used;
  }
  return usage;
}

// One HTTP load run with the server's CPU marked at the start and end of the
// measured window and its peak RSS sampled throughout.
struct MeasuredLoad {
  HttpLoadResult result;
  UsageMark start, stop;
  int64_t rss_peak_kib = 0;
};

MeasuredLoad RunMeasuredHttpLoad(const HttpLoadOptions& options, pid_t pid) {
  MeasuredLoad measured;
  RssSampler rss(pid, absl::Milliseconds(100));
  std::thread load([&] { measured.result = RunHttpLoad(options); });
  // Waits for the edges of the measured window (the run's schedule).
  SleepUntilNs(options.measure_from_ns);
  measured.start = Mark(pid);
  SleepUntilNs(options.stop_ns);
  measured.stop = Mark(pid);
  load.join();
  measured.rss_peak_kib = rss.peak_kib();
  return measured;
}

std::string ServerJson(const Target& target, const Usage& usage, double seconds, uint64_t units,
                       int64_t rss_idle, int64_t rss_peak) {
  const double cpu = absl::ToDoubleSeconds(usage.target_cpu);
  // Where the CPU went, by the server's thread names (ss-http, ss-log-writer,
  // ss-checkpoint, ...; gRPC names its own), per unit like cpu_us_per_unit.
  JsonObject by_thread;
  for (const auto& [name, used] : usage.target_threads) {
    by_thread.Double(name, units > 0 ? absl::ToDoubleSeconds(used) * 1e6 / units : 0);
  }
  return JsonObject()
      .Int("pid", target.pid)
      .Double("ready_ms", target.ready_ms)
      .Double("cpu_s", cpu)
      .Double("cpu_cores", seconds > 0 ? cpu / seconds : 0)
      .Double("cpu_us_per_unit", units > 0 ? cpu * 1e6 / units : 0)
      .Raw("cpu_us_per_unit_by_thread", by_thread.str())
      .Int("rss_idle_kib", rss_idle)
      .Int("rss_peak_kib", rss_peak)
      .Int("rss_end_kib", ProcessRssKib(target.pid))
      .str();
}

// The log's group-commit counters (Admin.GetStats), to report how many
// webhooks each fsync carried, and its WAL maintenance. Zero when the target
// is not Sidestream.
struct CommitMark {
  uint64_t commits = 0;
  uint64_t appends = 0;
  uint64_t wal_checkpoints = 0;
  uint64_t wal_restarts = 0;
};
CommitMark Commits(const Target& target) {
  CommitMark mark;
  if (target.server == nullptr) return mark;
  auto stub =
      v1::Admin::NewStub(grpc::CreateChannel(target.grpc, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetStatsResponse stats;
  if (stub->GetStats(&context, v1::GetStatsRequest(), &stats).ok()) {
    mark.commits = stats.log().commits();
    mark.appends = stats.log().committed_appends();
    mark.wal_checkpoints = stats.log().wal_checkpoints();
    mark.wal_restarts = stats.log().wal_restarts();
  }
  return mark;
}
std::string CommitsJson(const CommitMark& a, const CommitMark& b, double seconds) {
  const uint64_t commits = b.commits - a.commits;
  const uint64_t appends = b.appends - a.appends;
  return JsonObject()
      .Uint("commits", commits)
      .Double("commits_per_s", seconds > 0 ? commits / seconds : 0)
      .Double("appends_per_commit", commits > 0 ? static_cast<double>(appends) / commits : 0)
      .Uint("wal_checkpoints", b.wal_checkpoints - a.wal_checkpoints)
      .Uint("wal_restarts", b.wal_restarts - a.wal_restarts)
      .str();
}

struct Common {
  std::string work_dir;
  std::string bin_dir;
};

// Flat-out or fixed-rate HTTP load, optionally with Subscribe streams.
absl::Status RunIngest(const Common& common, JsonObject* out) {
  const std::string kind = absl::GetFlag(FLAGS_target);
  absl::StatusOr<std::unique_ptr<Target>> started =
      StartTarget(kind, common.work_dir, common.bin_dir, "");
  if (!started.ok()) return started.status();
  Target& target = **started;
  absl::StatusOr<WebhookRequestFactory> factory = Factory(target);
  if (!factory.ok()) return factory.status();

  const double rate = absl::GetFlag(FLAGS_rate);
  const absl::Duration warmup = absl::GetFlag(FLAGS_warmup);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const double total_seconds = absl::ToDoubleSeconds(warmup + duration);
  // Baselines ignore ids, so they may reuse a small pool; Sidestream
  // deduplicates, so every request must be new.
  // Flat out, the pool covers 10,000 webhooks/s; past it requests are
  // signed on the spot (reported as signed_on_the_spot).
  const bool reuse = kind != "sidestream";
  const size_t wanted = reuse      ? 4096
                        : rate > 0 ? static_cast<size_t>(rate * total_seconds * 1.02) + 64
                                   : static_cast<size_t>(10000 * total_seconds);
  RequestPool pool(&*factory, std::min<size_t>(wanted, absl::GetFlag(FLAGS_presign)), reuse,
                   absl::ToUnixSeconds(absl::Now()));
  SendTimes send_times(rate > 0 ? static_cast<size_t>(rate * total_seconds * 1.1) + 1024
                                : 4'000'000);

  std::unique_ptr<SubscriberSet> subscribers;
  const int live = absl::GetFlag(FLAGS_subscribers);
  const int stalled = absl::GetFlag(FLAGS_stalled);
  if (kind == "sidestream" && live + stalled > 0) {
    subscribers = std::make_unique<SubscriberSet>(
        target.grpc, kSubscribeMethod,
        Specs(absl::GetFlag(FLAGS_filters), live, stalled, v1::START_POSITION_LATEST,
              v1::START_POSITION_LATEST, absl::GetFlag(FLAGS_max_batch_events)),
        &send_times);
    if (!subscribers->WaitForFirstMessages(absl::Seconds(60))) {
      return absl::DeadlineExceededError("subscribers did not start within 60 s");
    }
  }
  // Settle before the idle reading (shorter for the smoke runs).
  absl::SleepFor(std::min(absl::Milliseconds(500), absl::GetFlag(FLAGS_warmup)));
  const int64_t rss_idle = ProcessRssKib(target.pid);
  const CommitMark commits_before = Commits(target);

  HttpLoadOptions options;
  options.host = target.http_host;
  options.port = target.http_port;
  options.connections = absl::GetFlag(FLAGS_connections);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.rate = rate;
  options.start_ns = NowNs() + 50'000'000;
  options.measure_from_ns = options.start_ns + absl::ToInt64Nanoseconds(warmup);
  options.stop_ns = options.measure_from_ns + absl::ToInt64Nanoseconds(duration);
  options.requests = &pool;
  options.send_times = &send_times;
  if (subscribers != nullptr) subscribers->SetWindow(options.measure_from_ns, options.stop_ns);

  const MeasuredLoad measured = RunMeasuredHttpLoad(options, target.pid);
  const HttpLoadResult& result = measured.result;
  const UsageMark& start_mark = measured.start;
  const UsageMark& stop_mark = measured.stop;
  const int64_t rss_peak = measured.rss_peak_kib;
  const double seconds = absl::ToDoubleSeconds(duration);
  out->Raw("http", HttpJson(options, result, seconds, pool, *factory));
  // Warm-up included: the counters cover the whole run.
  if (target.server != nullptr) {
    out->Raw("log", CommitsJson(commits_before, Commits(target),
                                absl::ToDoubleSeconds(warmup + duration)));
  }
  if (subscribers != nullptr) {
    // Events acknowledged at the end of the window may still be on their
    // way to the streams.
    uint64_t before = 0;
    for (int i = 0; i < 50; ++i) {
      absl::SleepFor(absl::Milliseconds(100));
      const uint64_t now = subscribers->Totals().end_to_end.count();
      if (now == before) break;
      before = now;
    }
    out->Raw("subscribers", SubscribersJson(subscribers->Totals(), seconds));
    out->Uint("max_batch_events", absl::GetFlag(FLAGS_max_batch_events));
  }
  const Usage usage = Between(start_mark, stop_mark);
  out->Raw("server", ServerJson(target, usage, seconds, result.measured_ok, rss_idle, rss_peak));
  out->Double("loadgen_cpu_s", absl::ToDoubleSeconds(usage.self_cpu));
  return absl::OkStatus();
}

absl::Status RunFanout(const Common& common, JsonObject* out) {
  const std::string kind = absl::GetFlag(FLAGS_target);
  const uint64_t events = absl::GetFlag(FLAGS_events);
  const int streams = absl::GetFlag(FLAGS_subscribers);
  absl::StatusOr<std::unique_ptr<Target>> started =
      StartTarget(kind, common.work_dir, common.bin_dir, "");
  if (!started.ok()) return started.status();
  Target& target = **started;
  absl::SleepFor(absl::Milliseconds(300));
  const int64_t rss_idle = ProcessRssKib(target.pid);
  // Every stream takes every event, so each must receive exactly `events`.
  const bool live = absl::GetFlag(FLAGS_live);
  const v1::StartPosition position = live ? v1::START_POSITION_LATEST : v1::START_POSITION_OLDEST;
  std::vector<SubscriberSpec> specs = Specs("all", streams, 0, position, position);
  const auto opened = [&](const SendTimes* times) {
    return std::make_unique<SubscriberSet>(
        target.grpc, kind == "grpc_raw" ? "/bench.Raw/Stream" : kSubscribeMethod, specs, times);
  };

  // Declared before the streams, which read it until they are destroyed.
  SendTimes send_times(kind == "grpc_raw" ? 1 : events + 1);
  std::unique_ptr<SubscriberSet> subscribers;
  UsageMark start_mark;
  int64_t rss_peak = 0;
  std::optional<RssSampler> rss;
  std::optional<HttpLoadResult> burst;
  if (kind == "grpc_raw") {
    start_mark = Mark(target.pid);
    rss.emplace(target.pid, absl::Milliseconds(100));
    subscribers = opened(nullptr);
  } else {
    absl::StatusOr<WebhookRequestFactory> factory = Factory(target);
    if (!factory.ok()) return factory.status();
    RequestPool pool(&*factory, events, false, absl::ToUnixSeconds(absl::Now()));
    HttpLoadOptions options;
    options.host = target.http_host;
    options.port = target.http_port;
    options.connections = absl::GetFlag(FLAGS_connections);
    options.max_requests = events;
    options.requests = &pool;
    options.send_times = &send_times;
    if (live) {
      subscribers = opened(&send_times);
      if (!subscribers->WaitForFirstMessages(absl::Seconds(60))) {
        return absl::DeadlineExceededError("subscribers did not start within 60 s");
      }
      start_mark = Mark(target.pid);
      rss.emplace(target.pid, absl::Milliseconds(100));
    }
    options.start_ns = NowNs();
    options.measure_from_ns = options.start_ns;
    options.stop_ns = options.start_ns + 300'000'000'000;
    burst = RunHttpLoad(options);
    if (burst->measured_ok != events) {
      return absl::InternalError(absl::StrCat("only ", burst->measured_ok, " of ", events,
                                              " webhooks of the burst were accepted"));
    }
    if (!live) {
      start_mark = Mark(target.pid);
      rss.emplace(target.pid, absl::Milliseconds(100));
      subscribers = opened(nullptr);
    }
    const double burst_s = (burst->last_answer_ns - burst->first_send_ns) / 1e9;
    out->Raw("burst", JsonObject()
                          .Uint("webhooks", burst->measured_ok)
                          .Int("connections", options.connections)
                          .Double("seconds", burst_s)
                          .Double("throughput_per_s", burst_s > 0 ? events / burst_s : 0)
                          .Raw("ack_latency", burst->ack_latency.ToJson())
                          .str());
  }
  const bool complete = subscribers->WaitForEvents(events, absl::Minutes(5));
  const UsageMark stop_mark = Mark(target.pid);
  rss_peak = rss->peak_kib();
  rss.reset();
  const SubscriberTotals totals = subscribers->Totals();
  const double seconds = (totals.last_event_ns - totals.first_event_ns) / 1e9;
  out->Bool("complete", complete && totals.deliveries == events * streams);
  out->Uint("events_per_stream", events);
  out->Raw("subscribers", SubscribersJson(totals, seconds));
  out->Double("delivery_window_s", seconds);
  const Usage usage = Between(start_mark, stop_mark);
  out->Raw("server", ServerJson(target, usage, seconds, totals.deliveries, rss_idle, rss_peak));
  out->Double("loadgen_cpu_s", absl::ToDoubleSeconds(usage.self_cpu));
  if (!complete) return absl::DeadlineExceededError("not every stream got every event");
  return absl::OkStatus();
}

absl::Status RunBacklog(const Common& common, JsonObject* out) {
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) return absl::InvalidArgumentError("backlog needs --data_dir");
  absl::StatusOr<std::unique_ptr<Target>> started =
      StartTarget("sidestream", common.work_dir, common.bin_dir, data_dir);
  if (!started.ok()) return started.status();
  Target& target = **started;
  absl::SleepFor(absl::Seconds(1));
  const int64_t rss_idle = ProcessRssKib(target.pid);

  // Catch-up: one stream reads everything from the oldest event, one event
  // per message, then again with up to 256 events per message (what the C++
  // client asks for).
  for (const uint32_t batch : {0u, 256u}) {
    const UsageMark a = Mark(target.pid);
    const int64_t t0 = NowNs();
    SubscriberSet reader(
        target.grpc, kSubscribeMethod,
        Specs("all", 1, 0, v1::START_POSITION_OLDEST, v1::START_POSITION_OLDEST, batch), nullptr);
    const bool caught_up = reader.WaitForCaughtUp(absl::Minutes(10));
    const UsageMark b = Mark(target.pid);
    const SubscriberTotals t = reader.Totals();
    const double seconds = (t.caught_up_ns - t0) / 1e9;
    out->Raw(batch == 0 ? "catch_up" : "catch_up_batched",
             JsonObject()
                 .Bool("caught_up", caught_up && t.caught_up_ns > 0)
                 .Uint("max_batch_events", batch)
                 .Uint("events", t.deliveries)
                 .Double("seconds", seconds)
                 .Double("events_per_s", seconds > 0 ? t.deliveries / seconds : 0)
                 .Double("bytes_per_event", t.deliveries > 0 ? double(t.bytes) / t.deliveries : 0)
                 .Double("server_cpu_s", absl::ToDoubleSeconds(b.target - a.target))
                 .Double("loadgen_cpu_s", absl::ToDoubleSeconds(b.self - a.self))
                 .str());
    if (!caught_up) return absl::DeadlineExceededError("catch-up did not finish in 10 min");
  }
  if (absl::GetFlag(FLAGS_catch_up_only)) {
    out->Raw("server", JsonObject()
                           .Int("pid", target.pid)
                           .Double("ready_ms", target.ready_ms)
                           .Int("rss_idle_kib", rss_idle)
                           .Int("rss_after_catch_up_kib", ProcessRssKib(target.pid))
                           .str());
    return absl::OkStatus();
  }
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t rss_before_stalled = ProcessRssKib(target.pid);

  // Stalled streams from the oldest event, live ones from the head, during
  // a fixed-rate load.
  absl::StatusOr<WebhookRequestFactory> factory = Factory(target);
  if (!factory.ok()) return factory.status();
  const double rate = absl::GetFlag(FLAGS_rate) > 0 ? absl::GetFlag(FLAGS_rate) : 1000;
  const absl::Duration warmup = absl::GetFlag(FLAGS_warmup);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const double total_seconds = absl::ToDoubleSeconds(warmup + duration);
  RequestPool pool(&*factory, static_cast<size_t>(rate * total_seconds * 1.02) + 64, false,
                   absl::ToUnixSeconds(absl::Now()));
  SendTimes send_times(static_cast<size_t>(rate * total_seconds * 1.1) + 1024);
  SubscriberSet subscribers(
      target.grpc, kSubscribeMethod,
      Specs(absl::GetFlag(FLAGS_filters), absl::GetFlag(FLAGS_subscribers),
            absl::GetFlag(FLAGS_stalled), v1::START_POSITION_LATEST, v1::START_POSITION_OLDEST),
      &send_times);
  if (!subscribers.WaitForFirstMessages(absl::Seconds(60))) {
    return absl::DeadlineExceededError("subscribers did not start within 60 s");
  }
  HttpLoadOptions options;
  options.host = target.http_host;
  options.port = target.http_port;
  options.connections = absl::GetFlag(FLAGS_connections);
  options.rate = rate;
  options.start_ns = NowNs() + 50'000'000;
  options.measure_from_ns = options.start_ns + absl::ToInt64Nanoseconds(warmup);
  options.stop_ns = options.measure_from_ns + absl::ToInt64Nanoseconds(duration);
  options.requests = &pool;
  options.send_times = &send_times;
  subscribers.SetWindow(options.measure_from_ns, options.stop_ns);
  const MeasuredLoad measured = RunMeasuredHttpLoad(options, target.pid);
  const HttpLoadResult& result = measured.result;
  const UsageMark& a = measured.start;
  const UsageMark& b = measured.stop;
  const int64_t rss_peak = measured.rss_peak_kib;
  const double seconds = absl::ToDoubleSeconds(duration);
  out->Raw("http", HttpJson(options, result, seconds, pool, *factory));
  out->Raw("subscribers", SubscribersJson(subscribers.Totals(), seconds));
  out->Int("rss_before_stalled_kib", rss_before_stalled);
  out->Int("rss_growth_kib", rss_peak - rss_before_stalled);
  out->Raw("server",
           ServerJson(target, Between(a, b), seconds, result.measured_ok, rss_idle, rss_peak));
  return absl::OkStatus();
}

int Main() {
  Common common;
  common.bin_dir = absl::GetFlag(FLAGS_bin_dir).empty() ? SelfDir() : absl::GetFlag(FLAGS_bin_dir);
  // ServerProcess finds the server through this variable.
  setenv("SIDESTREAM_BIN_DIR", common.bin_dir.c_str(), 1);
  bool own_work_dir = false;
  common.work_dir = absl::GetFlag(FLAGS_work_dir);
  if (common.work_dir.empty()) {
    const char* tmp = getenv("TMPDIR");
    common.work_dir = MakeDir(tmp != nullptr ? tmp : "/tmp", "sidestream-loadgen");
    own_work_dir = true;
  }
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  JsonObject out;
  out.String("scenario", scenario)
      .String("target", scenario == "backlog" ? "sidestream" : absl::GetFlag(FLAGS_target))
      .String("label", absl::GetFlag(FLAGS_label))
      .String("time", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()))
      .Int("cores", std::thread::hardware_concurrency())
      .String("loadavg_before", LoadAverage())
      .String("sizes", absl::StrJoin(absl::GetFlag(FLAGS_sizes), ","));
  absl::Status ran;
  if (scenario == "ingest") {
    ran = RunIngest(common, &out);
  } else if (scenario == "fanout") {
    ran = RunFanout(common, &out);
  } else if (scenario == "backlog") {
    ran = RunBacklog(common, &out);
  } else {
    ran = absl::InvalidArgumentError(absl::StrCat("unknown --scenario ", scenario));
  }
  out.Bool("ok", ran.ok());
  if (!ran.ok()) out.String("error", ran.ToString());
  const std::string line = out.str();
  std::cout << line << std::endl;
  if (!absl::GetFlag(FLAGS_out).empty()) {
    std::ofstream file(absl::GetFlag(FLAGS_out), std::ios::app);
    file << line << "\n";
  }
  if (own_work_dir) {
    std::error_code ec;
    std::filesystem::remove_all(common.work_dir, ec);
  }
  if (!ran.ok()) std::cerr << "loadgen: " << ran << "\n";
  return ran.ok() ? 0 : 1;
}

}  // namespace
}  // namespace sidestream::bench

int main(int argc, char** argv) {
  sidestream::bench::InitBenchProcess(
      argc, argv,
      "Runs one benchmark scenario against Sidestream or a baseline it starts itself, and\n"
      "prints one JSON object of what it measured. scripts/bench runs the whole suite.\n"
      "Usage: sidestream-loadgen --scenario=ingest|fanout|backlog [--target=...] [flags]");
  return sidestream::bench::Main();
}
