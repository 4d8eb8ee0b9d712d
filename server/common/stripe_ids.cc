#include "server/common/stripe_ids.h"

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"

namespace sidestream {

bool IsStripeId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxStripeIdLength) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

bool IsEventType(absl::string_view type) {
  if (type.empty() || type.size() > kMaxEventTypeLength) return false;
  bool token_empty = true;
  for (char c : type) {
    if (c == '.') {
      if (token_empty) return false;
      token_empty = true;
    } else if (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_') {
      token_empty = false;
    } else {
      return false;
    }
  }
  return !token_empty;
}

bool IsAccountId(absl::string_view account) {
  if (!absl::ConsumePrefix(&account, kAccountIdPrefix) || account.empty() ||
      account.size() > kMaxAccountIdSuffixLength) {
    return false;
  }
  for (char c : account) {
    if (!absl::ascii_isalnum(c)) return false;
  }
  return true;
}

}  // namespace sidestream
