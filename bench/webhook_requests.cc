#include "bench/webhook_requests.h"

#include <time.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

#include "client/sample_events.h"
#include "server/verify/stripe_signature.h"

namespace sidestream::bench {
namespace {

static_assert(kEventIdDigits == 12, "EventId formats 12 digits");

// Types whose sample events take padding (thin v2 events carry no metadata,
// so their size cannot be chosen).
std::vector<std::string> PaddableTypes() {
  std::vector<std::string> types;
  for (const std::string& type : SampleEventTypes()) {
    if (!absl::StartsWith(type, "v1.")) types.push_back(type);
  }
  return types;
}

// Enough templates that types, accounts, modes and sizes combine in many
// ways, few enough to build in milliseconds.
constexpr size_t kTemplateCount = 64;

}  // namespace

std::string EventId(uint64_t index) {
  return absl::StrCat(kEventIdPrefix, absl::StrFormat("%012d", index));
}

std::optional<uint64_t> ParseEventIndex(absl::string_view id) {
  if (!absl::ConsumePrefix(&id, kEventIdPrefix) || id.size() != kEventIdDigits) {
    return std::nullopt;
  }
  uint64_t index = 0;
  for (char c : id) {
    if (!absl::ascii_isdigit(c)) return std::nullopt;
    index = index * 10 + static_cast<uint64_t>(c - '0');
  }
  return index;
}

const std::vector<std::string>& LoadAccounts() {
  static const auto* accounts = new std::vector<std::string>{
      "acct_1LoadGenAlpha00001", "acct_1LoadGenBravo00002", "acct_1LoadGenCharlie003"};
  return *accounts;
}

absl::StatusOr<WebhookRequestFactory> WebhookRequestFactory::Create(
    const WebhookRequestOptions& options) {
  if (options.sizes.empty()) return absl::InvalidArgumentError("no event size given");
  if (options.secret.empty()) return absl::InvalidArgumentError("no signing secret given");
  WebhookRequestFactory factory;
  factory.options_ = options;
  const std::vector<std::string> types = PaddableTypes();
  const std::string placeholder = EventId(0);
  for (size_t i = 0; i < kTemplateCount; ++i) {
    SampleEventOptions sample;
    sample.type = types[i % types.size()];
    // One event in four is the platform's own; the rest spread over the
    // connected accounts.
    sample.account = i % 4 == 0 ? "" : LoadAccounts()[i % LoadAccounts().size()];
    sample.livemode = i % 3 == 0;
    sample.id = placeholder;
    absl::StatusOr<std::string> body = BuildSampleEvent(sample);
    if (!body.ok()) return body.status();
    const size_t target = options.sizes[i % options.sizes.size()];
    // Padding adds its bytes plus a fixed overhead; two tries find the
    // padding that lands on the target (random ids have a fixed length).
    for (int attempt = 0; attempt < 3 && body->size() != target; ++attempt) {
      const int64_t missing = static_cast<int64_t>(target) - static_cast<int64_t>(body->size());
      const int64_t padding = static_cast<int64_t>(sample.padding_bytes) + missing;
      if (padding <= 0 && sample.padding_bytes == 0) break;  // already larger than the target
      sample.padding_bytes = static_cast<size_t>(std::max<int64_t>(padding, 1));
      body = BuildSampleEvent(sample);
      if (!body.ok()) return body.status();
    }
    const size_t at = body->find(absl::StrCat("\"", placeholder, "\""));
    if (at == std::string::npos) {
      return absl::InternalError(absl::StrCat("sample ", sample.type, " lost its id"));
    }
    factory.templates_.push_back({*std::move(body), at + 1 + kEventIdPrefix.size()});
  }
  return factory;
}

std::string WebhookRequestFactory::Body(uint64_t index) const {
  const Template& t = templates_[index % templates_.size()];
  std::string body = t.body;
  const std::string digits = absl::StrFormat("%012d", index);
  body.replace(t.id_digits_at, kEventIdDigits, digits);
  return body;
}

std::string WebhookRequestFactory::Build(uint64_t index, int64_t signed_at) const {
  const std::string body = Body(index);
  const std::string signature = MakeStripeSignatureHeader({options_.secret}, signed_at, body);
  // The headers Stripe sends (docs/stripe.md), in Stripe's order.
  return absl::StrCat("POST ", options_.path, " HTTP/1.1\r\nHost: ", options_.host,
                      "\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
                      "Accept: */*; q=0.5, application/xml\r\nCache-Control: no-cache\r\n"
                      "Content-Type: application/json; charset=utf-8\r\nStripe-Signature: ",
                      signature, "\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
}

size_t WebhookRequestFactory::mean_body_bytes() const {
  size_t total = 0;
  for (const Template& t : templates_) total += t.body.size();
  return templates_.empty() ? 0 : total / templates_.size();
}

RequestPool::RequestPool(const WebhookRequestFactory* factory, size_t size, bool reuse,
                         int64_t signed_at)
    : factory_(factory), reuse_(reuse) {
  requests_.reserve(std::max<size_t>(size, 1));
  for (size_t i = 0; i < std::max<size_t>(size, 1); ++i) {
    requests_.push_back(factory->Build(i, signed_at));
  }
}

const std::string& RequestPool::Get(uint64_t index, std::string* scratch) const {
  if (index < requests_.size()) return requests_[index];
  if (reuse_) return requests_[index % requests_.size()];
  built_on_the_spot_.fetch_add(1, std::memory_order_relaxed);
  *scratch = factory_->Build(index, absl::ToUnixSeconds(absl::Now()));
  return *scratch;
}

SendTimes::SendTimes(size_t capacity)
    : capacity_(capacity), times_(new std::atomic<int64_t>[capacity]) {
  for (size_t i = 0; i < capacity; ++i) times_[i].store(0, std::memory_order_relaxed);
}

void SendTimes::Set(uint64_t index, int64_t ns) {
  if (index < capacity_) times_[index].store(ns, std::memory_order_release);
}

int64_t SendTimes::Get(uint64_t index) const {
  return index < capacity_ ? times_[index].load(std::memory_order_acquire) : 0;
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace sidestream::bench
