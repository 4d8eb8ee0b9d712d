// The SQLite VFS of the event log's writer connection: the platform's default
// VFS, except that writes to the WAL file are gathered in memory and reach
// the file as one write per run of adjacent bytes, at the latest when SQLite
// syncs the file.
//
// Why. SQLite writes each WAL frame with two calls, its 24-byte header and
// its page, so a commit of n pages costs 2n pwrite(2) calls before its
// fdatasync. In a VM each call is a trip through the kernel that costs
// several microseconds of CPU (docs/performance.md, item 6): at a steady
// 1,000 webhooks/s, about 14 calls per commit. Gathered, a commit's frames
// are one call.
//
// What it needs: the connection uses synchronous=FULL (or EXTRA), so that
// every commit syncs the WAL. With NORMAL or OFF a commit's frames would
// become visible to other connections while still in memory. The event log's
// writer sets FULL (SqliteEventLog::Impl::OpenWriter). A WAL file without
// powersafe overwrite (the unix VFS's default has it) is not buffered.
//
// Why it is safe. Nothing that SQLite can observe changes order:
//   - a write that does not continue the gathered run sends the run first,
//     so the file sees the writes in the order SQLite made them;
//   - every other operation on the file (read, size, truncate, sync, file
//     control, close) sends the run first, so SQLite reads back what it
//     wrote and a sync covers every write before it;
//   - only this connection sees unsent bytes, and it never lets another
//     connection read them: with synchronous=FULL a commit syncs the WAL
//     (sending the run) before the wal-index makes its frames visible; the
//     frames of a transaction that spilled its cache are visible to no one
//     else before its commit.
// A crash loses only writes that had not been synced, which SQLite already
// treats as lost (the WAL's checksums end the log at the last good commit).
// An error sending the run is returned by the operation that sent it, and
// what was not sent stays gathered, so every later operation (the commit's
// sync among them) fails until it is written: a commit whose frames could
// not be written fails and rolls back.
//
// Only WAL files opened through this VFS are buffered; the database file, its
// -shm and everything else go to the default VFS unchanged.
#ifndef SIDESTREAM_SERVER_LOG_WAL_WRITE_BUFFER_H_
#define SIDESTREAM_SERVER_LOG_WAL_WRITE_BUFFER_H_

#include <cstdint>

namespace sidestream {

// Registers the VFS once per process (not as the default) and returns its
// name, for sqlite3_open_v2; nullptr when there is no default VFS to wrap.
const char* WalWriteBufferVfsName();

// The most bytes gathered before they are sent (a large transaction, such as
// a retention pass, is sent in pieces of this size).
inline constexpr int64_t kWalWriteBufferMaxBytes = 1 << 20;

// What the VFS did since the process started, for tests and diagnostics.
struct WalWriteBufferCounters {
  uint64_t writes = 0;  // WAL writes SQLite made through the VFS
  uint64_t sends = 0;   // writes the default VFS made for them
};
WalWriteBufferCounters ReadWalWriteBufferCounters();

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_LOG_WAL_WRITE_BUFFER_H_
