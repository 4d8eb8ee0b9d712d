// The forms of Stripe identifiers that Sidestream accepts. One definition for
// the decoder (what may enter the log), the filter (what a subscriber may ask
// for) and the sample events. The forms are strict on purpose: they are safe
// as NATS subject tokens and URL path segments.
#ifndef SIDESTREAM_SERVER_COMMON_STRIPE_IDS_H_
#define SIDESTREAM_SERVER_COMMON_STRIPE_IDS_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace sidestream {

inline constexpr size_t kMaxStripeIdLength = 255;
inline constexpr size_t kMaxEventTypeLength = 255;
inline constexpr absl::string_view kAccountIdPrefix = "acct_";
inline constexpr size_t kMaxAccountIdSuffixLength = 250;

// An object id such as "evt_1NG8Du2eZvKYlo2CUI79vXWy": 1 to 255 of
// [A-Za-z0-9_].
bool IsStripeId(absl::string_view id);

// An event type such as "payout.failed" or
// "v1.billing.meter.error_report_triggered": dot-separated non-empty tokens
// of [a-z0-9_], at most 255 characters.
bool IsEventType(absl::string_view type);

// A connected account such as "acct_1Nv0FGQ9RKHgCVdK": "acct_" and 1 to 250
// of [A-Za-z0-9]. (The platform's own events have no account: callers that
// accept that check for empty first.)
bool IsAccountId(absl::string_view account);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_STRIPE_IDS_H_
