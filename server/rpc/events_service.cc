#include "server/rpc/events_service.h"

#include <algorithm>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"

#include "server/rpc/call_auth.h"
#include "server/rpc/status_util.h"
#include "server/rpc/wire.h"

namespace sidestream {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int32_t kDefaultPageSize = 100;
constexpr int32_t kMaxPageSize = 1000;
// Most records one ListEvents call examines, so a sparse filter over a big
// log returns a short page (with a token) instead of scanning everything.
constexpr size_t kMaxScannedPerPage = 20000;

// Ends a stream that failed before it started.
class FailedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FailedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

absl::StatusOr<absl::Time> ToTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < TimeUtil::kTimestampMinSeconds ||
      ts.seconds() > TimeUtil::kTimestampMaxSeconds || ts.nanos() < 0 || ts.nanos() > 999999999) {
    return absl::InvalidArgumentError("start_time is not a valid timestamp");
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Page tokens: "<epoch>:<cursor>", web-safe base64. Opaque to clients.
std::string MakePageToken(absl::string_view epoch, uint64_t cursor) {
  return absl::WebSafeBase64Escape(absl::StrCat(epoch, ":", cursor));
}

absl::Status ParsePageToken(absl::string_view token, std::string* epoch, uint64_t* cursor) {
  std::string decoded;
  std::vector<absl::string_view> parts;
  if (absl::WebSafeBase64Unescape(token, &decoded)) {
    parts = absl::StrSplit(decoded, ':');
  }
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], cursor)) {
    return absl::InvalidArgumentError("page_token is not a token returned by ListEvents");
  }
  *epoch = std::string(parts[0]);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Subscription::Start> ResolveStart(const LogInfo& info, uint64_t hub_head,
                                                 bool has_after_sequence, uint64_t after_sequence,
                                                 const google::protobuf::Timestamp* start_time,
                                                 bool has_position, v1::StartPosition position,
                                                 v1::StartPosition default_position,
                                                 absl::string_view log_epoch) {
  // No epoch: the log is not open yet (its storage was unreachable at
  // start). Cursors cannot be judged; the client retries.
  if (info.epoch.empty()) {
    return absl::UnavailableError(
        absl::StrCat("the event log is not open yet (", info.last_error, "); retry"));
  }
  const uint64_t head = std::max(info.last_sequence, hub_head);
  if (!log_epoch.empty() && log_epoch != info.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the cursor belongs to log epoch ", log_epoch, " but this log's epoch is ", info.epoch,
        " (the data was replaced); start again from position OLDEST or LATEST"));
  }
  Subscription::Start start;
  if (has_after_sequence) {
    if (after_sequence > head) {
      return absl::FailedPreconditionError(
          absl::StrCat("after_sequence ", after_sequence, " is beyond the head (", head,
                       ") of log epoch ", info.epoch, "; the cursor belongs to another log"));
    }
    if (after_sequence + 1 < info.first_sequence) {
      return absl::OutOfRangeError(absl::StrCat(
          "events after sequence ", after_sequence,
          " were removed by retention; the oldest available sequence is ", info.first_sequence,
          " (resume with after_sequence=", info.first_sequence - 1, " to accept the loss)"));
    }
    start.cursor = after_sequence;
    return start;
  }
  if (start_time != nullptr) {
    absl::StatusOr<absl::Time> time = ToTime(*start_time);
    if (!time.ok()) return time.status();
    start.time = *time;
    return start;
  }
  if (!has_position || position == v1::START_POSITION_UNSPECIFIED) position = default_position;
  switch (position) {
    case v1::START_POSITION_LATEST:
      start.cursor = head;
      return start;
    case v1::START_POSITION_OLDEST:
      start.cursor = info.first_sequence - 1;
      return start;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown start position ", static_cast<int>(position)));
  }
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* EventsService::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_buffer) {
  absl::StatusOr<std::shared_ptr<const Token>> token = AuthenticateCall(*authorizer_, *context);
  if (!token.ok()) return new FailedStream(ToGrpcStatus(token.status()));
  v1::SubscribeRequest request;
  if (absl::Status s = ParseBuffer(*request_buffer, &request); !s.ok()) {
    return new FailedStream(ToGrpcStatus(s));
  }
  absl::StatusOr<EventFilter> filter = EventFilter::Create(request.filter());
  if (!filter.ok()) return new FailedStream(ToGrpcStatus(filter.status()));
  if (absl::Status s = (*token)->CheckFilter(request.filter()); !s.ok()) {
    return new FailedStream(ToGrpcStatus(s));
  }
  absl::StatusOr<Subscription::Start> start = ResolveStart(
      env_.log->Info(), env_.hub->head(),
      request.start_case() == v1::SubscribeRequest::kAfterSequence, request.after_sequence(),
      request.has_start_time() ? &request.start_time() : nullptr,
      request.start_case() == v1::SubscribeRequest::kPosition, request.position(),
      v1::START_POSITION_LATEST, request.log_epoch());
  if (!start.ok()) return new FailedStream(ToGrpcStatus(start.status()));

  std::shared_ptr<Subscription> subscription =
      Subscription::Create(env_, context->peer(), std::move(request), *std::move(filter), *start);
  subscription->SetOnDone([registry = registry_](Subscription* s) { registry->Remove(s); });
  registry_->Add(subscription);
  return subscription.get();
}

grpc::ServerUnaryReactor* EventsService::GetEvent(grpc::CallbackServerContext* context,
                                                  const v1::GetEventRequest* request,
                                                  v1::GetEventResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<const Token>> token = AuthenticateCall(*authorizer_, *context);
  if (!token.ok()) {
    reactor->Finish(ToGrpcStatus(token.status()));
    return reactor;
  }
  if (request->id().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "id is required"));
    return reactor;
  }
  env_.readers->Submit([this, reactor, request, response, token = *std::move(token)] {
    absl::StatusOr<EventRecordPtr> record =
        env_.log->Get(request->id(), request->include_raw_json());
    if (!record.ok()) {
      reactor->Finish(ToGrpcStatus(record.status()));
      return;
    }
    // Outside the token's scope reads exactly like an id that is not stored.
    if (!token->Covers((*record)->type, (*record)->account, (*record)->livemode)) {
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   absl::StrCat("no event with id ", request->id(), " is stored")));
      return;
    }
    absl::StatusOr<v1::Event> event = RecordToEvent(**record, request->include_raw_json());
    if (!event.ok()) {
      reactor->Finish(ToGrpcStatus(event.status()));
      return;
    }
    *response->mutable_event() = *std::move(event);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* EventsService::ListEvents(grpc::CallbackServerContext* context,
                                                    const v1::ListEventsRequest* request,
                                                    v1::ListEventsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<std::shared_ptr<const Token>> token = AuthenticateCall(*authorizer_, *context);
    if (!token.ok()) return token.status();
    if (request->page_size() < 0) {
      return absl::InvalidArgumentError("page_size must not be negative");
    }
    if (absl::Status s = EventFilter::Create(request->filter()).status(); !s.ok()) return s;
    return (*token)->CheckFilter(request->filter());
  }();
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  env_.readers->Submit([this, reactor, request, response] {
    reactor->Finish(ToGrpcStatus([&]() -> absl::Status {
      absl::StatusOr<EventFilter> filter = EventFilter::Create(request->filter());
      if (!filter.ok()) return filter.status();
      const LogInfo info = env_.log->Info();
      absl::StatusOr<Subscription::Start> start;
      if (!request->page_token().empty()) {
        std::string epoch;
        uint64_t cursor = 0;
        if (absl::Status s = ParsePageToken(request->page_token(), &epoch, &cursor); !s.ok()) {
          return s;
        }
        start = ResolveStart(info, env_.hub->head(), true, cursor, nullptr, false,
                             v1::START_POSITION_UNSPECIFIED, v1::START_POSITION_OLDEST, epoch);
      } else {
        start = ResolveStart(
            info, env_.hub->head(), request->start_case() == v1::ListEventsRequest::kAfterSequence,
            request->after_sequence(), request->has_start_time() ? &request->start_time() : nullptr,
            request->start_case() == v1::ListEventsRequest::kPosition, request->position(),
            v1::START_POSITION_OLDEST, "");
      }
      if (!start.ok()) return start.status();
      uint64_t cursor = 0;
      if (start->cursor.has_value()) {
        cursor = *start->cursor;
      } else {
        absl::StatusOr<uint64_t> c = env_.log->CursorForTime(*start->time);
        if (!c.ok()) return c.status();
        cursor = *c;
      }

      const int32_t page_size = request->page_size() == 0
                                    ? kDefaultPageSize
                                    : std::min(request->page_size(), kMaxPageSize);
      ReadOptions options;
      options.include_raw_json = request->include_raw_json();
      options.max_events = 512;
      size_t scanned = 0;
      bool more = false;
      while (response->events_size() < page_size) {
        if (scanned >= kMaxScannedPerPage) {
          more = true;
          break;
        }
        absl::StatusOr<std::vector<EventRecordPtr>> records = env_.log->ReadAfter(cursor, options);
        if (!records.ok()) {
          // A damaged event: the events before it make this page, and the
          // next page, which starts at it, reports it (as a stream does).
          if (absl::IsDataLoss(records.status()) && response->events_size() > 0) {
            more = true;
            break;
          }
          return records.status();
        }
        if (records->empty()) break;
        for (const EventRecordPtr& record : *records) {
          ++scanned;
          cursor = record->sequence;
          if (filter->Matches(*record)) {
            absl::StatusOr<v1::Event> event = RecordToEvent(*record, request->include_raw_json());
            if (!event.ok()) return event.status();
            *response->add_events() = *std::move(event);
            if (response->events_size() == page_size) break;
          }
        }
      }
      const uint64_t head = std::max(env_.log->Info().last_sequence, env_.hub->head());
      if (response->events_size() == page_size && cursor < head) more = true;
      if (more) response->set_next_page_token(MakePageToken(info.epoch, cursor));
      response->set_head_sequence(head);
      return absl::OkStatus();
    }()));
  });
  return reactor;
}

}  // namespace sidestream
