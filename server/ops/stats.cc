#include "server/ops/stats.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include <sys/resource.h>

#include "server/common/metrics.h"
#include "server/common/time_proto.h"

namespace sidestream {
namespace {

uint64_t CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  uint64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count > 0 ? count - 1 : 0;  // less the descriptor of `dir` itself
}

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

void WriteHistogram(PrometheusWriter& out, absl::string_view name, absl::string_view help,
                    const v1::LatencyHistogram& histogram) {
  out.Family(name, "histogram", help);
  std::vector<double> bounds;
  std::vector<uint64_t> cumulative;
  for (const v1::LatencyBucket& bucket : histogram.buckets()) {
    if (!std::isinf(bucket.upper_bound_seconds())) bounds.push_back(bucket.upper_bound_seconds());
    cumulative.push_back(bucket.cumulative_count());
  }
  out.Histogram(name, {}, bounds, cumulative, histogram.count(), histogram.sum_seconds());
}

void Gauge(PrometheusWriter& out, absl::string_view name, absl::string_view help, double value) {
  out.Family(name, "gauge", help);
  out.Sample(name, {}, value);
}

void Gauge(PrometheusWriter& out, absl::string_view name, absl::string_view help, uint64_t value) {
  out.Family(name, "gauge", help);
  out.Sample(name, {}, value);
}

void Counter(PrometheusWriter& out, absl::string_view name, absl::string_view help,
             uint64_t value) {
  out.Family(name, "counter", help);
  out.Sample(name, {}, value);
}

}  // namespace

v1::ProcessStats ReadProcessStats(absl::Time start_time) {
  v1::ProcessStats process;
  process.set_resident_memory_bytes(ResidentBytes());
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    auto seconds = [](const timeval& tv) {
      return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    process.set_cpu_seconds(seconds(usage.ru_utime) + seconds(usage.ru_stime));
  }
  process.set_open_fds(CountOpenFds());
  process.set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - start_time));
  return process;
}

v1::GetStatsResponse CollectStats(const StatsSources& sources) {
  v1::GetStatsResponse response;
  *response.mutable_ingress() = sources.ingress->ToProto();
  const LogInfo info = sources.log->Info();
  v1::LogStats* log = response.mutable_log();
  log->set_log_epoch(info.epoch);
  log->set_first_sequence(info.event_count == 0 ? 0 : info.first_sequence);
  log->set_last_sequence(info.last_sequence);
  log->set_event_count(info.event_count);
  log->set_event_bytes(info.event_bytes);
  log->set_backend(info.backend);
  log->set_trimmed_events(info.trimmed_events);
  log->set_writable(info.writable);
  log->set_last_error(info.last_error);
  log->set_commits(info.commits);
  log->set_committed_appends(info.committed_appends);
  log->set_wal_checkpoints(info.wal_checkpoints);
  log->set_wal_restarts(info.wal_restarts);
  for (v1::SubscriptionStats& s : sources.registry->Stats()) {
    *response.add_subscriptions() = std::move(s);
  }
  v1::DeliveryStats* delivery = response.mutable_delivery();
  const DeliveryCounters& d = *sources.delivery;
  delivery->set_open_subscriptions(response.subscriptions_size());
  delivery->set_subscriptions_opened(d.subscriptions_opened.load(std::memory_order_relaxed));
  delivery->set_events_sent(d.events_sent.load(std::memory_order_relaxed));
  delivery->set_bytes_sent(d.bytes_sent.load(std::memory_order_relaxed));
  delivery->set_checkpoints_sent(d.checkpoints_sent.load(std::memory_order_relaxed));
  delivery->set_log_reads(d.log_reads.load(std::memory_order_relaxed));
  delivery->set_log_read_events(d.log_read_events.load(std::memory_order_relaxed));
  *response.mutable_start_time() = TimestampProto(sources.start_time);
  response.set_version(SIDESTREAM_VERSION);
  *response.mutable_process() = ReadProcessStats(sources.start_time);
  response.set_ready(sources.readiness ? sources.readiness().ready : true);
  return response;
}

std::string RenderPrometheus(const v1::GetStatsResponse& stats) {
  PrometheusWriter out;
  out.Family("sidestream_build_info", "gauge", "Always 1; the version is a label.");
  out.Sample("sidestream_build_info", {{"version", stats.version()}}, uint64_t{1});
  Gauge(out, "sidestream_ready",
        "1 when the server accepts webhooks (log writable, listeners up, not shutting down).",
        uint64_t{stats.ready() ? 1u : 0u});

  // Ingress.
  const v1::IngressStats& ingress = stats.ingress();
  uint64_t rejected = 0;
  for (const auto& [reason, count] : ingress.rejections()) rejected += count;
  out.Family("sidestream_webhooks_total", "counter",
             "Webhook requests by outcome: accepted (stored), duplicate (already stored), "
             "rejected (see sidestream_webhooks_rejected_total).");
  out.Sample("sidestream_webhooks_total", {{"outcome", "accepted"}}, ingress.accepted());
  out.Sample("sidestream_webhooks_total", {{"outcome", "duplicate"}}, ingress.duplicates());
  out.Sample("sidestream_webhooks_total", {{"outcome", "rejected"}}, rejected);
  out.Family("sidestream_webhooks_rejected_total", "counter",
             "Webhook requests refused, by reason (the \"error\" of the response body).");
  // Sorted by reason: the map's order is unspecified.
  std::vector<std::pair<std::string, uint64_t>> reasons(ingress.rejections().begin(),
                                                        ingress.rejections().end());
  std::sort(reasons.begin(), reasons.end());
  for (const auto& [reason, count] : reasons) {
    out.Sample("sidestream_webhooks_rejected_total", {{"reason", reason}}, count);
  }
  WriteHistogram(out, "sidestream_webhook_verify_duration_seconds",
                 "Time to check a webhook's Stripe-Signature.", ingress.verify_latency());
  WriteHistogram(out, "sidestream_webhook_append_duration_seconds",
                 "Time from handing a verified event to the log until it was durable (or known "
                 "as a duplicate): what the 2xx waits for.",
                 ingress.append_latency());

  // Log.
  const v1::LogStats& log = stats.log();
  out.Family("sidestream_log_info", "gauge", "Always 1; the log's epoch and backend are labels.");
  out.Sample("sidestream_log_info", {{"epoch", log.log_epoch()}, {"backend", log.backend()}},
             uint64_t{1});
  Gauge(out, "sidestream_log_first_sequence",
        "Sequence of the oldest retained event; 0 when the log is empty.", log.first_sequence());
  Gauge(out, "sidestream_log_last_sequence",
        "Sequence of the newest event (the head); 0 when nothing was ever stored.",
        log.last_sequence());
  Gauge(out, "sidestream_log_events", "Retained events.", log.event_count());
  Gauge(out, "sidestream_log_size_bytes", "Bytes of retained event data (parsed and raw).",
        log.event_bytes());
  Gauge(out, "sidestream_log_writable", "1 when the log can store events.",
        uint64_t{log.writable() ? 1u : 0u});
  Counter(out, "sidestream_log_trimmed_events_total",
          "Events removed by retention (age or size) since the server started.",
          log.trimmed_events());
  Counter(out, "sidestream_log_commits_total",
          "Group commits: durable writes (fsyncs) of a batch of appends.", log.commits());
  Counter(out, "sidestream_log_committed_appends_total",
          "Appends carried by group commits (duplicates included); divided by "
          "sidestream_log_commits_total, the average batch size.",
          log.committed_appends());
  Counter(out, "sidestream_log_wal_checkpoints_total",
          "Passive WAL checkpoints of the embedded log (one per 1 MiB of new WAL frames).",
          log.wal_checkpoints());
  Counter(out, "sidestream_log_wal_restarts_total",
          "Restarts of the embedded log's WAL by its writer (each time it holds 64 MiB).",
          log.wal_restarts());

  // Delivery.
  const v1::DeliveryStats& delivery = stats.delivery();
  Gauge(out, "sidestream_subscriptions", "Open Subscribe streams.", delivery.open_subscriptions());
  Counter(out, "sidestream_subscriptions_opened_total", "Subscribe streams opened.",
          delivery.subscriptions_opened());
  Counter(out, "sidestream_events_sent_total", "Events sent on Subscribe streams.",
          delivery.events_sent());
  Counter(out, "sidestream_sent_bytes_total", "Bytes of messages sent on Subscribe streams.",
          delivery.bytes_sent());
  Counter(out, "sidestream_checkpoints_sent_total", "Checkpoints sent on Subscribe streams.",
          delivery.checkpoints_sent());
  Counter(out, "sidestream_log_reads_total",
          "Catch-up reads from the stored log by streams behind the in-memory window.",
          delivery.log_reads());
  Counter(out, "sidestream_log_read_events_total", "Events returned by catch-up reads.",
          delivery.log_read_events());
  out.Family("sidestream_subscription_lag_events", "gauge",
             "Per open stream: events stored but not yet considered (head minus cursor).");
  for (const v1::SubscriptionStats& s : stats.subscriptions()) {
    out.Sample("sidestream_subscription_lag_events",
               {{"subscription", absl::StrCat(s.id())}, {"peer", s.peer()}}, s.lag());
  }

  // Process, named as the official Prometheus clients name them.
  const v1::ProcessStats& process = stats.process();
  Gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
        process.resident_memory_bytes());
  out.Family("process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
  out.Sample("process_cpu_seconds_total", {}, process.cpu_seconds());
  Gauge(out, "process_open_fds", "Number of open file descriptors.", process.open_fds());
  Gauge(out, "process_start_time_seconds", "Start time of the process since the Unix epoch.",
        static_cast<double>(stats.start_time().seconds()) +
            static_cast<double>(stats.start_time().nanos()) / 1e9);
  Gauge(out, "sidestream_uptime_seconds", "Seconds since the server started.",
        process.uptime_seconds());
  return out.Take();
}

}  // namespace sidestream
