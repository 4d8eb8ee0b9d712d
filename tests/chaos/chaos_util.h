// Helpers shared by the crash-safety tests: Stripe-like delivery with
// retries, reading back everything the log serves, checking it against what
// was sent, gRPC health, and damaging files on purpose.
#ifndef SIDESTREAM_TESTS_CHAOS_CHAOS_UTIL_H_
#define SIDESTREAM_TESTS_CHAOS_CHAOS_UTIL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "client/http_client.h"
#include "sidestream/v1/event.pb.h"
#include "tests/testing/server_process.h"

namespace sidestream::testing {

// An integer from the environment (CI mode uses the fallback; longer runs set
// the variable). The fallback also when the value does not parse.
int64_t EnvInt(const char* name, int64_t fallback);

// The seed of every random choice of a test: SIDESTREAM_CHAOS_SEED, or a
// fixed default so that CI runs are reproducible. Printed by each test.
uint64_t ChaosSeed();

// One event as the test sent it.
struct SentEvent {
  std::string id;
  std::string type;
  std::string body;  // the exact bytes posted (and signed)
};

// A sample event with a realistic body; `id` must be unique per test.
SentEvent MakeEvent(const std::string& id, std::mt19937_64& rng);

// What a webhook POST ended with.
struct Delivery {
  bool acknowledged = false;  // a 2xx arrived
  int attempts = 0;           // POSTs made, retries included
  int status_503 = 0;         // of which answered 503
  int transport_errors = 0;   // of which failed without an answer
  uint64_t sequence = 0;      // from the 2xx body
  bool duplicate = false;     // the 2xx said the id was already stored
  std::string last_error;     // why the last attempt failed, when not acknowledged
};

// Posts `event` as Stripe would (headers, a fresh signature per attempt) on
// `connection` once.
absl::StatusOr<HttpResponse> PostOnce(HttpConnection& connection, const SentEvent& event);

// The sequence a 2xx webhook answer reports ("sequence":N), or 0.
uint64_t AckSequence(const HttpResponse& response);

// Posts until a 2xx arrives or `deadline` passes. A transport error or a 5xx
// is retried with the same body and a new signature, after a short random
// back-off (Stripe backs off for hours; the test compresses that). A 4xx is
// final. Bounded by `max_attempts` too.
Delivery DeliverLikeStripe(HttpConnection& connection, const SentEvent& event, absl::Time deadline,
                           std::mt19937_64& rng, int max_attempts = 100000);

// Every event the server at `grpc_target` serves, oldest first, read with
// ListEvents pages (raw_json included). When a page fails, the events of
// the pages before it go to `listed_before_error` if it is set.
absl::StatusOr<std::vector<v1::Event>> ListAllEvents(
    const std::string& grpc_target, absl::Duration timeout = absl::Seconds(60),
    std::vector<v1::Event>* listed_before_error = nullptr);

// GetEvent by id (raw_json included).
absl::StatusOr<v1::Event> GetEventById(const std::string& grpc_target, const std::string& id);

// Compares what a server served with what was sent (by id): every served
// event must be one that was sent, its raw_json byte-identical to the body
// posted, its parsed id and type equal to the sent ones. Returns one line per
// problem (empty when all is well).
std::vector<std::string> CheckServedAgainstSent(const std::vector<v1::Event>& served,
                                                const std::map<std::string, SentEvent>& sent);

// The grpc.health.v1 status of `service` ("" for the whole server):
// 1 SERVING, 2 NOT_SERVING, or an error.
absl::StatusOr<int> HealthStatus(const std::string& grpc_target, const std::string& service);

// Waits until `service` reports `want` or the deadline; true when it did.
bool WaitForHealth(const std::string& grpc_target, const std::string& service, int want,
                   absl::Duration timeout);

// Whether the process is running (not exited, not a zombie).
bool ProcessAlive(int pid);

// File damage. Each returns false (with a test failure) when the file
// cannot be changed.
int64_t FileSize(const std::string& path);  // -1 when missing
bool TruncateFile(const std::string& path, int64_t size);
bool OverwriteFile(const std::string& path, int64_t offset, const std::string& bytes);
std::string RandomBytes(size_t n, std::mt19937_64& rng);

// A data directory with events in it, and what was sent to it.
struct PopulatedLog {
  std::map<std::string, SentEvent> sent;           // by id
  std::map<uint64_t, std::string> id_by_sequence;  // from the acknowledgements
  std::string epoch;
};

// Starts a server on `data_dir` and sends `n` events one after another,
// each acknowledged; the server is left running in `*server`. Ids are
// `id_prefix` plus a counter.
absl::StatusOr<PopulatedLog> Populate(const std::string& data_dir, int n,
                                      const std::string& id_prefix, std::mt19937_64& rng,
                                      std::unique_ptr<ServerProcess>* server);

// How a start on a damaged data directory ended.
struct StartOutcome {
  std::unique_ptr<ServerProcess> server;  // set when it started
  int exit_code = 0;                      // when it did not: exit code, or -signal
  std::string error;                      // when it did not: exit status and stderr
};
StartOutcome StartOnDataDir(const std::string& data_dir);

// The "sidestream: cannot start: ..." line of a refusal (else the whole
// error).
std::string RefusalLine(const StartOutcome& outcome);

// Empty when a refusal to start is a clear one: a non-zero exit code (not a
// signal: a crash is not a refusal) and a message naming the data directory.
std::string RefusalProblem(const StartOutcome& outcome, const std::string& data_dir);

// Everything a running server serves, read through ListEvents and through a
// Subscribe stream from the oldest event (both with raw_json), checked
// against what was sent: same id at the same sequence, same bytes, same
// type. A read that fails (DATA_LOSS, a broken stream) is damage detected,
// not served.
struct ServedCheck {
  size_t listed = 0;                  // events ListEvents returned
  size_t streamed = 0;                // events the stream delivered
  std::string list_error;             // why ListEvents stopped early, if it did
  std::string stream_error;           // why the stream ended before caught_up, if it did
  std::vector<std::string> problems;  // served data that differs from what was sent
  std::string Summary() const;
};
ServedCheck CheckEverythingServed(const std::string& grpc_target, const PopulatedLog& log);

// Runs one SQL statement (or several) on an SQLite database with the
// library directly, as an operator or a damaged disk might leave it. Empty
// on success, else SQLite's message.
std::string RunSql(const std::string& db_path, const std::string& sql);

}  // namespace sidestream::testing

#endif  // SIDESTREAM_TESTS_CHAOS_CHAOS_UTIL_H_
