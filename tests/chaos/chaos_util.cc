#include "tests/chaos/chaos_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "client/sample_events.h"
#include "server/verify/stripe_signature.h"
#include "sidestream/v1/events_service.grpc.pb.h"
#include "tests/testing/e2e_util.h"

namespace sidestream::testing {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  int64_t parsed = 0;
  if (value == nullptr || !absl::SimpleAtoi(value, &parsed)) return fallback;
  return parsed;
}

uint64_t ChaosSeed() { return static_cast<uint64_t>(EnvInt("SIDESTREAM_CHAOS_SEED", 20240611)); }

SentEvent MakeEvent(const std::string& id, std::mt19937_64& rng) {
  const std::vector<std::string>& types = SampleEventTypes();
  SentEvent event;
  event.id = id;
  event.type = types[rng() % types.size()];
  // Half Connect events (with an account), half platform events.
  const std::string account = rng() % 2 == 0 ? absl::StrCat("acct_1Chaos", rng() % 1000) : "";
  event.body = SampleBody(event.type, account, rng() % 2 == 0, id);
  return event;
}

absl::StatusOr<HttpResponse> PostOnce(HttpConnection& connection, const SentEvent& event) {
  HttpHeaders headers = {
      {"Content-Type", "application/json; charset=utf-8"},
      {"User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
      {"Stripe-Signature",
       MakeStripeSignatureHeader({kTestSecret}, absl::ToUnixSeconds(absl::Now()), event.body)}};
  return connection.Post(headers, event.body, absl::Seconds(10));
}

namespace {

std::optional<uint64_t> JsonUint(const std::string& body, absl::string_view key) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  const size_t at = body.find(needle);
  if (at == std::string::npos) return std::nullopt;
  size_t end = at + needle.size();
  while (end < body.size() && body[end] >= '0' && body[end] <= '9') ++end;
  uint64_t value = 0;
  if (!absl::SimpleAtoi(body.substr(at + needle.size(), end - at - needle.size()), &value)) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

uint64_t AckSequence(const HttpResponse& response) {
  return JsonUint(response.body, "sequence").value_or(0);
}

Delivery DeliverLikeStripe(HttpConnection& connection, const SentEvent& event, absl::Time deadline,
                           std::mt19937_64& rng, int max_attempts) {
  Delivery delivery;
  while (delivery.attempts < max_attempts && absl::Now() < deadline) {
    ++delivery.attempts;
    absl::StatusOr<HttpResponse> response = PostOnce(connection, event);
    if (response.ok() && response->status_code >= 200 && response->status_code < 300) {
      delivery.acknowledged = true;
      delivery.sequence = JsonUint(response->body, "sequence").value_or(0);
      delivery.duplicate = absl::StrContains(response->body, "\"duplicate\":true");
      delivery.last_error.clear();
      return delivery;
    }
    if (!response.ok()) {
      ++delivery.transport_errors;
      delivery.last_error = std::string(response.status().message());
    } else {
      delivery.last_error = absl::StrCat(response->status_code, " ", response->body);
      if (response->status_code == 503) ++delivery.status_503;
      if (response->status_code < 500) return delivery;  // a 4xx is not retried
    }
    // Retry back-off (Stripe's, compressed), not synchronisation: nothing
    // tells a webhook sender when the server is back.
    absl::SleepFor(absl::Milliseconds(5 + static_cast<int64_t>(rng() % 45)));
  }
  return delivery;
}

absl::StatusOr<std::vector<v1::Event>> ListAllEvents(const std::string& grpc_target,
                                                     absl::Duration timeout,
                                                     std::vector<v1::Event>* listed_before_error) {
  std::unique_ptr<v1::Events::Stub> stub = EventsStub(grpc_target);
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<v1::Event> events;
  v1::ListEventsRequest request;
  request.set_position(v1::START_POSITION_OLDEST);
  request.set_page_size(1000);
  request.set_include_raw_json(true);
  for (int page = 0; page < 100000; ++page) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    v1::ListEventsResponse response;
    grpc::Status status = stub->ListEvents(&context, request, &response);
    if (!status.ok()) {
      if (listed_before_error != nullptr) *listed_before_error = std::move(events);
      return absl::UnavailableError(
          absl::StrCat("ListEvents failed (", status.error_code(), "): ", status.error_message()));
    }
    for (v1::Event& event : *response.mutable_events()) events.push_back(std::move(event));
    if (response.next_page_token().empty()) return events;
    request.set_page_token(response.next_page_token());
  }
  return absl::DeadlineExceededError("ListEvents did not reach the head");
}

absl::StatusOr<v1::Event> GetEventById(const std::string& grpc_target, const std::string& id) {
  std::unique_ptr<v1::Events::Stub> stub = EventsStub(grpc_target);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::GetEventRequest request;
  request.set_id(id);
  request.set_include_raw_json(true);
  v1::GetEventResponse response;
  grpc::Status status = stub->GetEvent(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return response.event();
}

std::vector<std::string> CheckServedAgainstSent(const std::vector<v1::Event>& served,
                                                const std::map<std::string, SentEvent>& sent) {
  std::vector<std::string> problems;
  for (const v1::Event& event : served) {
    auto it = sent.find(event.id());
    if (it == sent.end()) {
      problems.push_back(
          absl::StrCat("sequence ", event.sequence(), ": id \"", event.id(), "\" was never sent"));
      continue;
    }
    if (event.raw_json() != it->second.body) {
      problems.push_back(absl::StrCat("sequence ", event.sequence(), " (", event.id(),
                                      "): raw_json differs from the body posted (",
                                      event.raw_json().size(), " vs ", it->second.body.size(),
                                      " bytes)"));
    }
    if (event.type() != it->second.type) {
      problems.push_back(absl::StrCat("sequence ", event.sequence(), " (", event.id(), "): type \"",
                                      event.type(), "\", sent \"", it->second.type, "\""));
    }
  }
  return problems;
}

absl::StatusOr<int> HealthStatus(const std::string& grpc_target, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(grpc_target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("health check failed (", status.error_code(), "): ", status.error_message()));
  }
  return static_cast<int>(response.status());
}

bool WaitForHealth(const std::string& grpc_target, const std::string& service, int want,
                   absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (int i = 0; i < 10000 && absl::Now() < deadline; ++i) {
    absl::StatusOr<int> status = HealthStatus(grpc_target, service);
    if (status.ok() && *status == want) return true;
    // Polling interval of a health probe (no push channel for Check).
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

bool ProcessAlive(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  if (!std::getline(in, stat)) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' &&
         stat[close + 2] != 'X';
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_size);
}

bool TruncateFile(const std::string& path, int64_t size) {
  if (truncate(path.c_str(), size) != 0) {
    ADD_FAILURE() << "cannot truncate " << path << ": " << std::strerror(errno);
    return false;
  }
  return true;
}

bool OverwriteFile(const std::string& path, int64_t offset, const std::string& bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << "cannot open " << path << ": " << std::strerror(errno);
    return false;
  }
  const ssize_t written = pwrite(fd, bytes.data(), bytes.size(), offset);
  close(fd);
  if (written != static_cast<ssize_t>(bytes.size())) {
    ADD_FAILURE() << "cannot write " << path << " at " << offset;
    return false;
  }
  return true;
}

std::string RandomBytes(size_t n, std::mt19937_64& rng) {
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  return bytes;
}

absl::StatusOr<PopulatedLog> Populate(const std::string& data_dir, int n,
                                      const std::string& id_prefix, std::mt19937_64& rng,
                                      std::unique_ptr<ServerProcess>* server) {
  ServerProcessOptions options;
  options.data_dir = data_dir;
  absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(options);
  if (!started.ok()) return started.status();
  *server = *std::move(started);
  absl::StatusOr<std::unique_ptr<HttpConnection>> connection =
      HttpConnection::Create((*server)->webhook_url());
  if (!connection.ok()) return connection.status();
  PopulatedLog log;
  log.epoch = (*server)->epoch();
  for (int i = 0; i < n; ++i) {
    SentEvent event = MakeEvent(absl::StrCat(id_prefix, i), rng);
    Delivery delivery =
        DeliverLikeStripe(**connection, event, absl::Now() + absl::Seconds(30), rng, 5);
    if (!delivery.acknowledged || delivery.duplicate) {
      return absl::InternalError(
          absl::StrCat("event ", event.id, " was not stored: ", delivery.last_error));
    }
    log.id_by_sequence[delivery.sequence] = event.id;
    log.sent.emplace(event.id, std::move(event));
  }
  return log;
}

StartOutcome StartOnDataDir(const std::string& data_dir) {
  ServerProcessOptions options;
  options.data_dir = data_dir;
  StartOutcome outcome;
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  if (server.ok()) {
    outcome.server = *std::move(server);
    return outcome;
  }
  outcome.error = std::string(server.status().message());
  // "server did not get ready (exit N); stderr: ..."
  const size_t at = outcome.error.find("(exit ");
  outcome.exit_code = -1000;
  if (at != std::string::npos) {
    const size_t end = outcome.error.find(')', at);
    int code = 0;
    if (end != std::string::npos &&
        absl::SimpleAtoi(outcome.error.substr(at + 6, end - at - 6), &code)) {
      outcome.exit_code = code;
    }
  }
  return outcome;
}

std::string RefusalLine(const StartOutcome& outcome) {
  const size_t at = outcome.error.find("sidestream: ");
  if (at == std::string::npos) return outcome.error;
  return outcome.error.substr(at, outcome.error.find('\n', at) - at);
}

std::string RefusalProblem(const StartOutcome& outcome, const std::string& data_dir) {
  if (outcome.server != nullptr) return "it started";
  if (outcome.exit_code == 0) return "it exited with code 0";
  if (outcome.exit_code < 0) {
    return absl::StrCat("it died (", outcome.exit_code, ": a signal or a hang): ", outcome.error);
  }
  if (!absl::StrContains(outcome.error, data_dir)) {
    return absl::StrCat("its message does not name the data directory: ", outcome.error);
  }
  return "";
}

std::string ServedCheck::Summary() const {
  std::string summary = absl::StrCat("listed ", listed, ", streamed ", streamed);
  if (!list_error.empty()) absl::StrAppend(&summary, "; ListEvents failed: ", list_error);
  if (!stream_error.empty()) absl::StrAppend(&summary, "; stream ended: ", stream_error);
  if (!problems.empty()) {
    absl::StrAppend(&summary, "; ", problems.size(), " WRONG:");
    for (size_t i = 0; i < problems.size() && i < 6; ++i) {
      absl::StrAppend(&summary, " [", problems[i], "]");
    }
  }
  return summary;
}

namespace {

// Checks one served event against the sent log.
void CheckOne(const v1::Event& event, const PopulatedLog& log, const char* via,
              std::vector<std::string>* problems) {
  auto it = log.id_by_sequence.find(event.sequence());
  if (it != log.id_by_sequence.end() && it->second != event.id()) {
    problems->push_back(absl::StrCat(via, ": sequence ", event.sequence(), " served as \"",
                                     event.id(), "\", acknowledged as \"", it->second, "\""));
    return;
  }
  for (std::string& problem : CheckServedAgainstSent({event}, log.sent)) {
    problems->push_back(absl::StrCat(via, ": ", problem));
  }
}

}  // namespace

ServedCheck CheckEverythingServed(const std::string& grpc_target, const PopulatedLog& log) {
  ServedCheck check;
  std::vector<v1::Event> before_error;
  absl::StatusOr<std::vector<v1::Event>> listed =
      ListAllEvents(grpc_target, absl::Seconds(30), &before_error);
  if (!listed.ok()) check.list_error = std::string(listed.status().message());
  const std::vector<v1::Event>& served = listed.ok() ? *listed : before_error;
  check.listed = served.size();
  for (const v1::Event& event : served) CheckOne(event, log, "ListEvents", &check.problems);
  // A stream read here rather than with StreamCollector: when a message
  // cannot be parsed, Read() fails while the server keeps the call open, and
  // Finish() would wait forever; this reader cancels first.
  v1::SubscribeRequest request;
  request.set_position(v1::START_POSITION_OLDEST);
  request.set_include_raw_json(true);
  std::unique_ptr<v1::Events::Stub> stub = EventsStub(grpc_target);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      stub->Subscribe(&context, request);
  std::vector<v1::Event> streamed;
  v1::SubscribeResponse item;
  bool caught_up = false;
  while (!caught_up && reader->Read(&item)) {
    if (item.has_event()) streamed.push_back(item.event());
    caught_up = item.has_caught_up();
  }
  context.TryCancel();
  const grpc::Status status = reader->Finish();
  if (!caught_up) {
    check.stream_error = absl::StrCat("ended before caught_up with status ", status.error_code(),
                                      " (", status.error_message(), ")");
  }
  check.streamed = streamed.size();
  for (const v1::Event& event : streamed) CheckOne(event, log, "Subscribe", &check.problems);
  return check;
}

std::string RunSql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  std::string error;
  if (rc == SQLITE_OK) {
    char* message = nullptr;
    rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) error = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
  } else {
    error = sqlite3_errmsg(db);
  }
  sqlite3_close_v2(db);
  return error;
}

}  // namespace sidestream::testing
