#include "server/log/wal_write_buffer.h"

#include <algorithm>
#include <atomic>
#include <new>
#include <string>

#include <sqlite3.h>

namespace sidestream {
namespace {

constexpr char kName[] = "sidestream-wal-buffer";

std::atomic<uint64_t> writes_made{0};
std::atomic<uint64_t> writes_sent{0};

// The default VFS, wrapped (set once, before registration).
sqlite3_vfs* base_vfs = nullptr;

// The bytes gathered for one WAL file: a run of adjacent writes from offset.
struct Run {
  sqlite3_int64 offset = 0;
  std::string bytes;
};

// Every file opened through this VFS: our header, then the default VFS's file
// object in the same allocation (szOsFile covers both). `run` is set for WAL
// files only; every other file is passed through.
struct File {
  sqlite3_file header;
  sqlite3_file* real;
  Run* run;
};
static_assert(sizeof(File) % 8 == 0, "the default VFS's file object follows File, 8-byte aligned");

File* AsFile(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
sqlite3_file* Real(sqlite3_file* f) { return AsFile(f)->real; }
const sqlite3_io_methods* M(sqlite3_file* f) { return Real(f)->pMethods; }

// The most bytes passed to the default VFS in one write. SQLite itself never
// writes more than a page and a frame header at once, and the unix VFS
// relies on it: it masks each write's length with 0x1ffff, so a longer write
// fails as "disk full".
constexpr int kMaxSendBytes = 31 * 4096;

// Writes the gathered run, if any, to the file. What could not be written
// stays gathered, so every later operation tries again and fails while it
// cannot: SQLite was told those writes succeeded, and a statement that fails
// (say, a read that had to send first) does not always end the transaction,
// so nothing may be dropped before it reaches the file.
int SendRun(sqlite3_file* f) {
  Run* run = AsFile(f)->run;
  if (run == nullptr || run->bytes.empty()) return SQLITE_OK;
  int rc = SQLITE_OK;
  size_t sent = 0;
  while (sent < run->bytes.size()) {
    const int n = static_cast<int>(std::min<size_t>(run->bytes.size() - sent, kMaxSendBytes));
    writes_sent.fetch_add(1, std::memory_order_relaxed);
    rc = M(f)->xWrite(Real(f), run->bytes.data() + sent, n,
                      run->offset + static_cast<sqlite3_int64>(sent));
    if (rc != SQLITE_OK) break;
    sent += static_cast<size_t>(n);
  }
  run->bytes.erase(0, sent);
  run->offset += static_cast<sqlite3_int64>(sent);
  return rc;
}

// Adds bytes to the run; SQLite's C frames must not see an exception.
int Gather(Run* run, const void* buf, int n) {
  try {
    run->bytes.append(static_cast<const char*>(buf), static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    return SQLITE_IOERR_NOMEM;
  }
  return SQLITE_OK;
}

int Write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 offset) {
  Run* run = AsFile(f)->run;
  if (run == nullptr) return M(f)->xWrite(Real(f), buf, n, offset);
  writes_made.fetch_add(1, std::memory_order_relaxed);
  const auto gathered = static_cast<sqlite3_int64>(run->bytes.size());
  if (gathered > 0 && offset == run->offset + gathered && gathered + n <= kWalWriteBufferMaxBytes) {
    return Gather(run, buf, n);
  }
  if (const int rc = SendRun(f); rc != SQLITE_OK) return rc;
  if (n > kMaxSendBytes) {
    writes_sent.fetch_add(1, std::memory_order_relaxed);
    return M(f)->xWrite(Real(f), buf, n, offset);
  }
  run->offset = offset;  // the run is empty once sent
  return Gather(run, buf, n);
}

// Everything that reads, sizes, syncs or changes the file sees the gathered
// writes first. What a close cannot send was never synced, so never part of
// a commit.
int Close(sqlite3_file* f) {
  const int send_rc = SendRun(f);
  const int rc = M(f)->xClose(Real(f));
  delete AsFile(f)->run;
  AsFile(f)->run = nullptr;
  return send_rc != SQLITE_OK ? send_rc : rc;
}
int Read(sqlite3_file* f, void* buf, int n, sqlite3_int64 offset) {
  if (const int rc = SendRun(f); rc != SQLITE_OK) return rc;
  return M(f)->xRead(Real(f), buf, n, offset);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (const int rc = SendRun(f); rc != SQLITE_OK) return rc;
  return M(f)->xTruncate(Real(f), size);
}
int Sync(sqlite3_file* f, int flags) {
  if (const int rc = SendRun(f); rc != SQLITE_OK) return rc;
  return M(f)->xSync(Real(f), flags);
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  if (const int rc = SendRun(f); rc != SQLITE_OK) return rc;
  return M(f)->xFileSize(Real(f), size);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  if (const int rc = SendRun(f); rc != SQLITE_OK) return rc;
  return M(f)->xFileControl(Real(f), op, arg);
}

// The rest does not touch the file's bytes (a WAL file has no locks or
// shared memory of its own; the database file's are passed through).
int Lock(sqlite3_file* f, int level) { return M(f)->xLock(Real(f), level); }
int Unlock(sqlite3_file* f, int level) { return M(f)->xUnlock(Real(f), level); }
int CheckReservedLock(sqlite3_file* f, int* out) { return M(f)->xCheckReservedLock(Real(f), out); }
int SectorSize(sqlite3_file* f) { return M(f)->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) { return M(f)->xDeviceCharacteristics(Real(f)); }
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  if (M(f)->iVersion < 2) return SQLITE_IOERR;
  return M(f)->xShmMap(Real(f), region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  if (M(f)->iVersion < 2) return SQLITE_IOERR;
  return M(f)->xShmLock(Real(f), offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) {
  if (M(f)->iVersion >= 2) M(f)->xShmBarrier(Real(f));
}
int ShmUnmap(sqlite3_file* f, int delete_flag) {
  if (M(f)->iVersion < 2) return SQLITE_OK;
  return M(f)->xShmUnmap(Real(f), delete_flag);
}
int Fetch(sqlite3_file* f, sqlite3_int64 offset, int n, void** out) {
  if (AsFile(f)->run != nullptr || M(f)->iVersion < 3) {
    *out = nullptr;  // no memory map: SQLite reads instead
    return SQLITE_OK;
  }
  return M(f)->xFetch(Real(f), offset, n, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  if (AsFile(f)->run != nullptr || M(f)->iVersion < 3) return SQLITE_OK;
  return M(f)->xUnfetch(Real(f), offset, p);
}

constexpr sqlite3_io_methods kMethods = {3,
                                         Close,
                                         Read,
                                         Write,
                                         Truncate,
                                         Sync,
                                         FileSize,
                                         Lock,
                                         Unlock,
                                         CheckReservedLock,
                                         FileControl,
                                         SectorSize,
                                         DeviceCharacteristics,
                                         ShmMap,
                                         ShmLock,
                                         ShmBarrier,
                                         ShmUnmap,
                                         Fetch,
                                         Unfetch};

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  File* file = AsFile(f);
  file->header.pMethods = nullptr;  // until the real open succeeds
  file->real = reinterpret_cast<sqlite3_file*>(file + 1);
  file->run = nullptr;
  const int rc = base_vfs->xOpen(base_vfs, name, file->real, flags, out_flags);
  if (rc == SQLITE_OK && file->real->pMethods != nullptr) {
    // Without powersafe overwrite SQLite pads a commit's last frame after
    // its sync, and that tail must not wait in memory: such a WAL is passed
    // through, as is one whose run cannot be allocated.
    const bool powersafe = (file->real->pMethods->xDeviceCharacteristics(file->real) &
                            SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
    if ((flags & SQLITE_OPEN_WAL) != 0 && powersafe) file->run = new (std::nothrow) Run();
    file->header.pMethods = &kMethods;
  } else if (file->real->pMethods != nullptr) {
    // A failed open that still needs closing (SQLite's contract).
    file->real->pMethods->xClose(file->real);
  }
  return rc;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return base_vfs->xDelete(base_vfs, name, sync_dir);
}
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return base_vfs->xAccess(base_vfs, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return base_vfs->xFullPathname(base_vfs, name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return base_vfs->xDlOpen(base_vfs, name); }
void DlError(sqlite3_vfs*, int n, char* out) { base_vfs->xDlError(base_vfs, n, out); }
void (*DlSym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return base_vfs->xDlSym(base_vfs, handle, symbol);
}
void DlClose(sqlite3_vfs*, void* handle) { base_vfs->xDlClose(base_vfs, handle); }
int Randomness(sqlite3_vfs*, int n, char* out) { return base_vfs->xRandomness(base_vfs, n, out); }
int Sleep(sqlite3_vfs*, int micros) { return base_vfs->xSleep(base_vfs, micros); }
int CurrentTime(sqlite3_vfs*, double* out) { return base_vfs->xCurrentTime(base_vfs, out); }
int GetLastError(sqlite3_vfs*, int n, char* out) {
  return base_vfs->xGetLastError != nullptr ? base_vfs->xGetLastError(base_vfs, n, out) : 0;
}
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  if (base_vfs->iVersion >= 2 && base_vfs->xCurrentTimeInt64 != nullptr) {
    return base_vfs->xCurrentTimeInt64(base_vfs, out);
  }
  double days = 0;
  const int rc = base_vfs->xCurrentTime(base_vfs, &days);
  *out = static_cast<sqlite3_int64>(days * 86400000.0);
  return rc;
}

sqlite3_vfs vfs;

const char* Register() {
  if (sqlite3_initialize() != SQLITE_OK) return nullptr;
  base_vfs = sqlite3_vfs_find(nullptr);
  if (base_vfs == nullptr) return nullptr;
  vfs = sqlite3_vfs{};
  vfs.iVersion = 2;  // the system-call overrides (version 3) stay the default VFS's
  vfs.szOsFile = static_cast<int>(sizeof(File)) + base_vfs->szOsFile;
  vfs.mxPathname = base_vfs->mxPathname;
  vfs.zName = kName;
  vfs.xOpen = Open;
  vfs.xDelete = Delete;
  vfs.xAccess = Access;
  vfs.xFullPathname = FullPathname;
  vfs.xDlOpen = DlOpen;
  vfs.xDlError = DlError;
  vfs.xDlSym = DlSym;
  vfs.xDlClose = DlClose;
  vfs.xRandomness = Randomness;
  vfs.xSleep = Sleep;
  vfs.xCurrentTime = CurrentTime;
  vfs.xGetLastError = GetLastError;
  vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  if (sqlite3_vfs_register(&vfs, /*makeDflt=*/0) != SQLITE_OK) return nullptr;
  return kName;
}

}  // namespace

const char* WalWriteBufferVfsName() {
  static const char* const name = Register();
  return name;
}

WalWriteBufferCounters ReadWalWriteBufferCounters() {
  return {writes_made.load(std::memory_order_relaxed), writes_sent.load(std::memory_order_relaxed)};
}

}  // namespace sidestream
