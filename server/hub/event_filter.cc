#include "server/hub/event_filter.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

#include "server/common/stripe_ids.h"

namespace sidestream {

absl::StatusOr<EventFilter> EventFilter::Create(const v1::EventFilter& proto) {
  if (proto.types_size() > kMaxEntries || proto.accounts_size() > kMaxEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter: at most ", kMaxEntries, " types and ", kMaxEntries, " accounts"));
  }
  EventFilter filter;
  if (!v1::Origin_IsValid(proto.origin())) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter.origin: unknown value ", proto.origin()));
  }
  if (!v1::Livemode_IsValid(proto.livemode())) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter.livemode: unknown value ", proto.livemode()));
  }
  filter.origin_ = proto.origin() == v1::ORIGIN_UNSPECIFIED ? v1::ORIGIN_ANY : proto.origin();
  filter.livemode_ =
      proto.livemode() == v1::LIVEMODE_UNSPECIFIED ? v1::LIVEMODE_ANY : proto.livemode();

  bool wildcard = proto.types().empty();
  for (const std::string& type : proto.types()) {
    absl::string_view t = type;
    if (t == "*") {
      wildcard = true;
    } else if (absl::ConsumeSuffix(&t, ".*")) {
      if (!IsEventType(t)) {
        return absl::InvalidArgumentError(
            absl::StrCat("filter.types: \"", type, "\" is not a type prefix like \"account.*\""));
      }
      filter.type_prefixes_.push_back(absl::StrCat(t, "."));
    } else if (IsEventType(t)) {
      filter.exact_types_.insert(type);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "filter.types: \"", type,
          "\" is not an event type (\"payout.failed\"), a prefix (\"account.*\") or \"*\""));
    }
  }
  filter.all_types_ = wildcard;
  if (wildcard) {
    filter.exact_types_.clear();
    filter.type_prefixes_.clear();
  }

  for (const std::string& account : proto.accounts()) {
    if (!IsAccountId(account)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "filter.accounts: \"", account, "\" is not a connected account id (\"acct_...\")"));
    }
    filter.accounts_.insert(account);
  }
  if (!filter.accounts_.empty() && filter.origin_ == v1::ORIGIN_PLATFORM) {
    return absl::InvalidArgumentError(
        "filter: accounts cannot be combined with origin ORIGIN_PLATFORM (platform events have "
        "no account, so nothing would match)");
  }
  return filter;
}

bool EventFilter::Matches(absl::string_view type, absl::string_view account, bool livemode) const {
  switch (livemode_) {
    case v1::LIVEMODE_LIVE:
      if (!livemode) return false;
      break;
    case v1::LIVEMODE_TEST:
      if (livemode) return false;
      break;
    default:
      break;
  }
  switch (origin_) {
    case v1::ORIGIN_PLATFORM:
      if (!account.empty()) return false;
      break;
    case v1::ORIGIN_CONNECT:
      if (account.empty()) return false;
      break;
    default:
      break;
  }
  if (!accounts_.empty() && !accounts_.contains(account)) return false;
  if (all_types_ || exact_types_.contains(type)) return true;
  for (const std::string& prefix : type_prefixes_) {
    if (absl::StartsWith(type, prefix)) return true;
  }
  return false;
}

}  // namespace sidestream
