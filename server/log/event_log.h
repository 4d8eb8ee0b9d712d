// EventLog: the single source of truth for stored events.
//
// The log dedups by event id, assigns sequences (strictly increasing, never
// reused within an epoch), makes each event durable before reporting success,
// reads by sequence, looks up by id and applies retention. Nothing
// backend-specific (SQLite, NATS JetStream) crosses this interface.
//
// Thread safety: every method may be called from any thread concurrently.
#ifndef SIDESTREAM_SERVER_LOG_EVENT_LOG_H_
#define SIDESTREAM_SERVER_LOG_EVENT_LOG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

#include "server/log/event_record.h"

namespace sidestream {

// Outcome of a successful append.
struct AppendResult {
  // The event's sequence: newly assigned, or the stored one for a duplicate.
  uint64_t sequence = 0;
  // True when the id was already stored; nothing was written.
  bool duplicate = false;
};

// A snapshot of the log's state. Cheap to get (kept in memory).
struct LogInfo {
  // Identity of this log; sequences from another epoch mean nothing here.
  std::string epoch;
  // Oldest retained sequence; equals last_sequence + 1 when the log holds no
  // event (empty or fully trimmed).
  uint64_t first_sequence = 1;
  // Newest sequence ever assigned (the head); 0 when nothing was ever stored.
  uint64_t last_sequence = 0;
  // Retained events and their bytes (EventRecord::StoredBytes; JetStream
  // counts its headers and subjects too).
  uint64_t event_count = 0;
  uint64_t event_bytes = 0;
  // Name of the backend, such as "sqlite".
  std::string backend;
  // False after the backend failed to store (disk full, I/O error, storage
  // unreachable) until a later write succeeds; the backend retries on its
  // own while false. Drives readiness.
  bool writable = true;
  // Why the last write failed, while `writable` is false.
  std::string last_error;
  // Events removed by retention since the log was opened.
  uint64_t trimmed_events = 0;
  // Group commits of appends since the log was opened (one durable write,
  // an fsync for SQLite, each), and the appends they carried (duplicates
  // included): their ratio is the average batch size.
  uint64_t commits = 0;
  uint64_t committed_appends = 0;
  // The embedded log's WAL maintenance since the log was opened: passive
  // checkpoint passes (each copies the WAL's new frames into the database
  // file), and restarts of the WAL from its start run by the writer (a
  // RESTART checkpoint once the WAL holds wal_restart_bytes; SQLite may also
  // restart a fully copied WAL on its own, not counted). 0 for other backends.
  uint64_t wal_checkpoints = 0;
  uint64_t wal_restarts = 0;
};

struct ReadOptions {
  // At most this many records per read (>= 1).
  size_t max_events = 256;
  // Stop after the record that crosses this many bytes (at least one record
  // is returned when any exists).
  size_t max_bytes = 4 << 20;
  // Also load raw_json (it doubles the bytes read).
  bool include_raw_json = false;
};

// Receives every event the log stores, in sequence order, exactly once,
// after it is durable. Called from a log-owned thread; must not block and
// must not call back into the log.
class AppendListener {
 public:
  virtual ~AppendListener() = default;
  virtual void OnAppended(absl::Span<const EventRecordPtr> records) = 0;
};

class EventLog {
 public:
  using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<AppendResult>) &&>;

  virtual ~EventLog() = default;

  // Stores `event` unless its id is already stored, then calls `done` once,
  // from a log-owned thread, after the event is durable (or known to be a
  // duplicate). `done` must not block. Errors: UNAVAILABLE when the log
  // cannot store now (disk full, I/O error, shutting down): the caller
  // should answer 503 so Stripe retries. Ids are deduplicated for at least
  // the dedup window of the backend (never less than 72 hours).
  virtual void Append(NewEvent event, AppendCallback done) = 0;

  // Returns stored records with sequence > `after_sequence`, in order, at
  // most `options.max_events`. Empty when there is none. Sequences are dense:
  // every sequence from Info().first_sequence to Info().last_sequence is
  // readable; a record missing below first_sequence was removed by retention
  // (readers report that as lost, never skip it silently). DATA_LOSS, naming
  // the sequence, when the first record to return is damaged; a damaged
  // record further on ends the result before it, so the intact records
  // ahead of it are still delivered and the next read reports it.
  virtual absl::StatusOr<std::vector<EventRecordPtr>> ReadAfter(uint64_t after_sequence,
                                                                const ReadOptions& options) = 0;

  // The stored event with this id. NOT_FOUND when none is retained.
  virtual absl::StatusOr<EventRecordPtr> Get(absl::string_view id, bool include_raw_json) = 0;

  // The cursor to read from to get every event received at or after `time`:
  // the sequence just before the first such event (so ReadAfter(result)
  // starts there). Returns last_sequence when no event is that recent.
  virtual absl::StatusOr<uint64_t> CursorForTime(absl::Time time) = 0;

  virtual LogInfo Info() const = 0;

  // The listener that receives every stored record. Set once, before the
  // first Append; not owned; must outlive the log.
  virtual void SetListener(AppendListener* listener) = 0;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_LOG_EVENT_LOG_H_
