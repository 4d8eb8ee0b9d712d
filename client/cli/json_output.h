// How sidestream-cli prints API messages: protobuf's JSON mapping with the
// proto field names (snake_case, as in the .proto and in Stripe's own JSON),
// and a plain-text table for Admin.GetStats.
#ifndef SIDESTREAM_CLIENT_CLI_JSON_OUTPUT_H_
#define SIDESTREAM_CLIENT_CLI_JSON_OUTPUT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include <google/protobuf/message.h>

#include "sidestream/v1/admin_service.pb.h"

namespace sidestream::cli {

// The message as one line of JSON (no trailing newline), for JSON-lines
// output that tools such as jq read one record at a time. Fields with
// default values are left out, as protobuf's JSON mapping does. INTERNAL
// only for a message that has no JSON form (such as a NaN in a Struct).
absl::StatusOr<std::string> ToJsonLine(const google::protobuf::Message& message);

// The message as indented JSON, ending in a newline.
absl::StatusOr<std::string> ToPrettyJson(const google::protobuf::Message& message);

// A human-readable summary of the server's state. `now` is used for the
// uptime.
std::string FormatStatsTable(const v1::GetStatsResponse& stats, absl::Time now);

// Estimated quantile (0 < q < 1) of a latency histogram, in seconds, by
// linear interpolation inside the bucket where it falls, as Prometheus's
// histogram_quantile does; 0 when empty; the largest finite bound when the
// quantile falls in the +Inf bucket.
double HistogramQuantile(const v1::LatencyHistogram& histogram, double q);

}  // namespace sidestream::cli

#endif  // SIDESTREAM_CLIENT_CLI_JSON_OUTPUT_H_
