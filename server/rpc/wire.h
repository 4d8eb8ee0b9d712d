// Building gRPC messages from stored records without re-serializing them.
//
// A record keeps its Event serialized once, without `sequence` and
// `raw_json`. Protobuf fields may appear in any order on the wire and a
// message is the concatenation of its fields, so a SubscribeResponse is sent
// as slices: a small header (the `event` field's tag and length, then the
// `sequence` field), the record's bytes (shared, not copied), and, when the
// subscriber asked for it, the `raw_json` field (shared, not copied).
#ifndef SIDESTREAM_SERVER_RPC_WIRE_H_
#define SIDESTREAM_SERVER_RPC_WIRE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include <grpcpp/support/byte_buffer.h>

#include "server/log/event_record.h"
#include "sidestream/v1/event.pb.h"

namespace sidestream {

// A SubscribeResponse{event} for `record`, sharing the record's memory.
grpc::ByteBuffer SubscribeResponseBuffer(const EventRecordPtr& record, bool include_raw_json);

// A SubscribeResponse{batch} of `records` (two or more), sharing their memory.
grpc::ByteBuffer SubscribeBatchBuffer(const std::vector<EventRecordPtr>& records,
                                      bool include_raw_json);

// About how many bytes `record` adds to a response (an upper bound on the
// framing), to keep batches under a size.
size_t EncodedEventSize(const EventRecord& record, bool include_raw_json);

// Any message, serialized (for the rare control messages).
grpc::ByteBuffer MessageBuffer(const google::protobuf::Message& message);

// Parses a request buffer into `message`. INVALID_ARGUMENT when it is not a
// valid serialization.
absl::Status ParseBuffer(const grpc::ByteBuffer& buffer, google::protobuf::Message* message);

// The full Event of a record (for unary RPCs): parsed bytes plus sequence and,
// when asked and loaded, raw_json.
absl::StatusOr<v1::Event> RecordToEvent(const EventRecord& record, bool include_raw_json);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_RPC_WIRE_H_
