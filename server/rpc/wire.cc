#include "server/rpc/wire.h"

#include <vector>

#include "absl/container/inlined_vector.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include <grpcpp/support/slice.h>

namespace sidestream {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

// The slices of one message: up to 4 for an event, inline.
using Slices = absl::InlinedVector<grpc::Slice, 4>;

constexpr int kResponseEventField = 1;  // SubscribeResponse.event
constexpr int kResponseBatchField = 4;  // SubscribeResponse.batch
constexpr int kBatchEventsField = 1;    // EventBatch.events
constexpr int kEventSequenceField = 1;  // Event.sequence
constexpr int kEventRawJsonField = 19;  // Event.raw_json

// Appends a varint to `out`, returning the new end.
uint8_t* PutVarint(uint64_t value, uint8_t* out) {
  return CodedOutputStream::WriteVarint64ToArray(value, out);
}

uint8_t* PutTag(int field, WireFormatLite::WireType type, uint8_t* out) {
  return CodedOutputStream::WriteVarint32ToArray(WireFormatLite::MakeTag(field, type), out);
}

// A slice over `bytes` that keeps `record` alive until gRPC is done with it.
grpc::Slice SharedSlice(const EventRecordPtr& record, const std::string& bytes) {
  auto* keep = new EventRecordPtr(record);
  return grpc::Slice(
      const_cast<char*>(bytes.data()), bytes.size(),
      [](void* p) { delete static_cast<EventRecordPtr*>(p); }, keep);
}

// Appends `record` as a length-delimited Event field numbered `field`: a
// small header (tag, length, sequence), the record's bytes and, when asked
// for, the raw_json field, sharing the record's memory. Returns the bytes
// added.
size_t AppendEventField(int field, const EventRecordPtr& record, bool include_raw_json,
                        Slices* slices) {
  const bool with_raw = include_raw_json && !record->raw_json.empty();
  uint8_t raw_header[16];
  uint8_t* raw_end = raw_header;
  if (with_raw) {
    raw_end = PutTag(kEventRawJsonField, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, raw_end);
    raw_end = PutVarint(record->raw_json.size(), raw_end);
  }
  const size_t raw_size =
      with_raw ? static_cast<size_t>(raw_end - raw_header) + record->raw_json.size() : 0;
  uint8_t sequence_field[16];
  uint8_t* seq_end = PutTag(kEventSequenceField, WireFormatLite::WIRETYPE_VARINT, sequence_field);
  seq_end = PutVarint(record->sequence, seq_end);
  const size_t event_size =
      static_cast<size_t>(seq_end - sequence_field) + record->event_bytes.size() + raw_size;
  uint8_t header[48];
  uint8_t* end = PutTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, header);
  end = PutVarint(event_size, end);
  end = std::copy(sequence_field, seq_end, end);
  const size_t header_size = static_cast<size_t>(end - header);
  slices->emplace_back(header, header_size);
  if (!record->event_bytes.empty()) slices->push_back(SharedSlice(record, record->event_bytes));
  if (with_raw) {
    slices->emplace_back(raw_header, static_cast<size_t>(raw_end - raw_header));
    slices->push_back(SharedSlice(record, record->raw_json));
  }
  return header_size + event_size - (seq_end - sequence_field);
}

}  // namespace

grpc::ByteBuffer SubscribeResponseBuffer(const EventRecordPtr& record, bool include_raw_json) {
  Slices slices;  // at most 4: no allocation on the fan-out path
  AppendEventField(kResponseEventField, record, include_raw_json, &slices);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer SubscribeBatchBuffer(const std::vector<EventRecordPtr>& records,
                                      bool include_raw_json) {
  Slices slices;
  slices.reserve(1 + 4 * records.size());
  slices.emplace_back();  // the batch field's header, once its length is known
  size_t batch_size = 0;
  for (const EventRecordPtr& record : records) {
    batch_size += AppendEventField(kBatchEventsField, record, include_raw_json, &slices);
  }
  uint8_t header[16];
  uint8_t* end = PutTag(kResponseBatchField, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, header);
  end = PutVarint(batch_size, end);
  slices.front() = grpc::Slice(header, static_cast<size_t>(end - header));
  return grpc::ByteBuffer(slices.data(), slices.size());
}

size_t EncodedEventSize(const EventRecord& record, bool include_raw_json) {
  return record.event_bytes.size() + (include_raw_json ? record.raw_json.size() : 0) + 32;
}

grpc::ByteBuffer MessageBuffer(const google::protobuf::Message& message) {
  std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

absl::Status ParseBuffer(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return absl::InvalidArgumentError("unreadable request");
  std::string bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (!message->ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request is not a valid ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Event> RecordToEvent(const EventRecord& record, bool include_raw_json) {
  v1::Event event;
  if (!event.ParseFromString(record.event_bytes)) {
    return absl::DataLossError(absl::StrCat("stored event ", record.sequence, " cannot be parsed"));
  }
  event.set_sequence(record.sequence);
  if (include_raw_json) event.set_raw_json(record.raw_json);
  return event;
}

}  // namespace sidestream
