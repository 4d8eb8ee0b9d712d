// absl::Time to google.protobuf.Timestamp, for the times Sidestream stamps
// (receive_time, checkpoints, stats).
#ifndef SIDESTREAM_SERVER_COMMON_TIME_PROTO_H_
#define SIDESTREAM_SERVER_COMMON_TIME_PROTO_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/time_util.h"

namespace sidestream {

inline google::protobuf::Timestamp TimestampProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_COMMON_TIME_PROTO_H_
