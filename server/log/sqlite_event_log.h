// SqliteEventLog: the embedded EventLog backend.
//
// One SQLite database in WAL mode with synchronous=FULL. A single writer
// thread takes every pending append, writes them in one transaction and
// commits once (group commit: many appends, one fsync), then completes the
// callbacks and notifies the listener. WAL checkpoints run off the commit
// path. Retention (by age and by size) is applied in the background, in
// bounded chunks, by the writer thread. Dedup uses a separate id table kept
// for at least `dedup_window`, so a duplicate is recognised even after size
// retention removed the event itself.
#ifndef SIDESTREAM_SERVER_LOG_SQLITE_EVENT_LOG_H_
#define SIDESTREAM_SERVER_LOG_SQLITE_EVENT_LOG_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "server/common/clock.h"
#include "server/log/event_log.h"

namespace sidestream {

struct SqliteEventLogOptions {
  // Directory holding the database (created if missing). Required.
  std::string data_dir;
  // Events older than this are trimmed. Default 7 days. Must be at least
  // `dedup_window` unless `allow_short_retention`.
  absl::Duration retention = absl::Hours(24 * 7);
  bool allow_short_retention = false;
  // When the retained events exceed this many bytes the oldest are trimmed.
  // 0 = no size limit. Default 0.
  uint64_t max_bytes = 0;
  // How long an id is remembered for dedup, independent of retention.
  // Default 72 hours (Stripe retries for up to 3 days).
  absl::Duration dedup_window = absl::Hours(72);
  // Most appends committed in one transaction. Larger batches mean fewer
  // fsyncs under load; the latency of a lone append is unaffected.
  size_t max_batch = 512;
  // How often the background work (retention, checkpoints) runs.
  absl::Duration maintenance_interval = absl::Seconds(5);
  // Once the WAL holds this many bytes of pages the writer restarts it
  // (copies the rest into the database, then writes the WAL from its start)
  // between two batches; a WAL file larger than 1.25 times this is cut back
  // when restarted. So this bounds the WAL's disk use under sustained load
  // (and is about what it uses then). At least 64 KiB; default 64 MiB.
  uint64_t wal_restart_bytes = 64ull << 20;
  // Source of receive-time comparisons for retention. Not owned.
  Clock* clock = Clock::Real();
};

class SqliteEventLog final : public EventLog {
 public:
  // Opens or creates the log in `options.data_dir`. Fails with a clear
  // message when the directory is not writable, the database is corrupt, or
  // its schema is from an unknown version.
  static absl::StatusOr<std::unique_ptr<SqliteEventLog>> Open(const SqliteEventLogOptions& options);

  // Completes every pending append (or fails them with UNAVAILABLE when the
  // log is broken), stops the threads and closes the database.
  ~SqliteEventLog() override;

  void Append(NewEvent event, AppendCallback done) override;
  absl::StatusOr<std::vector<EventRecordPtr>> ReadAfter(uint64_t after_sequence,
                                                        const ReadOptions& options) override;
  absl::StatusOr<EventRecordPtr> Get(absl::string_view id, bool include_raw_json) override;
  absl::StatusOr<uint64_t> CursorForTime(absl::Time time) override;
  LogInfo Info() const override;
  void SetListener(AppendListener* listener) override;

  // Runs retention now, synchronously, and returns the number of events
  // trimmed. For tests and tools; the log also does this on its own.
  absl::StatusOr<uint64_t> TrimNow();

  class Impl;

 private:
  explicit SqliteEventLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_LOG_SQLITE_EVENT_LOG_H_
