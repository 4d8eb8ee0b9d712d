// EventRecord: one stored event as the log, the hub and the subscriptions
// pass it around. Immutable once built and shared by pointer, so one record
// serves every subscriber (serialize once).
#ifndef SIDESTREAM_SERVER_LOG_EVENT_RECORD_H_
#define SIDESTREAM_SERVER_LOG_EVENT_RECORD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace sidestream {

// An event ready to be appended: verified, decoded and serialized, but with
// no sequence yet.
struct NewEvent {
  std::string id;       // Stripe event id; the dedup key.
  std::string type;     // Stripe event type.
  std::string account;  // connected account, empty for platform events.
  bool livemode = false;
  absl::Time receive_time;
  // A serialized sidestream.v1.Event with `sequence` and `raw_json` unset.
  std::string event_bytes;
  // The request body exactly as Stripe sent it.
  std::string raw_json;
};

// A stored event. The filter fields are copied out of `event_bytes` so that
// matching never parses protobuf.
struct EventRecord {
  uint64_t sequence = 0;
  std::string id;
  std::string type;
  std::string account;
  bool livemode = false;
  absl::Time receive_time;
  // A serialized sidestream.v1.Event with `sequence` and `raw_json` unset;
  // the sender adds both on the wire (protobuf fields may come in any order).
  std::string event_bytes;
  // The body as Stripe sent it. May be empty when read from the log without
  // asking for it (ReadOptions::include_raw_json = false).
  std::string raw_json;

  // Bytes this record accounts for in the log's size retention.
  uint64_t StoredBytes() const { return event_bytes.size() + raw_json.size(); }
};

using EventRecordPtr = std::shared_ptr<const EventRecord>;

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_LOG_EVENT_RECORD_H_
