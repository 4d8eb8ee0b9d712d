#include "tests/testing/e2e_util.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"

#include "client/sample_events.h"
#include "server/verify/stripe_signature.h"

namespace sidestream::testing {

std::string SampleBody(const std::string& type, const std::string& account, bool livemode,
                       const std::string& id, size_t padding_bytes) {
  SampleEventOptions options;
  options.padding_bytes = padding_bytes;
  options.type = type;
  options.account = account;
  options.livemode = livemode;
  options.id = id;
  absl::StatusOr<std::string> body = BuildSampleEvent(options);
  return body.ok() ? *body : std::string();
}

absl::StatusOr<HttpResponse> PostWebhook(const std::string& url, const std::string& body,
                                         const std::string& secret, absl::Time signed_at) {
  HttpHeaders headers = {{"Content-Type", "application/json; charset=utf-8"},
                         {"User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
                         {"Stripe-Signature", MakeStripeSignatureHeader(
                                                  {secret}, absl::ToUnixSeconds(signed_at), body)}};
  return HttpPost(url, headers, body, absl::Seconds(30));
}

void WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.good()) << "cannot write " << tmp;
  }
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0) << path;
}

bool WaitForReadyz(const std::string& admin_address, int want_status, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (int i = 0; i < 10000 && absl::Now() < deadline; ++i) {
    absl::StatusOr<HttpResponse> r =
        HttpGet(absl::StrCat("http://", admin_address, "/readyz"), {}, absl::Seconds(5));
    if (r.ok() && r->status_code == want_status) return true;
    // Polling interval of a readiness probe (kubelet polls too).
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

std::unique_ptr<v1::Events::Stub> EventsStub(const std::string& target) {
  return v1::Events::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

StreamCollector::StreamCollector(const std::string& target, v1::SubscribeRequest request)
    : channel_(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())),
      stub_(v1::Events::NewStub(channel_)),
      thread_([this, request = std::move(request)] { Run(request); }) {}

StreamCollector::~StreamCollector() {
  Cancel();
  thread_.join();
}

void StreamCollector::Run(v1::SubscribeRequest request) {
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      stub_->Subscribe(&context_, request);
  v1::SubscribeResponse item;
  while (reader->Read(&item)) {
    absl::MutexLock lock(&mu_);
    if (item.has_event()) ++event_count_;
    event_count_ += item.batch().events_size();
    if (item.has_checkpoint()) ++checkpoint_count_;
    if (item.has_caught_up()) caught_up_ = true;
    items_.push_back(item);
  }
  grpc::Status status = reader->Finish();
  absl::MutexLock lock(&mu_);
  status_ = status;
  ended_ = true;
}

bool StreamCollector::WaitForEvents(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, n]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return event_count_ >= n || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return event_count_ >= n;
}

bool StreamCollector::WaitForCaughtUp(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return caught_up_ || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return caught_up_;
}

bool StreamCollector::WaitForCheckpoints(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, n]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return checkpoint_count_ >= n || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return checkpoint_count_ >= n;
}

bool StreamCollector::WaitForEnd(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout);
  return ended_;
}

std::vector<v1::Event> StreamCollector::events() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Event> events;
  for (const auto& item : items_) {
    if (item.has_event()) events.push_back(item.event());
    for (const v1::Event& event : item.batch().events()) events.push_back(event);
  }
  return events;
}

std::vector<v1::SubscribeResponse> StreamCollector::items() const {
  absl::MutexLock lock(&mu_);
  return items_;
}

grpc::Status StreamCollector::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void StreamCollector::Cancel() { context_.TryCancel(); }

}  // namespace sidestream::testing
