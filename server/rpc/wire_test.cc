#include "server/rpc/wire.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>

#include "sidestream/v1/events_service.pb.h"

namespace sidestream {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

// A realistic stored event: what the webhook handler serializes (no
// sequence, no raw_json).
v1::Event SampleEvent() {
  v1::Event event;
  event.set_id("evt_1PqZFfCd1TdX3zBh5fI8jK4l");
  event.set_type("payout.failed");
  event.set_account("acct_1PqYz8Qx7RkB2mLc");
  event.set_livemode(true);
  event.mutable_create_time()->set_seconds(1724929120);
  event.mutable_receive_time()->set_seconds(1724929121);
  event.mutable_receive_time()->set_nanos(250000000);
  event.set_api_version("2024-06-20");
  event.set_pending_webhooks(1);
  event.mutable_request()->set_id("req_abc");
  event.set_kind(v1::EVENT_KIND_SNAPSHOT);
  event.set_object_type("payout");
  event.set_object_id("po_1");
  auto& fields = *event.mutable_data_object()->mutable_fields();
  fields["id"].set_string_value("po_1");
  fields["object"].set_string_value("payout");
  fields["amount"].set_number_value(1100);
  event.set_secret_label("connect-live");
  return event;
}

EventRecordPtr MakeRecord(const v1::Event& event, uint64_t sequence, std::string raw_json) {
  auto record = std::make_shared<EventRecord>();
  record->sequence = sequence;
  record->id = event.id();
  record->type = event.type();
  record->account = event.account();
  record->livemode = event.livemode();
  record->event_bytes = event.SerializeAsString();
  record->raw_json = std::move(raw_json);
  return record;
}

// The buffer's bytes, slices concatenated.
std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_EQ(bytes.size(), buffer.Length());
  return bytes;
}

v1::SubscribeResponse ParseResponse(const grpc::ByteBuffer& buffer) {
  v1::SubscribeResponse response;
  EXPECT_TRUE(response.ParseFromString(Flatten(buffer))) << "not a SubscribeResponse";
  EXPECT_EQ(response.item_case(), v1::SubscribeResponse::kEvent);
  return response;
}

void ExpectEventsEqual(const v1::Event& actual, const v1::Event& expected) {
  std::string diff;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(expected, actual)) << diff;
}

v1::Event WithSequence(v1::Event event, uint64_t sequence, std::string raw_json = "") {
  event.set_sequence(sequence);
  event.set_raw_json(std::move(raw_json));
  return event;
}

constexpr char kRaw[] = R"({"id":"evt_1PqZFfCd1TdX3zBh5fI8jK4l","object":"event"})";

TEST(SubscribeResponseBufferTest, ParsesAsTheEventPlusSequence) {
  const v1::Event event = SampleEvent();
  EventRecordPtr record = MakeRecord(event, 42, kRaw);
  v1::SubscribeResponse response = ParseResponse(SubscribeResponseBuffer(record, false));
  ExpectEventsEqual(response.event(), WithSequence(event, 42));
  EXPECT_TRUE(response.event().raw_json().empty());
}

TEST(SubscribeResponseBufferTest, IncludesRawJsonWhenAsked) {
  const v1::Event event = SampleEvent();
  EventRecordPtr record = MakeRecord(event, 42, kRaw);
  v1::SubscribeResponse response = ParseResponse(SubscribeResponseBuffer(record, true));
  ExpectEventsEqual(response.event(), WithSequence(event, 42, kRaw));
  EXPECT_EQ(response.event().raw_json(), kRaw);
}

TEST(SubscribeResponseBufferTest, AskingForMissingRawJsonSendsNone) {
  // Records read from the log without raw_json have none to send.
  const v1::Event event = SampleEvent();
  EventRecordPtr record = MakeRecord(event, 7, "");
  grpc::ByteBuffer with = SubscribeResponseBuffer(record, true);
  grpc::ByteBuffer without = SubscribeResponseBuffer(record, false);
  EXPECT_EQ(Flatten(with), Flatten(without));
  ExpectEventsEqual(ParseResponse(with).event(), WithSequence(event, 7));
}

TEST(SubscribeResponseBufferTest, RawJsonBytesAreExact) {
  // Not valid UTF-8 and with a NUL: `bytes`, not `string`, so it must survive.
  const std::string raw("{\"a\":\"\xff\xfe\"}\0tail", 15);
  const v1::Event event = SampleEvent();
  v1::SubscribeResponse response =
      ParseResponse(SubscribeResponseBuffer(MakeRecord(event, 3, raw), true));
  EXPECT_EQ(response.event().raw_json(), raw);
}

TEST(SubscribeResponseBufferTest, MatchesProtobufSerializationSize) {
  // The hand-built framing must have the length protobuf itself computes.
  const v1::Event event = SampleEvent();
  for (bool raw : {false, true}) {
    SCOPED_TRACE(raw);
    v1::SubscribeResponse expected;
    *expected.mutable_event() = WithSequence(event, 99, raw ? kRaw : "");
    grpc::ByteBuffer buffer = SubscribeResponseBuffer(MakeRecord(event, 99, kRaw), raw);
    EXPECT_EQ(buffer.Length(), expected.ByteSizeLong());
  }
}

TEST(SubscribeBatchBufferTest, ParsesAsTheSameEventsInOrderWithProtobufsSize) {
  // Events of several sizes (one needs a multi-byte length), with and
  // without raw JSON: each must read back exactly as a single `event` would.
  const v1::Event small = SampleEvent();
  v1::Event large = SampleEvent();
  large.set_id("evt_large");
  (*large.mutable_data_object()->mutable_fields())["memo"].set_string_value(
      std::string(300000, 'm'));
  const std::vector<EventRecordPtr> records = {
      MakeRecord(small, 1, kRaw), MakeRecord(large, 2, std::string(20000, 'r')),
      MakeRecord(small, uint64_t{1} << 40, ""), MakeRecord(small, 5, kRaw)};
  for (bool raw : {false, true}) {
    SCOPED_TRACE(raw);
    v1::SubscribeResponse expected;
    for (const EventRecordPtr& record : records) {
      v1::Event event;
      ASSERT_TRUE(event.ParseFromString(record->event_bytes));
      *expected.mutable_batch()->add_events() =
          WithSequence(event, record->sequence, raw ? record->raw_json : "");
    }
    const grpc::ByteBuffer buffer = SubscribeBatchBuffer(records, raw);
    EXPECT_EQ(buffer.Length(), expected.ByteSizeLong());
    v1::SubscribeResponse response;
    ASSERT_TRUE(response.ParseFromString(Flatten(buffer)));
    ASSERT_EQ(response.item_case(), v1::SubscribeResponse::kBatch);
    ASSERT_EQ(response.batch().events_size(), static_cast<int>(records.size()));
    for (size_t i = 0; i < records.size(); ++i) {
      ExpectEventsEqual(response.batch().events(static_cast<int>(i)),
                        expected.batch().events(static_cast<int>(i)));
      EXPECT_GE(EncodedEventSize(*records[i], raw),
                expected.batch().events(static_cast<int>(i)).ByteSizeLong());
    }
  }
}

TEST(SubscribeResponseBufferTest, LargeSequences) {
  const v1::Event event = SampleEvent();
  for (uint64_t sequence : {uint64_t{1} << 32, (uint64_t{1} << 32) + 1, uint64_t{1} << 56,
                            UINT64_MAX - 1, UINT64_MAX}) {
    SCOPED_TRACE(sequence);
    v1::SubscribeResponse response =
        ParseResponse(SubscribeResponseBuffer(MakeRecord(event, sequence, kRaw), true));
    EXPECT_EQ(response.event().sequence(), sequence);
    ExpectEventsEqual(response.event(), WithSequence(event, sequence, kRaw));
  }
}

TEST(SubscribeResponseBufferTest, SequenceZeroRoundTrips) {
  const v1::Event event = SampleEvent();
  v1::SubscribeResponse response =
      ParseResponse(SubscribeResponseBuffer(MakeRecord(event, 0, ""), false));
  ExpectEventsEqual(response.event(), WithSequence(event, 0));
}

TEST(SubscribeResponseBufferTest, LargeEventBytesNeedMultiByteLengths) {
  // > 16 KiB: the event length varint takes 3 bytes; > 2 MiB: 4 bytes.
  for (size_t size : {size_t{16 << 10} + 1, size_t{200} << 10, size_t{3} << 20}) {
    SCOPED_TRACE(size);
    v1::Event event = SampleEvent();
    (*event.mutable_data_object()->mutable_fields())["description"].set_string_value(
        std::string(size, 'd'));
    const std::string raw = absl::StrCat("{\"pad\":\"", std::string(size, 'p'), "\"}");
    EventRecordPtr record = MakeRecord(event, uint64_t{1} << 40, raw);
    ASSERT_GT(record->event_bytes.size(), size_t{16} << 10);

    v1::SubscribeResponse response = ParseResponse(SubscribeResponseBuffer(record, true));
    ExpectEventsEqual(response.event(), WithSequence(event, uint64_t{1} << 40, raw));
    response = ParseResponse(SubscribeResponseBuffer(record, false));
    ExpectEventsEqual(response.event(), WithSequence(event, uint64_t{1} << 40));
  }
}

TEST(SubscribeResponseBufferTest, EmptyEventBytes) {
  auto record = std::make_shared<EventRecord>();
  record->sequence = 5;
  record->raw_json = kRaw;
  v1::SubscribeResponse response = ParseResponse(SubscribeResponseBuffer(record, false));
  v1::Event expected;
  expected.set_sequence(5);
  ExpectEventsEqual(response.event(), expected);

  response = ParseResponse(SubscribeResponseBuffer(record, true));
  expected.set_raw_json(kRaw);
  ExpectEventsEqual(response.event(), expected);
}

TEST(SubscribeResponseBufferTest, RecordStaysAliveWhileTheBufferExists) {
  const v1::Event event = SampleEvent();
  EventRecordPtr record = MakeRecord(event, 11, kRaw);
  std::weak_ptr<const EventRecord> weak = record;
  auto buffer = std::make_unique<grpc::ByteBuffer>(SubscribeResponseBuffer(record, true));
  record.reset();
  ASSERT_FALSE(weak.expired()) << "the buffer does not hold the record";
  // The bytes are still readable (the record's memory is shared, not copied).
  ExpectEventsEqual(ParseResponse(*buffer).event(), WithSequence(event, 11, kRaw));
  // A copy of the buffer references the same slices.
  auto copy = std::make_unique<grpc::ByteBuffer>(*buffer);
  buffer.reset();
  EXPECT_FALSE(weak.expired());
  ExpectEventsEqual(ParseResponse(*copy).event(), WithSequence(event, 11, kRaw));
  copy.reset();
  EXPECT_TRUE(weak.expired()) << "the buffer leaked its reference to the record";
}

TEST(SubscribeResponseBufferTest, RecordIsReleasedWithoutRawJson) {
  EventRecordPtr record = MakeRecord(SampleEvent(), 11, kRaw);
  std::weak_ptr<const EventRecord> weak = record;
  {
    grpc::ByteBuffer buffer = SubscribeResponseBuffer(record, false);
    record.reset();
    EXPECT_FALSE(weak.expired());
  }
  EXPECT_TRUE(weak.expired());
}

TEST(SubscribeResponseBufferTest, EventBytesAreSharedNotCopied) {
  // Serialize once: the record's bytes go out as they are.
  EventRecordPtr record = MakeRecord(SampleEvent(), 11, kRaw);
  grpc::ByteBuffer buffer = SubscribeResponseBuffer(record, true);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  bool event_shared = false;
  bool raw_shared = false;
  for (const grpc::Slice& s : slices) {
    const char* begin = reinterpret_cast<const char*>(s.begin());
    event_shared |= begin == record->event_bytes.data();
    raw_shared |= begin == record->raw_json.data();
  }
  EXPECT_TRUE(event_shared);
  EXPECT_TRUE(raw_shared);
}

TEST(MessageBufferTest, RoundTrips) {
  v1::SubscribeResponse response;
  response.mutable_checkpoint()->set_head_sequence(uint64_t{1} << 33);
  response.mutable_checkpoint()->set_log_epoch("epoch-1");
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(ParseBuffer(MessageBuffer(response), &parsed).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, response));
}

TEST(ParseBufferTest, ParsesAMultiSliceBuffer) {
  v1::SubscribeRequest request;
  request.mutable_filter()->add_types("account.*");
  request.set_after_sequence(uint64_t{1} << 35);
  request.set_include_raw_json(true);
  const std::string bytes = request.SerializeAsString();
  ASSERT_GT(bytes.size(), 4u);
  grpc::Slice slices[] = {grpc::Slice(bytes.data(), 3), grpc::Slice(bytes.data() + 3, 1),
                          grpc::Slice(bytes.data() + 4, bytes.size() - 4)};
  grpc::ByteBuffer buffer(slices, 3);
  v1::SubscribeRequest parsed;
  ASSERT_TRUE(ParseBuffer(buffer, &parsed).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, request));
}

TEST(ParseBufferTest, EmptyBufferIsTheDefaultMessage) {
  grpc::Slice slice("", 0);
  grpc::ByteBuffer buffer(&slice, 1);
  v1::SubscribeRequest parsed;
  parsed.set_include_raw_json(true);
  ASSERT_TRUE(ParseBuffer(buffer, &parsed).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, v1::SubscribeRequest()));
}

TEST(ParseBufferTest, UninitializedBufferIsInvalidArgument) {
  grpc::ByteBuffer buffer;
  v1::SubscribeRequest parsed;
  EXPECT_EQ(ParseBuffer(buffer, &parsed).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseBufferTest, GarbageIsInvalidArgument) {
  for (const std::string& garbage :
       {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11),  // bad varint
        std::string("\x0a\x10short", 7),                                  // truncated field
        std::string("\x07", 1)}) {                                        // bad wire type
    grpc::Slice slice(garbage);
    grpc::ByteBuffer buffer(&slice, 1);
    v1::SubscribeRequest parsed;
    absl::Status status = ParseBuffer(buffer, &parsed);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("sidestream.v1.SubscribeRequest"));
  }
}

TEST(RecordToEventTest, AddsSequence) {
  const v1::Event event = SampleEvent();
  EventRecordPtr record = MakeRecord(event, uint64_t{1} << 40, kRaw);
  absl::StatusOr<v1::Event> parsed = RecordToEvent(*record, false);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectEventsEqual(*parsed, WithSequence(event, uint64_t{1} << 40));
}

TEST(RecordToEventTest, AddsRawJsonWhenAsked) {
  const v1::Event event = SampleEvent();
  EventRecordPtr record = MakeRecord(event, 8, kRaw);
  absl::StatusOr<v1::Event> parsed = RecordToEvent(*record, true);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectEventsEqual(*parsed, WithSequence(event, 8, kRaw));
}

TEST(RecordToEventTest, RawJsonAskedButNotLoaded) {
  const v1::Event event = SampleEvent();
  absl::StatusOr<v1::Event> parsed = RecordToEvent(*MakeRecord(event, 8, ""), true);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectEventsEqual(*parsed, WithSequence(event, 8));
}

TEST(RecordToEventTest, AgreesWithSubscribeResponseBuffer) {
  const v1::Event event = SampleEvent();
  EventRecordPtr record = MakeRecord(event, 1234567890123, kRaw);
  for (bool raw : {false, true}) {
    SCOPED_TRACE(raw);
    absl::StatusOr<v1::Event> unary = RecordToEvent(*record, raw);
    ASSERT_TRUE(unary.ok()) << unary.status();
    ExpectEventsEqual(ParseResponse(SubscribeResponseBuffer(record, raw)).event(), *unary);
  }
}

TEST(RecordToEventTest, CorruptBytesAreDataLoss) {
  EventRecord record;
  record.sequence = 77;
  record.event_bytes = std::string("\x12\x40truncated", 11);
  absl::StatusOr<v1::Event> parsed = RecordToEvent(record, false);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("77"));
}

}  // namespace
}  // namespace sidestream
