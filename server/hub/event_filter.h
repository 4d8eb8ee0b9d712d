// EventFilter: the compiled form of sidestream.v1.EventFilter, evaluated on
// the server for every event a subscription considers.
#ifndef SIDESTREAM_SERVER_HUB_EVENT_FILTER_H_
#define SIDESTREAM_SERVER_HUB_EVENT_FILTER_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#include "server/log/event_record.h"
#include "sidestream/v1/event.pb.h"

namespace sidestream {

// Immutable after Create; safe to share between threads.
class EventFilter {
 public:
  // Most entries accepted in `types` or `accounts`.
  static constexpr int kMaxEntries = 1000;

  // Validates and compiles `proto`. INVALID_ARGUMENT (naming the offending
  // entry) for: a type that is not "*", an exact type (dot-separated tokens
  // of [a-z0-9_]) or a prefix ending in ".*"; an account that is not
  // "acct_" + [A-Za-z0-9]; `accounts` with ORIGIN_PLATFORM (platform events
  // have no account: nothing could match); an unknown enum value; more than
  // kMaxEntries entries.
  static absl::StatusOr<EventFilter> Create(const v1::EventFilter& proto);

  // A filter that matches every event.
  EventFilter() = default;

  bool Matches(absl::string_view type, absl::string_view account, bool livemode) const;
  bool Matches(const EventRecord& record) const {
    return Matches(record.type, record.account, record.livemode);
  }

 private:
  bool all_types_ = true;
  absl::flat_hash_set<std::string> exact_types_;
  std::vector<std::string> type_prefixes_;  // each ends with '.'
  absl::flat_hash_set<std::string> accounts_;
  v1::Origin origin_ = v1::ORIGIN_ANY;
  v1::Livemode livemode_ = v1::LIVEMODE_ANY;
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_HUB_EVENT_FILTER_H_
