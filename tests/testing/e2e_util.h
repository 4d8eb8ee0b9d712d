// Helpers for end-to-end tests: signed webhook posts and a Subscribe stream
// collected on a background thread with condition waits.
#ifndef SIDESTREAM_TESTS_TESTING_E2E_UTIL_H_
#define SIDESTREAM_TESTS_TESTING_E2E_UTIL_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

#include "client/http_client.h"
#include "sidestream/v1/events_service.grpc.pb.h"

namespace sidestream::testing {

inline constexpr char kTestSecret[] = "whsec_e2e_test_secret";

// A realistic sample event body (see client/sample_events.h), with
// `padding_bytes` of extra metadata.
std::string SampleBody(const std::string& type, const std::string& account, bool livemode,
                       const std::string& id, size_t padding_bytes = 0);

// POSTs `body` as Stripe would, signed with `secret` at `signed_at`.
absl::StatusOr<HttpResponse> PostWebhook(const std::string& url, const std::string& body,
                                         const std::string& secret = kTestSecret,
                                         absl::Time signed_at = absl::Now());

std::unique_ptr<v1::Events::Stub> EventsStub(const std::string& target);

// Writes `text` to `path` aside and renames it into place, as deployment
// tools do, so that a server re-reading the file never sees half of it.
// A failure is a test failure.
void WriteFile(const std::string& path, const std::string& text);

// Polls GET http://<admin_address>/readyz until it answers `want_status`
// (200 or 503); false at the deadline. Readiness is re-evaluated on the
// server's timer, so there is no event to wait on.
bool WaitForReadyz(const std::string& admin_address, int want_status, absl::Duration timeout);

// Runs one Subscribe call on a thread and records what arrives.
class StreamCollector {
 public:
  StreamCollector(const std::string& target, v1::SubscribeRequest request);
  ~StreamCollector();  // cancels and joins

  // Each waits until the condition holds or `timeout` passes; false on timeout.
  bool WaitForEvents(size_t n, absl::Duration timeout = absl::Seconds(30));
  bool WaitForCaughtUp(absl::Duration timeout = absl::Seconds(30));
  bool WaitForCheckpoints(size_t n, absl::Duration timeout = absl::Seconds(30));
  bool WaitForEnd(absl::Duration timeout = absl::Seconds(30));

  // Every event received, in order, whether in `event` or `batch` items.
  std::vector<v1::Event> events() const;
  std::vector<v1::SubscribeResponse> items() const;
  // The status the stream ended with (valid after WaitForEnd).
  grpc::Status status() const;
  void Cancel();

 private:
  void Run(v1::SubscribeRequest request);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Events::Stub> stub_;
  grpc::ClientContext context_;
  mutable absl::Mutex mu_;
  std::vector<v1::SubscribeResponse> items_ ABSL_GUARDED_BY(mu_);
  size_t event_count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t checkpoint_count_ ABSL_GUARDED_BY(mu_) = 0;
  bool caught_up_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace sidestream::testing

#endif  // SIDESTREAM_TESTS_TESTING_E2E_UTIL_H_
