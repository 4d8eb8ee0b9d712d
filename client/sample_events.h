// Realistic sample Stripe events, so anyone can try Sidestream (and tests and
// benchmarks can drive it) without a Stripe account. The JSON follows the
// shape of Stripe's documented example objects for each type.
#ifndef SIDESTREAM_CLIENT_SAMPLE_EVENTS_H_
#define SIDESTREAM_CLIENT_SAMPLE_EVENTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sidestream {

struct SampleEventOptions {
  // Stripe event type, such as "payout.failed". Required.
  std::string type;
  // Connected account ("acct_..."); empty for a platform event.
  std::string account;
  bool livemode = false;
  // Event id; empty picks a random "evt_..." id.
  std::string id;
  // Unix seconds for `created`; 0 means now.
  int64_t created = 0;
  // API version rendered in the event.
  std::string api_version = "2024-06-20";
  // Extra bytes of metadata in data.object, to make events of a given size
  // (benchmarks). 0 for none.
  size_t padding_bytes = 0;
};

// The event types with a hand-written realistic data.object: at least the
// Connect types of docs (account.application.deauthorized,
// account.external_account.updated, account.updated, balance.available,
// payment_intent.succeeded, payout.failed, person.updated) and a few common
// platform ones. Also "v1.billing.meter.error_report_triggered", built as a
// thin (API v2) event.
const std::vector<std::string>& SampleEventTypes();

// The JSON body of a sample event. Any well-formed type (dotted lower-case
// words) is accepted: types without a hand-written object get a generic one
// whose `object` is the type's first part. INVALID_ARGUMENT for a malformed
// type or account.
absl::StatusOr<std::string> BuildSampleEvent(const SampleEventOptions& options);

}  // namespace sidestream

#endif  // SIDESTREAM_CLIENT_SAMPLE_EVENTS_H_
