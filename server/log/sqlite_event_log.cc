// SqliteEventLog: storage layout, threads, and the reasons for them.
//
// Files in data_dir: events.db (with its -wal and -shm while open) and
// events.lock, held with flock() while a log is open so that two processes
// never assign sequences in the same database.
//
// Schema (version 3):
//   meta(key TEXT PRIMARY KEY, value): schema_version; epoch (32 lower-hex
//     random characters, made once when the database is created);
//     last_sequence (the head), total_bytes and event_count (the retained
//     events). The counters change in the same transaction as the rows they
//     count, so opening a log of a million events reads five rows instead of
//     scanning, and last_sequence survives even when every event was trimmed:
//     a sequence is never handed out twice.
//   events(sequence INTEGER PRIMARY KEY, ...): the sequence is the rowid, so
//     ReadAfter is a range scan of the table b-tree and MIN(sequence) is one
//     descent. The small filter columns come first and the event blob last,
//     so reading the filter fields never touches a large event's overflow
//     pages. stored_bytes (event plus raw body) serves size retention without
//     reading either. An index on receive_time_us serves CursorForTime and age
//     retention without assuming that receive times never go backwards.
//   raw_bodies(sequence INTEGER PRIMARY KEY, raw_crc, raw): the request
//     bodies, read only when a caller asks for raw JSON. Apart from the
//     events, so that a catch-up reads only the pages of what it sends: a
//     1 KB webhook is a 2.4 KB row with its body, one per 4 KiB page, and a
//     1.4 KB row without it, two per page (schema 2 kept both in one row).
//   dedup(id TEXT PRIMARY KEY, sequence, receive_time_us) WITHOUT ROWID: the
//     id lookup and the dedup memory in one table. Rows are trimmed by age
//     only, after max(dedup_window, retention), so a Stripe retry is still
//     recognised after size retention removed its event, and Get(id) finds
//     every retained event.
//
// Threads and connections (each connection is used by one thread at a time):
//   - the writer thread owns the read-write connection: group commit of
//     appends (one transaction and one fsync per batch) and retention in
//     chunks of kTrimChunkRows rows, interleaved with batches. Its WAL
//     writes are gathered (wal_write_buffer.h), so a commit's frames reach
//     the file in one write instead of two per frame;
//   - the checkpointer thread owns a second read-write connection and runs
//     passive WAL checkpoints concurrently with commits (wal_autocheckpoint
//     is off on the writer: an inline checkpoint multiplies the commit
//     latency), one per kCheckpointWalBytes of new frames; once the WAL
//     reaches wal_restart_bytes the writer restarts it itself, between two
//     batches (RestartWal);
//   - readers borrow read-only connections from a small pool; WAL lets them
//     read a consistent snapshot while the writer commits.
//
// Integrity at open: databases up to kFullCheckMaxBytes get PRAGMA
// quick_check (about 0.1 s for 64 MB on a warm cache). A larger one would
// cost seconds per GB and break the fast start, so only the meta table and
// the schema are checked and the cheap invariants between meta and events
// are verified; a damaged page elsewhere is still caught when it is read,
// because SQLite reports SQLITE_CORRUPT, which reads return as DATA_LOSS.
#include "server/log/sqlite_event_log.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include <sqlite3.h>
#include <sys/file.h>

#include "server/common/logging.h"
#include "server/common/thread_name.h"
#include "server/log/wal_write_buffer.h"

namespace sidestream {
namespace {

// 2: events carry checksums (crc, raw_crc). Version 1 was never released.
// 3: raw bodies in their own table; a version 2 log is migrated at open.
constexpr int64_t kSchemaVersion = 3;
constexpr char kDbFileName[] = "events.db";
constexpr char kLockFileName[] = "events.lock";
// Long enough to ride out a checkpoint that holds the write lock.
constexpr int kBusyTimeoutMs = 10000;
// Rows deleted per retention transaction; keeps appends waiting < ~50 ms.
constexpr int64_t kTrimChunkRows = 5000;
constexpr size_t kMaxIdleReaders = 8;
constexpr uint64_t kFullCheckMaxBytes = 64ull << 20;
// The writer asks for a passive checkpoint each time this many bytes of new
// frames (256 pages of 4 KiB) have reached the WAL since it last asked. Each
// pass syncs the WAL and copies the newest version of every page those frames
// hold; SQLite syncs the database file only when no commit came during the
// pass (otherwise the writer's restart syncs it). Until 2026-11-27 the writer
// asked after every commit once the WAL held this much: under a steady 1,000
// webhooks/s the checkpointer then ran back to back, each pass copying a
// commit or two for two fdatasyncs (96-226 us of CPU per webhook against
// 31-39 us now, the ack p99 no worse; flat out 1.13-1.19x webhooks/s;
// docs/performance.md). A pass per 1 MiB rarely ends with the WAL fully
// copied while commits land, so under steady load the WAL grows to
// wal_restart_bytes and the writer restarts it (RestartWal). At 16 MiB per
// pass the WAL's truncation used to hold the write lock for tens of
// milliseconds (before RestartWal); at 1,000 frames (SQLite's own automatic
// threshold, asked after every commit) the p99 acknowledgement at 1,000/s was
// 3.7-4.2 ms against 2.0-2.8 ms at 250 frames.
constexpr uint64_t kCheckpointWalBytes = 1ull << 20;
// The least SqliteEventLogOptions::wal_restart_bytes (a few commits' frames).
constexpr uint64_t kMinWalRestartBytes = 64 << 10;
// How long a WAL restart waits for readers to leave old snapshots: readers
// hold a snapshot for one bounded read, so this is ample. A restart that
// still finds one waits kRestartRetry before the next attempt, doubling up to
// kMaxRestartRetry while that lasts, so that commits are held up for at most
// a few percent of the time (measured flat out: 1.4-8 ms per restart, one
// per 64 MiB, the wait for a passive pass in progress included).
constexpr int kRestartBusyTimeoutMs = 100;
constexpr absl::Duration kRestartRetry = absl::Milliseconds(250);
constexpr absl::Duration kMaxRestartRetry = absl::Seconds(4);

// The tables of the events, made with a new log and by the migration from
// schema 2.
constexpr char kCreateEventTablesSql[] = R"sql(
CREATE TABLE events(
  sequence INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  account TEXT NOT NULL,
  livemode INTEGER NOT NULL,
  receive_time_us INTEGER NOT NULL,
  stored_bytes INTEGER NOT NULL,
  crc INTEGER NOT NULL,
  event BLOB NOT NULL);
CREATE INDEX events_by_receive_time ON events(receive_time_us);
CREATE TABLE raw_bodies(
  sequence INTEGER PRIMARY KEY,
  raw_crc INTEGER NOT NULL,
  raw BLOB NOT NULL);
)sql";

constexpr char kCreateOtherTablesSql[] = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE dedup(
  id TEXT PRIMARY KEY,
  sequence INTEGER NOT NULL,
  receive_time_us INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX dedup_by_receive_time ON dedup(receive_time_us);
)sql";

// Column order is what RecordFromRow reads; with the raw body, raw_crc and
// raw follow from raw_bodies (a missing raw row reads as NULLs, which fail
// the checksum: DATA_LOSS, not an event without its body).
constexpr char kRecordColumns[] =
    "SELECT e.sequence, e.id, e.type, e.account, e.livemode, e.receive_time_us, e.event, e.crc";
constexpr char kRecordColumnsWithRaw[] =
    "SELECT e.sequence, e.id, e.type, e.account, e.livemode, e.receive_time_us, e.event, e.crc, "
    "r.raw_crc, r.raw";
constexpr char kEventsOnly[] = " FROM events AS e";
constexpr char kEventsWithRaw[] = " FROM events AS e LEFT JOIN raw_bodies AS r USING (sequence)";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Maps a failed SQLite call to a status whose code says what the caller can
// do: DATA_LOSS for a damaged file, UNAVAILABLE for conditions that may pass
// (busy, I/O, disk full), INTERNAL for the rest (a bug).
absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

// Runs `stmt` to completion, passing each result row to `row`, and resets it.
absl::Status Run(
    sqlite3_stmt* stmt, absl::string_view what,
    absl::FunctionRef<void(sqlite3_stmt*)> row = [](sqlite3_stmt*) {}) {
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
  absl::Status status =
      rc == SQLITE_DONE ? absl::OkStatus() : SqliteStatus(sqlite3_db_handle(stmt), rc, what);
  sqlite3_reset(stmt);
  return status;
}

absl::StatusOr<Stmt> Prepare(sqlite3* db, absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db, rc, absl::StrCat("preparing \"", sql, "\""));
  return Stmt(stmt);
}

// Prepares and runs a one-off statement (pragmas, schema, checks).
absl::Status Query(
    sqlite3* db, absl::string_view sql,
    absl::FunctionRef<void(sqlite3_stmt*)> row = [](sqlite3_stmt*) {}) {
  absl::StatusOr<Stmt> stmt = Prepare(db, sql);
  if (!stmt.ok()) return stmt.status();
  return Run(stmt->get(), sql, row);
}

// Binds return codes are checked: a failed bind would silently keep the
// previous row's value.
bool BindText(sqlite3_stmt* stmt, int index, absl::string_view value) {
  return value.size() <= static_cast<size_t>(std::numeric_limits<int>::max()) &&
         sqlite3_bind_text(stmt, index, value.empty() ? "" : value.data(),
                           static_cast<int>(value.size()), SQLITE_STATIC) == SQLITE_OK;
}
bool BindBlob(sqlite3_stmt* stmt, int index, absl::string_view value) {
  if (value.empty()) return sqlite3_bind_zeroblob(stmt, index, 0) == SQLITE_OK;
  return value.size() <= static_cast<size_t>(std::numeric_limits<int>::max()) &&
         sqlite3_bind_blob(stmt, index, value.data(), static_cast<int>(value.size()),
                           SQLITE_STATIC) == SQLITE_OK;
}
bool BindInt(sqlite3_stmt* stmt, int index, int64_t value) {
  return sqlite3_bind_int64(stmt, index, value) == SQLITE_OK;
}
int64_t ClampToInt64(uint64_t value) {
  return static_cast<int64_t>(
      std::min<uint64_t>(value, static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
}

std::string ColumnString(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  const int size = sqlite3_column_bytes(stmt, column);
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

// Checksums of a stored event, so that damage inside a row (which SQLite's
// page checks do not see) is never served as data: one over everything a
// subscriber filters on and receives except the raw body, one over the raw
// body (read only on request).
uint32_t Crc(uint32_t crc, absl::string_view bytes) {
  // zlib returns its initial value for a null buffer, whatever `crc` was.
  if (bytes.empty()) return crc;
  return static_cast<uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

uint32_t RecordCrc(uint64_t sequence, absl::string_view id, absl::string_view type,
                   absl::string_view account, bool livemode, int64_t receive_us,
                   absl::string_view event_bytes) {
  // Fields are length-prefixed so that no two different records hash the
  // same bytes. The CRC runs over the pieces in turn, which is the CRC of
  // their concatenation, without building it (this runs for every event a
  // catch-up reads).
  const absl::AlphaNum pieces[] = {sequence,   ":",        id.size(),
                                   ":",        id,         type.size(),
                                   ":",        type,       account.size(),
                                   ":",        account,    livemode ? 1 : 0,
                                   ":",        receive_us, ":",
                                   event_bytes};
  uint32_t crc = 0;
  for (const absl::AlphaNum& piece : pieces) crc = Crc(crc, piece.Piece());
  return crc;
}

// A record from a row of kRecordColumns (+ raw when `with_raw`). DATA_LOSS
// naming the sequence when a checksum does not match.
absl::StatusOr<EventRecordPtr> RecordFromRow(sqlite3_stmt* stmt, bool with_raw) {
  auto record = std::make_shared<EventRecord>();
  record->sequence = static_cast<uint64_t>(sqlite3_column_int64(stmt, 0));
  record->id = ColumnString(stmt, 1);
  record->type = ColumnString(stmt, 2);
  record->account = ColumnString(stmt, 3);
  record->livemode = sqlite3_column_int64(stmt, 4) != 0;
  const int64_t receive_us = sqlite3_column_int64(stmt, 5);
  record->receive_time = absl::FromUnixMicros(receive_us);
  record->event_bytes = ColumnString(stmt, 6);
  const auto stored_crc = static_cast<uint32_t>(sqlite3_column_int64(stmt, 7));
  bool intact = sqlite3_column_type(stmt, 7) == SQLITE_INTEGER &&
                stored_crc == RecordCrc(record->sequence, record->id, record->type, record->account,
                                        record->livemode, receive_us, record->event_bytes);
  if (with_raw) {
    const auto stored_raw_crc = static_cast<uint32_t>(sqlite3_column_int64(stmt, 8));
    record->raw_json = ColumnString(stmt, 9);
    intact = intact && sqlite3_column_type(stmt, 8) == SQLITE_INTEGER &&
             stored_raw_crc == Crc(0, record->raw_json);
  }
  if (!intact) {
    return absl::DataLossError(
        absl::StrCat("the stored event at sequence ", record->sequence,
                     " is damaged (checksum mismatch); restore the data dir from a backup"));
  }
  return record;
}

uint64_t Subtract(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

std::string NewEpoch() {
  absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

bool IsEpoch(absl::string_view epoch) {
  return epoch.size() == 32 && std::all_of(epoch.begin(), epoch.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

absl::Status ValidateOptions(const SqliteEventLogOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("event log data_dir is empty");
  if (options.clock == nullptr) return absl::InvalidArgumentError("event log clock is null");
  if (options.retention <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("event log retention must be positive, got ",
                                                   absl::FormatDuration(options.retention)));
  }
  if (options.dedup_window <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("event log dedup_window must be positive");
  }
  if (options.retention < options.dedup_window && !options.allow_short_retention) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event log retention (", absl::FormatDuration(options.retention),
        ") is shorter than the dedup window (", absl::FormatDuration(options.dedup_window),
        "): a subscriber could miss events Stripe still retries; raise retention or allow a "
        "short retention explicitly"));
  }
  if (options.max_batch == 0) return absl::InvalidArgumentError("event log max_batch is 0");
  if (options.wal_restart_bytes < kMinWalRestartBytes) {
    return absl::InvalidArgumentError(absl::StrCat("event log wal_restart_bytes must be at least ",
                                                   kMinWalRestartBytes, ", got ",
                                                   options.wal_restart_bytes));
  }
  if (options.maintenance_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("event log maintenance_interval must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

class SqliteEventLog::Impl {
 public:
  static absl::StatusOr<std::unique_ptr<Impl>> Open(const SqliteEventLogOptions& options);
  ~Impl();

  void Append(NewEvent event, AppendCallback done);
  absl::StatusOr<std::vector<EventRecordPtr>> ReadAfter(uint64_t after_sequence,
                                                        const ReadOptions& options);
  absl::StatusOr<EventRecordPtr> Get(absl::string_view id, bool include_raw_json);
  absl::StatusOr<uint64_t> CursorForTime(absl::Time time);
  LogInfo Info() const;
  void SetListener(AppendListener* listener) { listener_.store(listener); }
  absl::StatusOr<uint64_t> TrimNow();

 private:
  struct PendingAppend {
    NewEvent event;
    AppendCallback done;
  };
  struct TrimRequest {
    absl::Notification done;
    absl::StatusOr<uint64_t> result;
  };
  struct TrimWaiter {
    TrimRequest* request;
    uint64_t trimmed_before;  // events the pass had trimmed when it joined
  };
  // The retained range; first_sequence == last_sequence + 1 when empty.
  struct Counters {
    uint64_t first_sequence = 1;
    uint64_t last_sequence = 0;
    uint64_t event_count = 0;
    uint64_t event_bytes = 0;
  };
  struct WriterStatements {
    Stmt begin, commit, rollback, find_dedup, insert_event, insert_raw, insert_dedup, set_counters;
    Stmt trim_by_age, delete_raw, oldest_sizes, delete_through, delete_raw_through, trim_dedup,
        min_sequence;
  };
  struct Reader {
    Db db;
    Stmt read_after, read_after_raw, find_dedup, get_event, get_event_raw, cursor_for_time;
  };

  explicit Impl(const SqliteEventLogOptions& options);

  absl::Status LockDataDir();
  absl::Status OpenWriter();
  absl::Status LoadOrCreateSchema(bool* created);
  absl::Status CheckIntegrity();
  absl::Status LoadCounters();
  absl::Status MigrateFromVersion2();
  absl::Status PrepareWriterStatements();
  absl::Status OpenCheckpointer();
  absl::Status OpenFailure(int rc, absl::string_view what) const;

  // Writer thread.
  void WriterLoop();
  bool WriterHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
    return !queue_.empty() || stopping_ || !trim_requests_.empty();
  }
  void CommitBatch(std::vector<PendingAppend>& batch);
  absl::Status WriteBatch(std::vector<PendingAppend>& batch,
                          std::vector<absl::StatusOr<AppendResult>>& results,
                          std::vector<size_t>& stored, Counters& next);
  // Trims one chunk; true when retention is fully applied.
  absl::StatusOr<bool> TrimChunk(uint64_t* trimmed);
  absl::Status TrimChunkInTransaction(Counters& next, uint64_t* trimmed, bool* done);
  absl::Status SetCounters(const Counters& counters);
  void RollbackIfActive();
  void PublishCounters();
  // Records whether the last write succeeded (LogInfo::writable).
  void SetWritable(bool writable, absl::string_view error);
  // A minimal real write (one meta row), to find out whether storage works
  // again while no appends arrive.
  void ProbeWrite();

  // Checkpointer thread.
  void CheckpointLoop();
  bool CheckpointWanted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(checkpoint_mu_) {
    return checkpoint_requested_ || checkpoint_stopping_;
  }
  void RequestCheckpoint();
  void Checkpoint(sqlite3* db, bool truncate);
  // After the writer's commits: asks for a checkpoint, or restarts the WAL.
  void AfterWrite();
  void RestartWal();

  // Readers.
  absl::StatusOr<std::unique_ptr<Reader>> OpenReader();
  template <typename Result, typename Fn>
  absl::StatusOr<Result> WithReader(Fn fn);

  const SqliteEventLogOptions options_;
  const std::string db_path_;
  int lock_fd_ = -1;
  std::atomic<AppendListener*> listener_{nullptr};

  // Owned by the writer thread (and by Open/~Impl while it is not running).
  Db writer_db_;
  WriterStatements w_;
  Counters counters_;
  bool writable_ = true;
  // Frames in the WAL after the last commit (sqlite3_wal_hook).
  int wal_frames_ = 0;
  // wal_frames_ when the writer last asked for a checkpoint.
  int checkpoint_asked_at_frames_ = 0;
  std::thread writer_thread_;

  mutable absl::Mutex queue_mu_;
  std::deque<PendingAppend> queue_ ABSL_GUARDED_BY(queue_mu_);
  std::vector<TrimRequest*> trim_requests_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  mutable absl::Mutex info_mu_;
  LogInfo info_ ABSL_GUARDED_BY(info_mu_);

  // The schema version the database had at open (kSchemaVersion once
  // migrated).
  int64_t stored_schema_version_ = kSchemaVersion;

  // Owned by the checkpointer thread.
  Db checkpoint_db_;
  uint64_t page_size_ = 4096;
  std::thread checkpoint_thread_;
  absl::Mutex checkpoint_mu_;
  bool checkpoint_requested_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  bool checkpoint_stopping_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  // Held while a checkpoint runs on either connection: SQLite lets one
  // checkpoint run at a time and fails a second one at once (no busy wait),
  // so the writer's restart waits here for the current pass instead.
  absl::Mutex checkpoint_run_mu_;
  // Owned by the writer thread: no restart attempt before next_restart_;
  // restart_retry_ is the wait after the next failed attempt.
  absl::Time next_restart_ = absl::InfinitePast();
  absl::Duration restart_retry_ = kRestartRetry;

  absl::Mutex readers_mu_;
  std::vector<std::unique_ptr<Reader>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

SqliteEventLog::Impl::Impl(const SqliteEventLogOptions& options)
    : options_(options),
      db_path_((std::filesystem::path(options.data_dir) / kDbFileName).string()) {}

absl::StatusOr<std::unique_ptr<SqliteEventLog::Impl>> SqliteEventLog::Impl::Open(
    const SqliteEventLogOptions& options) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  if (options.dedup_window < absl::Hours(72)) {
    LOG_WARNING("event log dedup window ", absl::FormatDuration(options.dedup_window),
                " is shorter than Stripe's 72 h retry horizon");
  }
  const absl::Time start = absl::Now();
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the event log directory \"", options.data_dir,
                     "\": ", ec.message(), "; create it or set data_dir to a writable directory"));
  }
  if (access(options.data_dir.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the event log directory \"", options.data_dir, "\" is not writable: ",
                     std::strerror(errno), "; fix its permissions or set data_dir elsewhere"));
  }
  std::unique_ptr<Impl> impl(new Impl(options));
  if (absl::Status status = impl->LockDataDir(); !status.ok()) return status;
  if (absl::Status status = impl->OpenWriter(); !status.ok()) return status;
  if (absl::Status status = impl->OpenCheckpointer(); !status.ok()) return status;
  {
    absl::MutexLock lock(&impl->info_mu_);
    impl->info_.backend = "sqlite";
  }
  impl->PublishCounters();
  impl->writer_thread_ = std::thread([p = impl.get()] {
    SetCurrentThreadName("ss-log-writer");
    p->WriterLoop();
  });
  impl->checkpoint_thread_ = std::thread([p = impl.get()] {
    SetCurrentThreadName("ss-checkpoint");
    p->CheckpointLoop();
  });
  const LogInfo info = impl->Info();
  LOG_INFO("event log ", impl->db_path_, " opened in ", absl::FormatDuration(absl::Now() - start),
           ": epoch ", info.epoch, ", sequences ", info.first_sequence, "..", info.last_sequence,
           ", ", info.event_count, " events, ", info.event_bytes, " bytes");
  return impl;
}

SqliteEventLog::Impl::~Impl() {
  const bool opened = writer_thread_.joinable();  // false when Open failed
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  if (writer_thread_.joinable()) writer_thread_.join();
  {
    absl::MutexLock lock(&checkpoint_mu_);
    checkpoint_stopping_ = true;
  }
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  {
    absl::MutexLock lock(&readers_mu_);
    idle_readers_.clear();
  }
  checkpoint_db_.reset();
  w_ = WriterStatements();
  // Leave a short WAL behind; closing the last connection also checkpoints.
  if (opened) Checkpoint(writer_db_.get(), /*truncate=*/true);
  writer_db_.reset();
  if (lock_fd_ >= 0) close(lock_fd_);
}

absl::Status SqliteEventLog::Impl::LockDataDir() {
  const std::string path = (std::filesystem::path(options_.data_dir) / kLockFileName).string();
  lock_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create \"", path,
                                                      "\": ", std::strerror(errno),
                                                      "; make the data directory writable"));
  }
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the event log in \"", options_.data_dir,
          "\" is already open (by another process or log instance); stop it or use another "
          "data_dir"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock \"", path, "\": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

// Errors at open name the file and what to do about them.
absl::Status SqliteEventLog::Impl::OpenFailure(int rc, absl::string_view what) const {
  const std::string detail = absl::StrCat(what, ": ", sqlite3_errmsg(writer_db_.get()));
  if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
    return absl::DataLossError(
        absl::StrCat("the event log \"", db_path_, "\" is damaged (", detail,
                     "); restore it from a backup, or move it away to start a new log"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot open the event log \"", db_path_, "\" (", detail, ")"));
}

absl::Status SqliteEventLog::Impl::OpenWriter() {
  sqlite3* raw = nullptr;
  // Through the VFS that gathers each commit's WAL frames into one write
  // (server/log/wal_write_buffer.h); the default VFS if it is missing.
  int rc = sqlite3_open_v2(db_path_.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           WalWriteBufferVfsName());
  writer_db_.reset(raw);  // closed even when the open failed
  if (rc != SQLITE_OK) return OpenFailure(rc, "open");
  sqlite3* db = writer_db_.get();
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  if (sqlite3_db_readonly(db, "main") == 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("the event log \"", db_path_, "\" is read-only; make it writable"));
  }
  // The first statement that reads the file: a file that is not a database
  // fails here, before anything is written to it.
  std::string mode;
  absl::StatusOr<Stmt> wal = Prepare(db, "PRAGMA journal_mode=WAL");
  if (!wal.ok()) return OpenFailure(sqlite3_errcode(db), "reading the header");
  rc = sqlite3_step(wal->get());
  if (rc == SQLITE_ROW) mode = ColumnString(wal->get(), 0);
  if (rc != SQLITE_ROW) return OpenFailure(rc, "reading the header");
  wal->reset();
  if (mode != "wal") {
    return absl::FailedPreconditionError(absl::StrCat("the event log \"", db_path_,
                                                      "\" cannot use WAL journaling (got \"", mode,
                                                      "\"); put data_dir on a local file system"));
  }
  // A WAL that grew well past the restart size (a long burst while a reader
  // held an old snapshot) is cut back when restarted. With a quarter of
  // headroom, the WAL of a steady burst (the restart size, its frame headers
  // and the batch that crossed it) keeps its blocks and is overwritten.
  const std::string size_limit =
      absl::StrCat("PRAGMA journal_size_limit=", options_.wal_restart_bytes / 4 * 5);
  // synchronous=FULL also keeps the WAL write buffer safe: each commit
  // syncs, so sends, its frames before they become visible.
  for (const char* pragma : {"PRAGMA synchronous=FULL", "PRAGMA wal_autocheckpoint=0",
                             "PRAGMA foreign_keys=OFF", size_limit.c_str()}) {
    if (absl::Status status = Query(db, pragma); !status.ok()) return status;
  }
  // Replaces the automatic checkpoint's hook: only records the WAL's size.
  sqlite3_wal_hook(
      db,
      [](void* impl, sqlite3*, const char*, int frames) {
        static_cast<Impl*>(impl)->wal_frames_ = frames;
        return SQLITE_OK;
      },
      this);
  Query(db, "PRAGMA page_size", [&](sqlite3_stmt* s) {
    page_size_ = sqlite3_column_int64(s, 0);
  }).IgnoreError();  // only sizes the checkpoint threshold
  bool created = false;
  if (absl::Status status = LoadOrCreateSchema(&created); !status.ok()) return status;
  if (!created) {
    if (absl::Status status = CheckIntegrity(); !status.ok()) return status;
  }
  if (absl::Status status = LoadCounters(); !status.ok()) return status;
  if (stored_schema_version_ == 2) {
    if (absl::Status status = MigrateFromVersion2(); !status.ok()) return status;
  }
  return PrepareWriterStatements();
}

absl::Status SqliteEventLog::Impl::LoadOrCreateSchema(bool* created) {
  sqlite3* db = writer_db_.get();
  int64_t objects = 0, meta_tables = 0;
  absl::Status status =
      Query(db,
            "SELECT count(*), count(*) FILTER (WHERE type = 'table' AND name = 'meta') "
            "FROM sqlite_schema",
            [&](sqlite3_stmt* s) {
              objects = sqlite3_column_int64(s, 0);
              meta_tables = sqlite3_column_int64(s, 1);
            });
  if (!status.ok()) return OpenFailure(sqlite3_errcode(db), "reading the schema");
  if (objects == 0) {
    // A new database: the schema and the epoch are created together.
    status = Query(db, "BEGIN IMMEDIATE");
    if (status.ok()) {
      int rc = sqlite3_exec(db, kCreateOtherTablesSql, nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) rc = sqlite3_exec(db, kCreateEventTablesSql, nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) status = SqliteStatus(db, rc, "creating the schema");
    }
    if (status.ok()) {
      absl::StatusOr<Stmt> stmt =
          Prepare(db,
                  "INSERT INTO meta(key, value) VALUES ('schema_version', ?1), ('epoch', ?2), "
                  "('last_sequence', 0), ('total_bytes', 0), ('event_count', 0)");
      const std::string epoch = NewEpoch();
      if (!stmt.ok()) {
        status = stmt.status();
      } else if (!BindInt(stmt->get(), 1, kSchemaVersion) || !BindText(stmt->get(), 2, epoch)) {
        status = absl::InternalError("binding the new log's meta rows");
      } else {
        status = Run(stmt->get(), "writing the new log's meta rows");
      }
    }
    if (status.ok()) status = Query(db, "COMMIT");
    if (!status.ok()) {
      RollbackIfActive();
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create the event log \"", db_path_, "\": ", status.message()));
    }
    *created = true;
    return absl::OkStatus();
  }
  if (meta_tables != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", db_path_,
                     "\" is an SQLite database but not a Sidestream event log "
                     "(it has no meta table); set data_dir to another directory"));
  }
  return absl::OkStatus();
}

absl::Status SqliteEventLog::Impl::CheckIntegrity() {
  sqlite3* db = writer_db_.get();
  int64_t pages = 0;
  Query(db, "PRAGMA page_count", [&](sqlite3_stmt* s) {
    pages = sqlite3_column_int64(s, 0);
  }).IgnoreError();  // a failure here leaves the full check on
  const bool full = static_cast<uint64_t>(pages) * page_size_ <= kFullCheckMaxBytes;
  std::vector<std::string> problems;
  absl::Status status =
      Query(db, full ? "PRAGMA quick_check(5)" : "PRAGMA quick_check(meta)", [&](sqlite3_stmt* s) {
        std::string line = ColumnString(s, 0);
        if (line != "ok") problems.push_back(std::move(line));
      });
  if (!status.ok()) return OpenFailure(sqlite3_errcode(db), "checking integrity");
  if (!problems.empty()) {
    return absl::DataLossError(
        absl::StrCat("the event log \"", db_path_, "\" failed its integrity check (",
                     absl::StrJoin(problems, "; "),
                     "); restore it from a backup, or move it away to start a new log"));
  }
  return absl::OkStatus();
}

absl::Status SqliteEventLog::Impl::LoadCounters() {
  sqlite3* db = writer_db_.get();
  std::optional<int64_t> version, last, bytes, count;
  std::string epoch;
  absl::Status status = Query(db, "SELECT key, value FROM meta", [&](sqlite3_stmt* s) {
    const std::string key = ColumnString(s, 0);
    const bool integer = sqlite3_column_type(s, 1) == SQLITE_INTEGER;
    const int64_t value = sqlite3_column_int64(s, 1);
    if (key == "epoch") epoch = ColumnString(s, 1);
    if (!integer) return;
    if (key == "schema_version") version = value;
    if (key == "last_sequence") last = value;
    if (key == "total_bytes") bytes = value;
    if (key == "event_count") count = value;
  });
  if (!status.ok()) return OpenFailure(sqlite3_errcode(db), "reading meta");
  if (version.has_value() && *version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("the event log \"", db_path_, "\" has schema version ", *version,
                     ", written by a newer Sidestream (this one reads up to version ",
                     kSchemaVersion, "); upgrade Sidestream or set data_dir to another directory"));
  }
  if (version.has_value() && *version == 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the event log \"", db_path_,
        "\" has schema version 1, from a pre-release build without checksums; move it aside "
        "and start with an empty data_dir"));
  }
  if (!version.has_value() || *version < 1 || !IsEpoch(epoch) || !last.has_value() ||
      !bytes.has_value() || !count.has_value() || *last < 0 || *bytes < 0 || *count < 0) {
    return absl::DataLossError(absl::StrCat(
        "the event log \"", db_path_,
        "\" has a damaged meta table (schema_version, epoch or counters missing or invalid); "
        "restore it from a backup, or move it away to start a new log"));
  }
  // Two subqueries: each is one b-tree descent on the rowid (a single
  // SELECT MIN(), MAX() would scan the table).
  std::optional<int64_t> min_sequence, max_sequence;
  status =
      Query(db, "SELECT (SELECT MIN(sequence) FROM events), (SELECT MAX(sequence) FROM events)",
            [&](sqlite3_stmt* s) {
              if (sqlite3_column_type(s, 0) != SQLITE_NULL)
                min_sequence = sqlite3_column_int64(s, 0);
              if (sqlite3_column_type(s, 1) != SQLITE_NULL)
                max_sequence = sqlite3_column_int64(s, 1);
            });
  if (!status.ok()) return OpenFailure(sqlite3_errcode(db), "reading the sequence range");
  if ((max_sequence.has_value() && *max_sequence > *last) ||
      (max_sequence.has_value() != (*count > 0)) ||
      (min_sequence.has_value() && *min_sequence < 1)) {
    return absl::DataLossError(
        absl::StrCat("the event log \"", db_path_, "\" is inconsistent (meta says last_sequence ",
                     *last, " and ", *count, " events; the events table holds sequences ",
                     min_sequence.value_or(0), "..", max_sequence.value_or(0),
                     "); restore it from a backup, or move it away to start a new log"));
  }
  counters_.last_sequence = static_cast<uint64_t>(*last);
  counters_.first_sequence =
      min_sequence.has_value() ? static_cast<uint64_t>(*min_sequence) : counters_.last_sequence + 1;
  counters_.event_count = static_cast<uint64_t>(*count);
  counters_.event_bytes = static_cast<uint64_t>(*bytes);
  stored_schema_version_ = *version;
  absl::MutexLock lock(&info_mu_);
  info_.epoch = epoch;
  return absl::OkStatus();
}

// Version 2 kept each raw body in its event's row. One transaction moves the
// bodies to raw_bodies and rebuilds events without them: a crash part way
// leaves the version 2 log as it was, to be migrated at the next start. The
// checksums cover the same bytes in both layouts and are copied as they are.
absl::Status SqliteEventLog::Impl::MigrateFromVersion2() {
  // The version 2 table steps aside (its index goes with it), the version 3
  // tables are made as for a new log, filled, and the old table dropped.
  constexpr char kSetAsideSql[] = R"sql(
ALTER TABLE events RENAME TO events_v2;
DROP INDEX events_by_receive_time;
)sql";
  constexpr char kCopySql[] = R"sql(
INSERT INTO raw_bodies(sequence, raw_crc, raw) SELECT sequence, raw_crc, raw FROM events_v2;
INSERT INTO events(sequence, id, type, account, livemode, receive_time_us, stored_bytes, crc,
                   event)
  SELECT sequence, id, type, account, livemode, receive_time_us, length(event) + length(raw), crc,
         event FROM events_v2;
DROP TABLE events_v2;
UPDATE meta SET value = 3 WHERE key = 'schema_version';
)sql";
  sqlite3* db = writer_db_.get();
  const absl::Time start = absl::Now();
  LOG_INFO("event log ", db_path_, ": moving the raw bodies of ", counters_.event_count,
           " events to their own table (schema 2 to 3, once; the log is rewritten)");
  absl::Status status = Query(db, "BEGIN IMMEDIATE");
  if (status.ok()) {
    int rc = SQLITE_OK;
    for (const char* sql : {kSetAsideSql, kCreateEventTablesSql, kCopySql}) {
      if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    }
    if (rc != SQLITE_OK) status = SqliteStatus(db, rc, "migrating from schema 2");
  }
  if (status.ok()) status = Query(db, "COMMIT");
  if (!status.ok()) {
    RollbackIfActive();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot migrate the event log \"", db_path_, "\" from schema 2 to 3 (", status.message(),
        "); it is unchanged. Free disk space (the migration needs about 1.6 times "
        "the log's size) and start again, or run the previous Sidestream version"));
  }
  stored_schema_version_ = kSchemaVersion;
  // The rewritten log is in the WAL now: copy it into the database file and
  // cut the WAL back before serving, so that the space this needs is taken
  // (or found missing) at start rather than by the first checkpoint.
  const int rc =
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    LOG_WARNING("event log ", db_path_, ": checkpoint after the migration failed (",
                sqlite3_errmsg(db), "); the migrated log is committed in the WAL");
  }
  LOG_INFO("event log ", db_path_, " migrated to schema 3 in ",
           absl::FormatDuration(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status SqliteEventLog::Impl::PrepareWriterStatements() {
  const std::pair<Stmt*, const char*> statements[] = {
      {&w_.begin, "BEGIN IMMEDIATE"},
      {&w_.commit, "COMMIT"},
      {&w_.rollback, "ROLLBACK"},
      {&w_.find_dedup, "SELECT sequence FROM dedup WHERE id = ?1"},
      {&w_.insert_event,
       "INSERT INTO events(sequence, id, type, account, livemode, receive_time_us, stored_bytes, "
       "crc, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      {&w_.insert_raw, "INSERT INTO raw_bodies(sequence, raw_crc, raw) VALUES (?1, ?2, ?3)"},
      {&w_.insert_dedup, "INSERT INTO dedup(id, sequence, receive_time_us) VALUES (?1, ?2, ?3)"},
      {&w_.set_counters,
       "UPDATE meta SET value = CASE key WHEN 'last_sequence' THEN ?1 "
       "WHEN 'total_bytes' THEN ?2 ELSE ?3 END "
       "WHERE key IN ('last_sequence', 'total_bytes', 'event_count')"},
      {&w_.trim_by_age,
       "DELETE FROM events WHERE sequence IN (SELECT sequence FROM events "
       "WHERE receive_time_us < ?1 ORDER BY receive_time_us LIMIT ?2) "
       "RETURNING sequence, stored_bytes"},
      {&w_.delete_raw, "DELETE FROM raw_bodies WHERE sequence = ?1"},
      {&w_.oldest_sizes, "SELECT sequence, stored_bytes FROM events ORDER BY sequence LIMIT ?1"},
      {&w_.delete_through, "DELETE FROM events WHERE sequence <= ?1"},
      {&w_.delete_raw_through, "DELETE FROM raw_bodies WHERE sequence <= ?1"},
      {&w_.trim_dedup,
       "DELETE FROM dedup WHERE id IN (SELECT id FROM dedup WHERE receive_time_us < ?1 "
       "ORDER BY receive_time_us LIMIT ?2)"},
      {&w_.min_sequence, "SELECT MIN(sequence) FROM events"},
  };
  for (const auto& [stmt, sql] : statements) {
    absl::StatusOr<Stmt> prepared = Prepare(writer_db_.get(), sql);
    if (!prepared.ok()) return OpenFailure(sqlite3_errcode(writer_db_.get()), "preparing");
    *stmt = *std::move(prepared);
  }
  return absl::OkStatus();
}

absl::Status SqliteEventLog::Impl::OpenCheckpointer() {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(db_path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  checkpoint_db_.reset(raw);
  if (rc != SQLITE_OK) return SqliteStatus(raw, rc, "opening the checkpoint connection");
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  // The checkpoint must sync the database before the WAL is reused.
  return Query(raw, "PRAGMA synchronous=FULL");
}

void SqliteEventLog::Impl::PublishCounters() {
  absl::MutexLock lock(&info_mu_);
  info_.first_sequence = counters_.first_sequence;
  info_.last_sequence = counters_.last_sequence;
  info_.event_count = counters_.event_count;
  info_.event_bytes = counters_.event_bytes;
}

void SqliteEventLog::Impl::SetWritable(bool writable, absl::string_view error) {
  if (writable == writable_) return;
  writable_ = writable;
  if (writable) LOG_INFO("event log is writable again");
  absl::MutexLock lock(&info_mu_);
  info_.writable = writable;
  info_.last_error = std::string(error);
}

void SqliteEventLog::Impl::ProbeWrite() {
  absl::Status status = Run(w_.begin.get(), "BEGIN");
  if (status.ok()) {
    status =
        Query(writer_db_.get(),
              absl::StrCat("INSERT OR REPLACE INTO meta(key, value) VALUES('last_write_probe', ",
                           absl::ToUnixMicros(absl::Now()), ")"));
  }
  if (status.ok()) status = Run(w_.commit.get(), "COMMIT");
  if (!status.ok()) {
    RollbackIfActive();
    absl::MutexLock lock(&info_mu_);
    info_.last_error = std::string(status.message());
    return;
  }
  SetWritable(true, "");
}

LogInfo SqliteEventLog::Impl::Info() const {
  absl::MutexLock lock(&info_mu_);
  return info_;
}

void SqliteEventLog::Impl::Append(NewEvent event, AppendCallback done) {
  {
    absl::MutexLock lock(&queue_mu_);
    if (!stopping_) {
      queue_.push_back(PendingAppend{std::move(event), std::move(done)});
      return;
    }
  }
  // The writer may be gone: this one completes on the caller's thread.
  std::move(done)(absl::UnavailableError("the event log is closing"));
}

// Runs on the writer thread, so it must not be called from a listener or an
// append callback (it would wait for itself).
absl::StatusOr<uint64_t> SqliteEventLog::Impl::TrimNow() {
  TrimRequest request;
  {
    absl::MutexLock lock(&queue_mu_);
    if (stopping_) return absl::UnavailableError("the event log is closing");
    trim_requests_.push_back(&request);
  }
  request.done.WaitForNotification();
  return request.result;
}

// The writer's loop: commit whatever is pending (never waiting to fill a
// batch), and between batches run retention one chunk at a time, when it
// is due (maintenance_interval, real time: it paces work) or was asked for.
void SqliteEventLog::Impl::WriterLoop() {
  absl::Time next_maintenance = absl::Now() + options_.maintenance_interval;
  // While storage fails, a probe write runs this often so that the log
  // becomes writable again without waiting for an append.
  constexpr absl::Duration kProbeInterval = absl::Seconds(1);
  absl::Time next_probe = absl::InfiniteFuture();
  bool trimming = false;
  uint64_t pass_trimmed = 0;
  std::vector<TrimWaiter> waiters;
  for (;;) {
    std::vector<PendingAppend> batch;
    std::vector<TrimRequest*> requests;
    bool stop;
    {
      absl::MutexLock lock(&queue_mu_);
      if (!trimming) {
        queue_mu_.AwaitWithDeadline(absl::Condition(this, &Impl::WriterHasWork),
                                    std::min(next_maintenance, next_probe));
      }
      const size_t n = std::min(queue_.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      requests.swap(trim_requests_);
      stop = stopping_ && queue_.empty();
    }
    if (!batch.empty()) CommitBatch(batch);
    if (writable_) {
      next_probe = absl::InfiniteFuture();
    } else if (absl::Now() >= next_probe || next_probe == absl::InfiniteFuture()) {
      if (next_probe != absl::InfiniteFuture()) ProbeWrite();
      next_probe = absl::Now() + kProbeInterval;
    }
    for (TrimRequest* request : requests) waiters.push_back({request, pass_trimmed});
    if (!requests.empty() || absl::Now() >= next_maintenance) trimming = true;
    if (stop) {
      for (TrimWaiter& waiter : waiters) {
        waiter.request->result = absl::UnavailableError("the event log is closing");
        waiter.request->done.Notify();
      }
      return;
    }
    if (!trimming) continue;
    absl::StatusOr<bool> done = TrimChunk(&pass_trimmed);
    if (done.ok() && !*done) continue;
    // The pass is over, complete or failed.
    if (!done.ok()) LOG_WARNING("event log retention failed: ", done.status().message());
    if (pass_trimmed > 0) LOG_INFO("event log retention trimmed ", pass_trimmed, " events");
    for (TrimWaiter& waiter : waiters) {
      waiter.request->result =
          done.ok() ? absl::StatusOr<uint64_t>(Subtract(pass_trimmed, waiter.trimmed_before))
                    : done.status();
      waiter.request->done.Notify();
    }
    waiters.clear();
    trimming = false;
    pass_trimmed = 0;
    next_maintenance = absl::Now() + options_.maintenance_interval;
    RequestCheckpoint();
    AfterWrite();  // a long retention pass may leave a long WAL
  }
}

void SqliteEventLog::Impl::RollbackIfActive() {
  if (sqlite3_get_autocommit(writer_db_.get()) != 0) return;  // SQLite rolled back already
  absl::Status status = w_.rollback != nullptr ? Run(w_.rollback.get(), "ROLLBACK")
                                               : Query(writer_db_.get(), "ROLLBACK");
  if (!status.ok()) LOG_ERROR("event log rollback failed: ", status.message());
}

void SqliteEventLog::Impl::CommitBatch(std::vector<PendingAppend>& batch) {
  std::vector<absl::StatusOr<AppendResult>> results(batch.size());
  std::vector<size_t> stored;  // indexes of the appends written as new events
  Counters next = counters_;
  absl::Status status = WriteBatch(batch, results, stored, next);
  if (!status.ok()) {
    RollbackIfActive();
    // Nothing of the batch was kept; counters_ (the next sequence) is as before.
    const absl::Status failure = absl::UnavailableError(
        absl::StrCat("the event log cannot store events now: ", status.message()));
    LOG_ERROR(failure.message(), " (", batch.size(), " appends failed)");
    SetWritable(false, status.message());
    for (PendingAppend& pending : batch) std::move(pending.done)(failure);
    return;
  }
  counters_ = next;
  PublishCounters();
  {
    absl::MutexLock lock(&info_mu_);
    ++info_.commits;
    info_.committed_appends += batch.size();
  }
  SetWritable(true, "");
  std::vector<EventRecordPtr> records;
  records.reserve(stored.size());
  for (size_t i : stored) {
    NewEvent& event = batch[i].event;
    auto record = std::make_shared<EventRecord>();
    record->sequence = results[i]->sequence;
    record->id = std::move(event.id);
    record->type = std::move(event.type);
    record->account = std::move(event.account);
    record->livemode = event.livemode;
    record->receive_time = event.receive_time;
    record->event_bytes = std::move(event.event_bytes);
    record->raw_json = std::move(event.raw_json);
    records.push_back(std::move(record));
  }
  AppendListener* listener = listener_.load();
  if (listener != nullptr && !records.empty()) listener->OnAppended(records);
  for (size_t i = 0; i < batch.size(); ++i) std::move(batch[i].done)(std::move(results[i]));
  AfterWrite();
}

void SqliteEventLog::Impl::AfterWrite() {
  const uint64_t wal_bytes = static_cast<uint64_t>(wal_frames_) * page_size_;
  if (wal_bytes >= options_.wal_restart_bytes && absl::Now() >= next_restart_) {
    RestartWal();
    return;
  }
  if (wal_frames_ < checkpoint_asked_at_frames_) checkpoint_asked_at_frames_ = 0;  // restarted
  const uint64_t new_bytes =
      static_cast<uint64_t>(wal_frames_ - checkpoint_asked_at_frames_) * page_size_;
  if (new_bytes >= kCheckpointWalBytes) {
    checkpoint_asked_at_frames_ = wal_frames_;
    RequestCheckpoint();
  }
}

// A RESTART checkpoint copies what the passive passes have not yet, syncs
// the database file, and waits (briefly) until no reader uses the WAL, so
// the next commit writes the WAL from its start, over blocks the file
// already has. Run by the checkpointer, it would need the write lock, which
// the writer of a burst frees only between batches: SQLite's busy handler
// polls for it and, measured flat out at 16 connections, the WAL grew to
// 146-244 MiB before a truncation got through, every commit's fdatasync then
// extending the file. The writer runs it between its batches instead (the
// acknowledgements of the last batch are already sent). Passive passes run
// once per kCheckpointWalBytes of new frames, so under steady load too the
// WAL is restarted here (at 1,000 webhooks/s about every 4 s).
void SqliteEventLog::Impl::RestartWal() {
  sqlite3* db = writer_db_.get();
  int rc;
  {
    absl::MutexLock run(&checkpoint_run_mu_);
    sqlite3_busy_timeout(db, kRestartBusyTimeoutMs);
    rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
  }
  if (rc == SQLITE_OK) {
    {
      absl::MutexLock lock(&info_mu_);
      ++info_.wal_restarts;
    }
    wal_frames_ = 0;  // the hook reports the restarted WAL at the next commit
    next_restart_ = absl::InfinitePast();
    restart_retry_ = kRestartRetry;
    return;
  }
  // A reader kept an old snapshot (SQLITE_BUSY) or the checkpoint failed:
  // commits go on, and the writer tries again later, less often while it
  // keeps failing.
  if (rc != SQLITE_BUSY) LOG_WARNING("event log WAL restart failed: ", sqlite3_errmsg(db));
  next_restart_ = absl::Now() + restart_retry_;
  restart_retry_ = std::min(restart_retry_ * 2, kMaxRestartRetry);
}

absl::Status SqliteEventLog::Impl::WriteBatch(std::vector<PendingAppend>& batch,
                                              std::vector<absl::StatusOr<AppendResult>>& results,
                                              std::vector<size_t>& stored, Counters& next) {
  if (absl::Status status = Run(w_.begin.get(), "BEGIN"); !status.ok()) return status;
  // A second append of an id within the batch duplicates the first.
  std::unordered_map<std::string_view, uint64_t> batch_ids;
  for (size_t i = 0; i < batch.size(); ++i) {
    const NewEvent& event = batch[i].event;
    if (event.id.empty()) {
      results[i] = absl::InvalidArgumentError("an event without an id cannot be stored");
      continue;
    }
    const std::string_view id(event.id);
    if (auto it = batch_ids.find(id); it != batch_ids.end()) {
      results[i] = AppendResult{it->second, true};
      continue;
    }
    std::optional<uint64_t> existing;
    if (!BindText(w_.find_dedup.get(), 1, event.id)) return absl::InternalError("binding an id");
    absl::Status status = Run(w_.find_dedup.get(), "looking up an id", [&](sqlite3_stmt* s) {
      existing = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    });
    if (!status.ok()) return status;
    if (existing.has_value()) {
      results[i] = AppendResult{*existing, true};
      continue;
    }
    const uint64_t sequence = next.last_sequence + 1;
    const int64_t receive_us = absl::ToUnixMicros(event.receive_time);
    sqlite3_stmt* insert = w_.insert_event.get();
    const uint64_t stored_bytes = event.event_bytes.size() + event.raw_json.size();
    if (!BindInt(insert, 1, static_cast<int64_t>(sequence)) || !BindText(insert, 2, event.id) ||
        !BindText(insert, 3, event.type) || !BindText(insert, 4, event.account) ||
        !BindInt(insert, 5, event.livemode ? 1 : 0) || !BindInt(insert, 6, receive_us) ||
        !BindInt(insert, 7, static_cast<int64_t>(stored_bytes)) ||
        !BindInt(insert, 8,
                 RecordCrc(sequence, event.id, event.type, event.account, event.livemode,
                           receive_us, event.event_bytes)) ||
        !BindBlob(insert, 9, event.event_bytes)) {
      return absl::InternalError(absl::StrCat("binding event ", event.id, " (too large?)"));
    }
    if (status = Run(insert, "inserting an event"); !status.ok()) return status;
    sqlite3_stmt* raw = w_.insert_raw.get();
    if (!BindInt(raw, 1, static_cast<int64_t>(sequence)) ||
        !BindInt(raw, 2, Crc(0, event.raw_json)) || !BindBlob(raw, 3, event.raw_json)) {
      return absl::InternalError(absl::StrCat("binding the body of event ", event.id));
    }
    if (status = Run(raw, "inserting a raw body"); !status.ok()) return status;
    sqlite3_stmt* dedup = w_.insert_dedup.get();
    if (!BindText(dedup, 1, event.id) || !BindInt(dedup, 2, static_cast<int64_t>(sequence)) ||
        !BindInt(dedup, 3, receive_us)) {
      return absl::InternalError("binding a dedup row");
    }
    if (status = Run(dedup, "inserting a dedup row"); !status.ok()) return status;
    // When the log was empty, first_sequence already equals this sequence.
    next.last_sequence = sequence;
    next.event_count += 1;
    next.event_bytes += stored_bytes;
    batch_ids.emplace(id, sequence);
    results[i] = AppendResult{sequence, false};
    stored.push_back(i);
  }
  if (!stored.empty()) {
    if (absl::Status status = SetCounters(next); !status.ok()) return status;
  }
  return Run(w_.commit.get(), "COMMIT");  // the fsync
}

absl::Status SqliteEventLog::Impl::SetCounters(const Counters& counters) {
  sqlite3_stmt* stmt = w_.set_counters.get();
  if (!BindInt(stmt, 1, static_cast<int64_t>(counters.last_sequence)) ||
      !BindInt(stmt, 2, static_cast<int64_t>(counters.event_bytes)) ||
      !BindInt(stmt, 3, static_cast<int64_t>(counters.event_count))) {
    return absl::InternalError("binding the counters");
  }
  return Run(stmt, "updating the counters");
}

absl::StatusOr<bool> SqliteEventLog::Impl::TrimChunk(uint64_t* trimmed) {
  Counters next = counters_;
  uint64_t chunk_trimmed = 0;
  bool done = true;
  absl::Status status = Run(w_.begin.get(), "BEGIN");
  if (status.ok()) status = TrimChunkInTransaction(next, &chunk_trimmed, &done);
  if (status.ok()) status = Run(w_.commit.get(), "COMMIT");
  if (!status.ok()) {
    RollbackIfActive();
    return absl::UnavailableError(absl::StrCat("event log retention: ", status.message()));
  }
  counters_ = next;
  PublishCounters();
  *trimmed += chunk_trimmed;
  {
    absl::MutexLock lock(&info_mu_);
    info_.trimmed_events += chunk_trimmed;
  }
  return done;
}

// Deletes up to kTrimChunkRows events by age, as many by size, and up to
// kTrimChunkRows dedup rows; `done` is false while more remains.
absl::Status SqliteEventLog::Impl::TrimChunkInTransaction(Counters& next, uint64_t* trimmed,
                                                          bool* done) {
  const absl::Time now = options_.clock->Now();
  uint64_t removed = 0, removed_bytes = 0;
  sqlite3_stmt* by_age = w_.trim_by_age.get();
  if (!BindInt(by_age, 1, absl::ToUnixMicros(now - options_.retention)) ||
      !BindInt(by_age, 2, kTrimChunkRows)) {
    return absl::InternalError("binding the age cutoff");
  }
  std::vector<int64_t> aged;  // their raw bodies go next
  absl::Status status = Run(by_age, "trimming by age", [&](sqlite3_stmt* s) {
    ++removed;
    aged.push_back(sqlite3_column_int64(s, 0));
    removed_bytes += static_cast<uint64_t>(sqlite3_column_int64(s, 1));
  });
  if (!status.ok()) return status;
  for (const int64_t sequence : aged) {
    if (!BindInt(w_.delete_raw.get(), 1, sequence)) return absl::InternalError("binding");
    if (status = Run(w_.delete_raw.get(), "trimming raw bodies by age"); !status.ok()) {
      return status;
    }
  }
  if (removed == static_cast<uint64_t>(kTrimChunkRows)) *done = false;
  next.event_count = Subtract(next.event_count, removed);
  next.event_bytes = Subtract(next.event_bytes, removed_bytes);

  if (options_.max_bytes > 0 && next.event_bytes > options_.max_bytes) {
    // Oldest first, until what remains fits.
    const uint64_t excess = next.event_bytes - options_.max_bytes;
    uint64_t freed = 0, count = 0, through = 0;
    sqlite3_stmt* oldest = w_.oldest_sizes.get();
    if (!BindInt(oldest, 1, kTrimChunkRows)) return absl::InternalError("binding a limit");
    status = Run(oldest, "sizing the oldest events", [&](sqlite3_stmt* s) {
      if (freed >= excess) return;
      through = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
      freed += static_cast<uint64_t>(sqlite3_column_int64(s, 1));
      ++count;
    });
    if (!status.ok()) return status;
    if (freed < excess && count == static_cast<uint64_t>(kTrimChunkRows)) *done = false;
    if (count > 0) {
      if (!BindInt(w_.delete_through.get(), 1, static_cast<int64_t>(through))) {
        return absl::InternalError("binding a sequence");
      }
      status = Run(w_.delete_through.get(), "trimming by size");
      if (!status.ok()) return status;
      if (!BindInt(w_.delete_raw_through.get(), 1, static_cast<int64_t>(through))) {
        return absl::InternalError("binding a sequence");
      }
      status = Run(w_.delete_raw_through.get(), "trimming raw bodies by size");
      if (!status.ok()) return status;
      removed += count;
      next.event_count = Subtract(next.event_count, count);
      next.event_bytes = Subtract(next.event_bytes, freed);
    }
  }

  // Ids are remembered for the dedup window, and as long as their event may
  // be retained (Get looks ids up here).
  const absl::Duration keep_ids = std::max(options_.dedup_window, options_.retention);
  sqlite3_stmt* dedup = w_.trim_dedup.get();
  if (!BindInt(dedup, 1, absl::ToUnixMicros(now - keep_ids)) ||
      !BindInt(dedup, 2, kTrimChunkRows)) {
    return absl::InternalError("binding the dedup cutoff");
  }
  status = Run(dedup, "trimming dedup ids");
  if (!status.ok()) return status;
  if (sqlite3_changes64(writer_db_.get()) >= kTrimChunkRows) *done = false;

  if (removed == 0) return absl::OkStatus();
  std::optional<uint64_t> first;
  status = Run(w_.min_sequence.get(), "reading the first sequence", [&](sqlite3_stmt* s) {
    if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
      first = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    }
  });
  if (!status.ok()) return status;
  next.first_sequence = first.value_or(next.last_sequence + 1);
  if (!first.has_value()) next.event_count = next.event_bytes = 0;
  *trimmed = removed;
  return SetCounters(next);
}

void SqliteEventLog::Impl::RequestCheckpoint() {
  absl::MutexLock lock(&checkpoint_mu_);
  checkpoint_requested_ = true;
}

void SqliteEventLog::Impl::CheckpointLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&checkpoint_mu_);
      checkpoint_mu_.AwaitWithTimeout(absl::Condition(this, &Impl::CheckpointWanted),
                                      options_.maintenance_interval);
      if (checkpoint_stopping_) return;
      checkpoint_requested_ = false;
    }
    Checkpoint(checkpoint_db_.get(), /*truncate=*/false);
  }
}

// PASSIVE copies what it can without blocking anyone (the writer restarts a
// long WAL itself: RestartWal). With `truncate` (at close) the WAL is then
// emptied.
void SqliteEventLog::Impl::Checkpoint(sqlite3* db, bool truncate) {
  absl::MutexLock run(&checkpoint_run_mu_);
  int rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  if (rc == SQLITE_OK) {
    absl::MutexLock lock(&info_mu_);
    ++info_.wal_checkpoints;
  }
  if (rc == SQLITE_OK && truncate) {
    rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  }
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    LOG_WARNING("event log checkpoint failed: ", sqlite3_errmsg(db));
  }
}

absl::StatusOr<std::unique_ptr<SqliteEventLog::Impl::Reader>> SqliteEventLog::Impl::OpenReader() {
  auto reader = std::make_unique<Reader>();
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(db_path_.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  reader->db.reset(raw);
  if (rc != SQLITE_OK) return SqliteStatus(raw, rc, "opening a read connection");
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  constexpr absl::string_view kReadAfter = " WHERE e.sequence > ?1 ORDER BY e.sequence LIMIT ?2";
  constexpr absl::string_view kGetEvent = " WHERE e.sequence = ?1";
  const std::pair<Stmt*, std::string> statements[] = {
      {&reader->read_after, absl::StrCat(kRecordColumns, kEventsOnly, kReadAfter)},
      {&reader->read_after_raw, absl::StrCat(kRecordColumnsWithRaw, kEventsWithRaw, kReadAfter)},
      {&reader->find_dedup, "SELECT sequence FROM dedup WHERE id = ?1"},
      {&reader->get_event, absl::StrCat(kRecordColumns, kEventsOnly, kGetEvent)},
      {&reader->get_event_raw, absl::StrCat(kRecordColumnsWithRaw, kEventsWithRaw, kGetEvent)},
      // One statement, so both values come from the same snapshot.
      {&reader->cursor_for_time,
       "SELECT (SELECT MIN(sequence) FROM events INDEXED BY events_by_receive_time "
       "WHERE receive_time_us >= ?1), (SELECT value FROM meta WHERE key = 'last_sequence')"},
  };
  for (const auto& [stmt, sql] : statements) {
    absl::StatusOr<Stmt> prepared = Prepare(raw, sql);
    if (!prepared.ok()) return prepared.status();
    *stmt = *std::move(prepared);
  }
  return reader;
}

template <typename Result, typename Fn>
absl::StatusOr<Result> SqliteEventLog::Impl::WithReader(Fn fn) {
  std::unique_ptr<Reader> reader;
  {
    absl::MutexLock lock(&readers_mu_);
    if (!idle_readers_.empty()) {
      reader = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
  }
  if (reader == nullptr) {
    absl::StatusOr<std::unique_ptr<Reader>> opened = OpenReader();
    if (!opened.ok()) return opened.status();
    reader = *std::move(opened);
  }
  absl::StatusOr<Result> result = fn(*reader);
  absl::MutexLock lock(&readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(reader));
  return result;
}

absl::StatusOr<std::vector<EventRecordPtr>> SqliteEventLog::Impl::ReadAfter(
    uint64_t after_sequence, const ReadOptions& options) {
  if (options.max_events == 0) return absl::InvalidArgumentError("max_events must be at least 1");
  using Records = std::vector<EventRecordPtr>;
  return WithReader<Records>([&](Reader& reader) -> absl::StatusOr<Records> {
    sqlite3_stmt* stmt =
        options.include_raw_json ? reader.read_after_raw.get() : reader.read_after.get();
    if (!BindInt(stmt, 1, ClampToInt64(after_sequence)) ||
        !BindInt(stmt, 2, ClampToInt64(options.max_events))) {
      return absl::InternalError("binding a read");
    }
    Records records;
    uint64_t bytes = 0;
    int rc;
    absl::Status status;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      absl::StatusOr<EventRecordPtr> record = RecordFromRow(stmt, options.include_raw_json);
      if (!record.ok()) {
        // The intact records before a damaged one are returned; the read
        // that starts at the damaged one fails (the interface's contract).
        if (records.empty()) status = record.status();
        break;
      }
      records.push_back(*std::move(record));
      bytes += records.back()->StoredBytes();
      if (bytes >= options.max_bytes) break;
    }
    if (status.ok() && rc != SQLITE_ROW && rc != SQLITE_DONE) {
      status = SqliteStatus(reader.db.get(), rc, "reading events");
    }
    sqlite3_reset(stmt);  // also ends the read transaction
    if (!status.ok()) return status;
    return records;
  });
}

absl::StatusOr<EventRecordPtr> SqliteEventLog::Impl::Get(absl::string_view id,
                                                         bool include_raw_json) {
  return WithReader<EventRecordPtr>([&](Reader& reader) -> absl::StatusOr<EventRecordPtr> {
    std::optional<int64_t> sequence;
    if (!BindText(reader.find_dedup.get(), 1, id)) return absl::InternalError("binding an id");
    absl::Status status = Run(reader.find_dedup.get(), "looking up an id",
                              [&](sqlite3_stmt* s) { sequence = sqlite3_column_int64(s, 0); });
    if (!status.ok()) return status;
    if (!sequence.has_value()) {
      return absl::NotFoundError(absl::StrCat("no event with id ", id, " is stored"));
    }
    sqlite3_stmt* stmt = include_raw_json ? reader.get_event_raw.get() : reader.get_event.get();
    absl::StatusOr<EventRecordPtr> read = EventRecordPtr();
    if (!BindInt(stmt, 1, *sequence)) return absl::InternalError("binding a sequence");
    status = Run(stmt, "reading an event",
                 [&](sqlite3_stmt* s) { read = RecordFromRow(s, include_raw_json); });
    if (!status.ok()) return status;
    if (!read.ok()) return read.status();
    EventRecordPtr record = *std::move(read);
    if (record == nullptr || record->id != id) {
      return absl::NotFoundError(
          absl::StrCat("event ", id, " (sequence ", *sequence, ") is no longer retained"));
    }
    return record;
  });
}

absl::StatusOr<uint64_t> SqliteEventLog::Impl::CursorForTime(absl::Time time) {
  return WithReader<uint64_t>([&](Reader& reader) -> absl::StatusOr<uint64_t> {
    sqlite3_stmt* stmt = reader.cursor_for_time.get();
    if (!BindInt(stmt, 1, absl::ToUnixMicros(time))) return absl::InternalError("binding a time");
    std::optional<int64_t> first;
    int64_t last = 0;
    absl::Status status = Run(stmt, "finding a time", [&](sqlite3_stmt* s) {
      if (sqlite3_column_type(s, 0) != SQLITE_NULL) first = sqlite3_column_int64(s, 0);
      last = sqlite3_column_int64(s, 1);
    });
    if (!status.ok()) return status;
    return static_cast<uint64_t>(first.has_value() ? *first - 1 : last);
  });
}

absl::StatusOr<std::unique_ptr<SqliteEventLog>> SqliteEventLog::Open(
    const SqliteEventLogOptions& options) {
  absl::StatusOr<std::unique_ptr<Impl>> impl = Impl::Open(options);
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<SqliteEventLog>(new SqliteEventLog(*std::move(impl)));
}

SqliteEventLog::SqliteEventLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteEventLog::~SqliteEventLog() = default;

void SqliteEventLog::Append(NewEvent event, AppendCallback done) {
  impl_->Append(std::move(event), std::move(done));
}
absl::StatusOr<std::vector<EventRecordPtr>> SqliteEventLog::ReadAfter(uint64_t after_sequence,
                                                                      const ReadOptions& options) {
  return impl_->ReadAfter(after_sequence, options);
}
absl::StatusOr<EventRecordPtr> SqliteEventLog::Get(absl::string_view id, bool include_raw_json) {
  return impl_->Get(id, include_raw_json);
}
absl::StatusOr<uint64_t> SqliteEventLog::CursorForTime(absl::Time time) {
  return impl_->CursorForTime(time);
}
LogInfo SqliteEventLog::Info() const { return impl_->Info(); }
void SqliteEventLog::SetListener(AppendListener* listener) { impl_->SetListener(listener); }
absl::StatusOr<uint64_t> SqliteEventLog::TrimNow() { return impl_->TrimNow(); }

}  // namespace sidestream
