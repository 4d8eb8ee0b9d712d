#include "server/log/wal_write_buffer.h"

#include <signal.h>
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include <sqlite3.h>
#include <sys/resource.h>

namespace sidestream {
namespace {

// A row's body: 3,000 characters that differ from every other row's, so that
// a page read from the wrong place, or a write lost, shows.
std::string BodyOf(const char* id) { return std::string("printf('%03000d', ") + id + ")"; }

class WalWriteBufferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(WalWriteBufferVfsName(), nullptr);
    std::string pattern =
        (std::filesystem::path(testing::TempDir()) / "wal_buffer_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (std::filesystem::path(dir_) / "t.db").string();
    writer_ = Open(WalWriteBufferVfsName());
    for (const char* sql :
         {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA wal_autocheckpoint=0",
          "CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB NOT NULL)"}) {
      ASSERT_EQ(Exec(writer_, sql), SQLITE_OK) << sql << ": " << sqlite3_errmsg(writer_);
    }
  }
  void TearDown() override {
    sqlite3_close(writer_);
    std::filesystem::remove_all(dir_);
  }

  sqlite3* Open(const char* vfs) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
              SQLITE_OK);
    return db;
  }
  static int Exec(sqlite3* db, const std::string& sql) {
    return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // Inserts rows [first, first + count); returns the first error.
  static int InsertRows(sqlite3* db, int64_t first, int64_t count) {
    const std::string sql = "INSERT INTO t(id, body) VALUES (?1, " + BodyOf("?1") + ")";
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
    for (int64_t id = first; rc == SQLITE_OK && id < first + count; ++id) {
      sqlite3_bind_int64(stmt, 1, id);
      rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
      sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);
    return rc;
  }
  // The single integer a query returns, -1 on failure.
  static int64_t Int(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    int64_t value = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return value;
  }
  static int64_t Rows(sqlite3* db) { return Int(db, "SELECT count(*) FROM t"); }
  // Rows whose body is not the one InsertRows wrote.
  static int64_t WrongBodies(sqlite3* db) {
    return Int(db, "SELECT count(*) FROM t WHERE body IS NOT " + BodyOf("id"));
  }
  // Another connection, through the default VFS, finds `rows` rows with the
  // bodies InsertRows wrote, in a database that passes its integrity check.
  void ExpectAnotherConnectionFinds(int64_t rows) {
    sqlite3* reader = Open(nullptr);
    EXPECT_EQ(Rows(reader), rows);
    EXPECT_EQ(WrongBodies(reader), 0);
    EXPECT_EQ(IntegrityCheck(reader), "ok");
    sqlite3_close(reader);
  }
  static std::string IntegrityCheck(sqlite3* db) {
    sqlite3_stmt* stmt = nullptr;
    std::string result;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return result;
  }

  std::string dir_;
  std::string path_;
  sqlite3* writer_ = nullptr;
};

TEST_F(WalWriteBufferTest, ACommitReachesTheWalAsOneWriteAndOthersReadIt) {
  const WalWriteBufferCounters before = ReadWalWriteBufferCounters();
  ASSERT_EQ(Exec(writer_, "BEGIN"), SQLITE_OK);
  ASSERT_EQ(InsertRows(writer_, 0, 20), SQLITE_OK);
  ASSERT_EQ(Exec(writer_, "COMMIT"), SQLITE_OK);
  const WalWriteBufferCounters after = ReadWalWriteBufferCounters();
  // Each row fills its own page: at least 20 frames, two writes each, all
  // adjacent and under one piece (20 frames are ~82 KB).
  EXPECT_GE(after.writes - before.writes, 40u);
  EXPECT_EQ(after.sends - before.sends, 1u);

  ExpectAnotherConnectionFinds(20);
}

TEST_F(WalWriteBufferTest, ACommitLargerThanOneWriteIsSentInPieces) {
  // ~400 KB of frames: more than the default VFS writes at once.
  const WalWriteBufferCounters before = ReadWalWriteBufferCounters();
  ASSERT_EQ(Exec(writer_, "BEGIN"), SQLITE_OK);
  ASSERT_EQ(InsertRows(writer_, 0, 100), SQLITE_OK);
  ASSERT_EQ(Exec(writer_, "COMMIT"), SQLITE_OK) << sqlite3_errmsg(writer_);
  const WalWriteBufferCounters after = ReadWalWriteBufferCounters();
  EXPECT_GE(after.sends - before.sends, 4u);
  EXPECT_LE(after.sends - before.sends, 5u);

  ExpectAnotherConnectionFinds(100);
}

TEST_F(WalWriteBufferTest, ATransactionLargerThanItsCacheReadsBackWhatItSpilled) {
  // With a 16-page cache, 300 rows spill to the WAL before the commit, and
  // reading them back inside the transaction reads those frames.
  ASSERT_EQ(Exec(writer_, "PRAGMA cache_size=16"), SQLITE_OK);
  const WalWriteBufferCounters before = ReadWalWriteBufferCounters();
  ASSERT_EQ(Exec(writer_, "BEGIN"), SQLITE_OK);
  ASSERT_EQ(InsertRows(writer_, 0, 300), SQLITE_OK);
  EXPECT_GT(ReadWalWriteBufferCounters().sends, before.sends);  // it did spill
  ExpectAnotherConnectionFinds(0);                              // none of the open transaction
  EXPECT_EQ(Rows(writer_), 300);
  EXPECT_EQ(WrongBodies(writer_), 0);
  ASSERT_EQ(Exec(writer_, "UPDATE t SET body = body WHERE id % 7 = 0"), SQLITE_OK);
  ASSERT_EQ(Exec(writer_, "COMMIT"), SQLITE_OK) << sqlite3_errmsg(writer_);

  ExpectAnotherConnectionFinds(300);
}

TEST_F(WalWriteBufferTest, AWriteThatFailsFailsTheCommitAndLeavesNoTrace) {
  ASSERT_EQ(InsertRows(writer_, 0, 1), SQLITE_OK);  // one committed row
  const std::string wal = path_ + "-wal";
  const auto wal_size = static_cast<rlim_t>(std::filesystem::file_size(wal));

  // Files may not grow past the WAL's size plus 64 KiB. The transaction's
  // pages stay in the pager's cache until COMMIT writes them as frames
  // (~400 KB, gathered), and sending them at the commit's sync fails.
  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit limit = old_limit;
  limit.rlim_cur = wal_size + (64 << 10);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  int begin_rc = Exec(writer_, "BEGIN");
  int insert_rc = InsertRows(writer_, 1, 100);
  int commit_rc = Exec(writer_, "COMMIT");
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);

  EXPECT_EQ(begin_rc, SQLITE_OK);
  EXPECT_EQ(insert_rc, SQLITE_OK);  // in the cache, not yet written
  EXPECT_NE(commit_rc, SQLITE_OK);
  if (sqlite3_get_autocommit(writer_) == 0) Exec(writer_, "ROLLBACK");

  ExpectAnotherConnectionFinds(1);

  // The connection goes on: the next commit lands.
  ASSERT_EQ(InsertRows(writer_, 1, 100), SQLITE_OK) << sqlite3_errmsg(writer_);
  ExpectAnotherConnectionFinds(101);
}

// Through the VFS's own interface: bytes that could not be sent stay
// gathered, so a later sync sends them (SQLite was told they were written).
TEST_F(WalWriteBufferTest, BytesThatFailToReachTheFileAreSentByTheNextAttempt) {
  sqlite3_vfs* vfs = sqlite3_vfs_find(WalWriteBufferVfsName());
  ASSERT_NE(vfs, nullptr);
  const std::string db = (std::filesystem::path(dir_) / "direct.db").string();
  { std::ofstream touch(db); }  // the unix VFS takes a WAL's mode from its database
  std::string wal = db + "-wal";
  wal.append(4, '\0');  // a filename as SQLite passes it: URI parameters follow
  std::vector<std::max_align_t> storage(
      static_cast<size_t>(vfs->szOsFile) / sizeof(std::max_align_t) + 1);
  auto* file = reinterpret_cast<sqlite3_file*>(storage.data());
  ASSERT_EQ(vfs->xOpen(vfs, wal.c_str(), file,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL, nullptr),
            SQLITE_OK);
  const std::string a(4096, 'a'), b(4096, 'b');
  ASSERT_EQ(file->pMethods->xWrite(file, a.data(), 4096, 0), SQLITE_OK);
  ASSERT_EQ(file->pMethods->xWrite(file, b.data(), 4096, 4096), SQLITE_OK);
  EXPECT_EQ(std::filesystem::file_size(db + "-wal"), 0u);  // gathered

  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 4096;  // the first half fits, the second does not
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  const int failed_rc = file->pMethods->xSync(file, SQLITE_SYNC_FULL);
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  EXPECT_NE(failed_rc, SQLITE_OK);

  EXPECT_EQ(file->pMethods->xSync(file, SQLITE_SYNC_FULL), SQLITE_OK);
  sqlite3_int64 size = 0;
  EXPECT_EQ(file->pMethods->xFileSize(file, &size), SQLITE_OK);
  EXPECT_EQ(size, 8192);
  std::string read(8192, '\0');
  EXPECT_EQ(file->pMethods->xRead(file, read.data(), 8192, 0), SQLITE_OK);
  EXPECT_TRUE(read == a + b) << "the file does not hold the two writes in order";
  EXPECT_EQ(file->pMethods->xClose(file), SQLITE_OK);
}

}  // namespace
}  // namespace sidestream
