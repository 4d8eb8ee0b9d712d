// JetStreamEventLog: layout, threads and failure behaviour.
//
// Stream: one JetStream stream (file storage, limits retention, discard old,
// MaxAge = retention, MaxBytes = max_bytes, Duplicates = min(dedup window,
// retention)) taking "<prefix>.>". Nothing is ever deleted from it except by
// the limits, which remove from the front, so its sequences are dense from
// FirstSeq to LastSeq: the stream sequence is Event.sequence.
//
// Message: subject "<prefix>.<live|test>.<acct_...|_platform>.<evt_...>.
//   <type tokens>", so consumers can filter on the server by mode, account
//   and type ("<prefix>.live.*.*.invoice.>"), and Get(id) is a last-message
//   lookup on "<prefix>.*.*.<id>.>" (the id comes before the type because a
//   type has a variable number of tokens and only the last token may be
//   '>'). Every token taken from input has the strict Stripe form
//   (server/common/stripe_ids.h): no '.', '*', '>' or whitespace can reach a
//   subject. Headers: Nats-Msg-Id (the dedup key), Sidestream-Type,
//   Sidestream-Account (absent for platform events), Sidestream-Live (1/0),
//   Sidestream-Received (receive time, unix microseconds) and
//   Sidestream-Event-Bytes (the length of the serialized Event at the start
//   of the payload; the raw JSON follows it).
//
// Epoch: the stream's creation time (identical on every replica and every
// instance) and a hash of its name, as 32 hex characters. A stream deleted
// and recreated gets a new epoch, so old cursors are refused; an instance
// that notices the change (its periodic refresh) turns unwritable.
//
// Threads:
//   - Append runs on the caller's thread and publishes asynchronously; the
//     client library's PubAck thread completes the callback. Appends from one
//     thread reach the stream in the order they were made (one connection).
//     Appends that fail before reaching NATS complete on `completer_`.
//   - the ordered consumer's delivery thread feeds the listener;
//   - `refresher_` refreshes the stream state (first sequence, bytes) every
//     refresh_interval and decides when the log is writable again.
// Reads (ReadAfter, Get, CursorForTime) are JetStream API requests made on
// the calling thread (a reader thread of the server).
//
// Failures: while the connection is down Append fails at once with
// UNAVAILABLE (the client would otherwise buffer the message and the PubAck
// would arrive only after the timeout); a PubAck that does not arrive within
// `timeout` (no stream leader, lost quorum) fails it with UNAVAILABLE. Such
// an event may still be stored later; Stripe's retry then gets the duplicate
// PubAck and a 200. `writable` is false from the first failure until a
// refresh succeeds with the connection up.
#include "server/log/jetstream_event_log.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include <nats/nats.h>

#include "server/common/logging.h"
#include "server/common/stripe_ids.h"
#include "server/common/thread_name.h"
#include "server/common/work_queue.h"

namespace sidestream {
namespace {

constexpr char kTypeHeader[] = "Sidestream-Type";
constexpr char kAccountHeader[] = "Sidestream-Account";
constexpr char kLiveHeader[] = "Sidestream-Live";
constexpr char kReceivedHeader[] = "Sidestream-Received";
constexpr char kEventBytesHeader[] = "Sidestream-Event-Bytes";
constexpr char kMsgIdHeader[] = "Nats-Msg-Id";
constexpr char kPlatformToken[] = "_platform";

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }
int64_t Nanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

std::string NatsError(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  std::string text = natsStatus_GetText(s);
  if (detail != nullptr && *detail != '\0' && text != detail) absl::StrAppend(&text, ": ", detail);
  return text;
}

// A name or subject token that cannot change the subject structure.
bool IsPlainToken(absl::string_view token) {
  if (token.empty()) return false;
  for (char c : token) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsSubjectPrefix(absl::string_view prefix) {
  for (absl::string_view token : absl::StrSplit(prefix, '.')) {
    if (!IsPlainToken(token)) return false;
  }
  return true;
}

uint64_t Fnv1a64(absl::string_view text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string HeaderOr(natsMsg* msg, const char* key, const char* fallback) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, key, &value) != NATS_OK || value == nullptr) return fallback;
  return value;
}

// Builds a record from a stored message. DATA_LOSS when it is not one of
// ours (a foreign publisher on our subjects, or damage).
absl::StatusOr<EventRecordPtr> ParseRecord(natsMsg* msg, uint64_t sequence, bool include_raw) {
  auto record = std::make_shared<EventRecord>();
  record->sequence = sequence;
  record->id = HeaderOr(msg, kMsgIdHeader, "");
  record->type = HeaderOr(msg, kTypeHeader, "");
  record->account = HeaderOr(msg, kAccountHeader, "");
  record->livemode = HeaderOr(msg, kLiveHeader, "0") == "1";
  int64_t received_us = 0;
  uint64_t event_size = 0;
  const int length = natsMsg_GetDataLength(msg);
  if (record->id.empty() || record->type.empty() ||
      !absl::SimpleAtoi(HeaderOr(msg, kReceivedHeader, ""), &received_us) ||
      !absl::SimpleAtoi(HeaderOr(msg, kEventBytesHeader, ""), &event_size) || length < 0 ||
      event_size > static_cast<uint64_t>(length)) {
    return absl::DataLossError(absl::StrCat("message at stream sequence ", sequence,
                                            " is not a Sidestream event (headers missing or bad)"));
  }
  record->receive_time = absl::FromUnixMicros(received_us);
  const char* data = natsMsg_GetData(msg);
  record->event_bytes.assign(data, event_size);
  if (include_raw) record->raw_json.assign(data + event_size, length - event_size);
  return record;
}

}  // namespace

absl::StatusOr<std::string> JetStreamSubject(absl::string_view prefix, const NewEvent& event) {
  if (!IsStripeId(event.id)) {
    return absl::InvalidArgumentError("event id is not a Stripe id ([A-Za-z0-9_], 1-255)");
  }
  if (!IsEventType(event.type)) {
    return absl::InvalidArgumentError(
        "event type is not dot-separated tokens of [a-z0-9_] (at most 255 characters)");
  }
  if (!event.account.empty() && !IsAccountId(event.account)) {
    return absl::InvalidArgumentError("account is not an account id (acct_ and [A-Za-z0-9])");
  }
  return absl::StrCat(prefix, ".", event.livemode ? "live" : "test", ".",
                      event.account.empty() ? kPlatformToken : event.account, ".", event.id, ".",
                      event.type);
}

class JetStreamEventLog::Impl {
 public:
  explicit Impl(const JetStreamEventLogOptions& options)
      : options_(options), stream_(options.stream), completer_(1, "ss-js-complete") {}
  ~Impl();

  absl::Status Connect();
  absl::Status EnsureStream();
  // Starts following at the head seen by EnsureStream.
  absl::Status FollowFromHead() {
    {
      absl::MutexLock lock(&follow_mu_);
      follow_next_ = last_sequence_.load() + 1;
    }
    return StartFollowing();
  }
  absl::Status StartFollowing();
  // Stops the current follower and waits until its callbacks are over.
  void StopFollowing();
  void StartRefresher() {
    refresher_ = std::thread([this] {
      SetCurrentThreadName("ss-js-refresh");
      RefreshLoop();
    });
  }

  void Append(NewEvent event, AppendCallback done);
  absl::StatusOr<std::vector<EventRecordPtr>> ReadAfter(uint64_t after, const ReadOptions& options);
  absl::StatusOr<EventRecordPtr> Get(absl::string_view id, bool include_raw);
  absl::StatusOr<uint64_t> CursorForTime(absl::Time time);
  LogInfo Info() const;
  void SetListener(AppendListener* listener) { listener_.store(listener); }

 private:
  struct Pending {
    AppendCallback done;
    uint64_t bytes = 0;
  };

  static void OnPubAck(jsCtx* js, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure);
  static void OnFollowed(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void OnFollowDone(void* closure);
  static void OnDisconnected(natsConnection* nc, void* closure);
  static void OnClosed(natsConnection* nc, void* closure);
  static void OnReconnected(natsConnection* nc, void* closure);

  bool Connected() const { return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED; }
  void FailLater(AppendCallback done, absl::Status status);
  void SetUnwritable(const std::string& error);
  // Reads the stream state into the cached Info; false when it failed.
  absl::Status Refresh();
  void RefreshLoop();
  void AdvanceLast(uint64_t sequence);
  jsOptions ApiOptions() const;
  // The message at `sequence`; NOT_FOUND when the stream does not hold it.
  absl::StatusOr<natsMsg*> GetMsg(uint64_t sequence);

  const JetStreamEventLogOptions options_;
  const std::string stream_;

  natsOptions* nats_options_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  // The ordered consumer feeding the listener, replaced by the refresher
  // when it stops making progress (see RefreshLoop).
  absl::Mutex follow_mu_;
  natsSubscription* follow_ ABSL_GUARDED_BY(follow_mu_) = nullptr;
  std::unique_ptr<absl::Notification> follow_done_;
  // Followers stopped so far, with their completion notifications: freed
  // only once the connection is closed (see StopFollowing).
  std::vector<std::pair<natsSubscription*, std::unique_ptr<absl::Notification>>> retired_;
  std::string epoch_;
  int64_t created_ns_ = 0;

  std::atomic<AppendListener*> listener_{nullptr};
  std::atomic<uint64_t> last_sequence_{0};
  std::atomic<uint64_t> commits_{0};
  uint64_t follow_next_ ABSL_GUARDED_BY(follow_mu_) = 1;

  mutable absl::Mutex mu_;
  std::unordered_map<natsMsg*, Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool writable_ ABSL_GUARDED_BY(mu_) = true;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  uint64_t first_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t refreshed_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Bytes acknowledged since the last refresh (payload and headers we sent;
  // the stream adds a little framing, counted at the next refresh).
  uint64_t unrefreshed_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t trimmed_events_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  std::thread refresher_;
  WorkQueue completer_;
  // The connection's closed callback ran: the library delivers it after
  // every other connection callback, so none can reach this object later.
  absl::Notification closed_;
};

JetStreamEventLog::Impl::~Impl() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    stop_ = true;
  }
  if (refresher_.joinable()) refresher_.join();
  if (js_ != nullptr) {
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = Millis(options_.timeout);
    // Waits for the PubAcks in flight; a timeout leaves the rest to fail below.
    (void)js_PublishAsyncComplete(js_, &wait);
  }
  std::unordered_map<natsMsg*, Pending> unfinished;
  {
    absl::MutexLock lock(&mu_);
    unfinished.swap(pending_);
  }
  for (auto& [msg, pending] : unfinished) {
    std::move(pending.done)(
        absl::UnavailableError("the event log closed before NATS acknowledged the event"));
  }
  StopFollowing();
  if (nc_ != nullptr) {
    // Close delivers the disconnected and closed callbacks asynchronously,
    // on the library's thread, with `this` as their closure: wait for the
    // last of them before the members go away (ASan caught a write to a
    // freed Impl here).
    natsConnection_Close(nc_);
    if (!closed_.WaitForNotificationWithTimeout(absl::Seconds(10))) {
      LOG_ERROR("NATS connection did not report closed within 10s");
    }
  }
  for (auto& [sub, done] : retired_) natsSubscription_Destroy(sub);
  retired_.clear();
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
  if (nats_options_ != nullptr) natsOptions_Destroy(nats_options_);
}

jsOptions JetStreamEventLog::Impl::ApiOptions() const {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = Millis(options_.timeout);
  return options;
}

absl::Status JetStreamEventLog::Impl::Connect() {
  natsStatus s = natsOptions_Create(&nats_options_);
  std::vector<const char*> urls;
  for (const std::string& url : options_.servers) urls.push_back(url.c_str());
  if (s == NATS_OK) {
    s = natsOptions_SetServers(nats_options_, urls.data(), static_cast<int>(urls.size()));
  }
  if (s == NATS_OK) s = natsOptions_SetName(nats_options_, options_.connection_name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(nats_options_, Millis(options_.timeout));
  // Reconnects for ever: the log stays unwritable (503) until NATS is back.
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(nats_options_, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(nats_options_, 250);
  if (s == NATS_OK) s = natsOptions_SetPingInterval(nats_options_, 5000);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(nats_options_, &OnDisconnected, this);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(nats_options_, &OnReconnected, this);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(nats_options_, &OnClosed, this);
  if (s == NATS_OK && !options_.creds_file.empty()) {
    s = natsOptions_SetUserCredentialsFromFiles(nats_options_, options_.creds_file.c_str(),
                                                nullptr);
    if (s != NATS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("--nats_creds_file ", options_.creds_file, ": ", NatsError(s)));
    }
  }
  if (s == NATS_OK && !options_.tls_ca_file.empty()) {
    s = natsOptions_SetSecure(nats_options_, true);
    if (s == NATS_OK) {
      s = natsOptions_LoadCATrustedCertificates(nats_options_, options_.tls_ca_file.c_str());
    }
    if (s != NATS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("--nats_tls_ca_file ", options_.tls_ca_file, ": ", NatsError(s)));
    }
  }
  if (s == NATS_OK && !options_.tls_cert_file.empty()) {
    s = natsOptions_SetSecure(nats_options_, true);
    if (s == NATS_OK) {
      s = natsOptions_LoadCertificatesChain(nats_options_, options_.tls_cert_file.c_str(),
                                            options_.tls_key_file.c_str());
    }
    if (s != NATS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("--nats_tls_cert_file/--nats_tls_key_file: ", NatsError(s)));
    }
  }
  if (s != NATS_OK) return absl::InternalError(absl::StrCat("NATS options: ", NatsError(s)));

  s = natsConnection_Connect(&nc_, nats_options_);
  if (s != NATS_OK) {
    nc_ = nullptr;
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to NATS at ", absl::StrJoin(options_.servers, ","), ": ", NatsError(s)));
  }
  jsOptions js_options = ApiOptions();
  // The limit is ours (max_pending_appends, checked before publishing); the
  // library's is above it so that a publish never stalls the caller.
  js_options.PublishAsync.MaxPending = static_cast<int64_t>(options_.max_pending_appends) + 64;
  js_options.PublishAsync.AckHandler = &OnPubAck;
  js_options.PublishAsync.AckHandlerClosure = this;
  s = natsConnection_JetStream(&js_, nc_, &js_options);
  if (s != NATS_OK) return absl::InternalError(absl::StrCat("JetStream context: ", NatsError(s)));
  return absl::OkStatus();
}

absl::Status JetStreamEventLog::Impl::EnsureStream() {
  const std::string subjects = absl::StrCat(options_.subject_prefix, ".>");
  const char* subject_list[] = {subjects.c_str()};
  const absl::Duration dedup = std::min(options_.dedup_window, options_.retention);
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = stream_.c_str();
  config.Description = "Stripe events stored by Sidestream";
  config.Subjects = subject_list;
  config.SubjectsLen = 1;
  config.Retention = js_LimitsPolicy;
  config.Discard = js_DiscardOld;
  config.Storage = js_FileStorage;
  config.Replicas = options_.replicas;
  config.MaxAge = Nanos(options_.retention);
  config.MaxBytes = options_.max_bytes == 0 ? -1 : static_cast<int64_t>(options_.max_bytes);
  config.Duplicates = Nanos(dedup);
  // Messages are never deleted one by one: that keeps the sequences dense.
  config.DenyDelete = true;
  jsOptions api = ApiOptions();

  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, stream_.c_str(), &api, &code);
  if (s == NATS_NOT_FOUND) {
    s = js_AddStream(&info, js_, &config, &api, &code);
    if (s == NATS_OK) {
      LOG_INFO("created JetStream stream ", stream_, " (subjects ", subjects, ", replicas ",
               options_.replicas, ", max age ", absl::FormatDuration(options_.retention),
               ", duplicate window ", absl::FormatDuration(dedup), ")");
    } else {
      // Another instance may have created it at the same moment.
      s = js_GetStreamInfo(&info, js_, stream_.c_str(), &api, &code);
    }
  }
  if (s != NATS_OK) {
    return absl::UnavailableError(absl::StrCat("cannot create or read JetStream stream ", stream_,
                                               ": ", NatsError(s), " (error code ", code, ")"));
  }
  std::vector<std::string> differences;
  const jsStreamConfig& have = *info->Config;
  auto differ = [&](absl::string_view what, const std::string& got, const std::string& want) {
    if (got != want) differences.push_back(absl::StrCat(what, " is ", got, ", want ", want));
  };
  differ("subjects", have.SubjectsLen == 1 ? have.Subjects[0] : absl::StrCat(have.SubjectsLen),
         subjects);
  differ("replicas", absl::StrCat(have.Replicas), absl::StrCat(config.Replicas));
  differ("storage", have.Storage == js_FileStorage ? "file" : "memory", "file");
  differ("retention policy", have.Retention == js_LimitsPolicy ? "limits" : "not limits", "limits");
  differ("discard policy", have.Discard == js_DiscardOld ? "old" : "new", "old");
  differ("max age", absl::FormatDuration(absl::Nanoseconds(have.MaxAge)),
         absl::FormatDuration(options_.retention));
  differ("max bytes", absl::StrCat(std::max<int64_t>(have.MaxBytes, 0)),
         absl::StrCat(options_.max_bytes));
  differ("duplicate window", absl::FormatDuration(absl::Nanoseconds(have.Duplicates)),
         absl::FormatDuration(dedup));
  created_ns_ = info->Created;
  {
    absl::MutexLock lock(&mu_);
    const jsStreamState& state = info->State;
    first_sequence_ = state.Msgs == 0 ? state.LastSeq + 1 : state.FirstSeq;
    refreshed_bytes_ = state.Bytes;
    last_sequence_.store(state.LastSeq);
  }
  jsStreamInfo_Destroy(info);
  if (!differences.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "JetStream stream ", stream_,
        " exists with another configuration: ", absl::StrJoin(differences, "; "),
        ". Every instance must use the same settings; change the flags or edit the stream "
        "(docs/distributed.md)"));
  }
  epoch_ = absl::StrFormat("%016x%016x", static_cast<uint64_t>(created_ns_), Fnv1a64(stream_));
  return absl::OkStatus();
}

void JetStreamEventLog::Impl::StopFollowing() {
  natsSubscription* old;
  {
    absl::MutexLock lock(&follow_mu_);
    old = follow_;
    follow_ = nullptr;
  }
  if (old == nullptr) return;
  if (natsSubscription_Unsubscribe(old) == NATS_OK) {
    // The completion callback runs after the last message callback.
    (void)follow_done_->WaitForNotificationWithTimeout(options_.timeout);
  }
  // Not destroyed yet: in the libnats Debian 12 ships (3.4.1) the reader
  // thread looks a subscription up, drops the connection lock and then
  // locks the subscription, so a message arriving while another thread
  // unsubscribes and destroys it locks freed memory (nats.c issue #637,
  // fixed upstream in February 2023 by pull request #638, after 3.5.0).
  // A sanitized run crashed exactly so while a NATS node was being killed
  // and the watchdog replaced this follower. Keeping our reference until
  // the connection is closed keeps the subscription alive for any such
  // late message.
  retired_.emplace_back(old, std::move(follow_done_));
}

absl::Status JetStreamEventLog::Impl::StartFollowing() {
  absl::MutexLock lock(&follow_mu_);
  const std::string subjects = absl::StrCat(options_.subject_prefix, ".>");
  jsOptions api = ApiOptions();
  jsSubOptions sub_options;
  jsSubOptions_Init(&sub_options);
  sub_options.Stream = stream_.c_str();
  sub_options.Ordered = true;
  sub_options.Config.DeliverPolicy = js_DeliverByStartSequence;
  sub_options.Config.OptStartSeq = follow_next_;
  follow_done_ = std::make_unique<absl::Notification>();
  // Missed heartbeats make the ordered consumer recreate itself at the next
  // sequence it expects; a short interval bounds how long a lost consumer
  // (its server died) delays live delivery.
  sub_options.Config.Heartbeat = Nanos(absl::Seconds(1));
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s =
      js_Subscribe(&follow_, js_, subjects.c_str(), &OnFollowed, this, &api, &sub_options, &code);
  if (s != NATS_OK) {
    follow_ = nullptr;
    return absl::UnavailableError(absl::StrCat("cannot follow JetStream stream ", stream_, ": ",
                                               NatsError(s), " (error code ", code, ")"));
  }
  // Bounded memory: at most this much waits in the client for the
  // listener; beyond it the ordered consumer notices the gap and restarts
  // from the next sequence it needs.
  (void)natsSubscription_SetPendingLimits(follow_, 8192, 64 << 20);
  (void)natsSubscription_SetOnCompleteCB(follow_, &OnFollowDone, follow_done_.get());
  return absl::OkStatus();
}

void JetStreamEventLog::Impl::OnFollowDone(void* closure) {
  static_cast<absl::Notification*>(closure)->Notify();
}

void JetStreamEventLog::Impl::OnFollowed(natsConnection*, natsSubscription* sub, natsMsg* msg,
                                         void* closure) {
  Impl* self = static_cast<Impl*>(closure);
  absl::MutexLock lock(&self->follow_mu_);
  if (sub != self->follow_) {  // a replaced follower's last messages
    natsMsg_Destroy(msg);
    return;
  }
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
    natsMsg_Destroy(msg);
    return;
  }
  const uint64_t sequence = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  if (sequence < self->follow_next_) {  // redelivered after a consumer reset
    natsMsg_Destroy(msg);
    return;
  }
  if (sequence > self->follow_next_) {
    LOG_WARNING("JetStream follower skipped sequences ", self->follow_next_, " to ", sequence - 1,
                " (removed by retention before they were read)");
  }
  self->follow_next_ = sequence + 1;
  absl::StatusOr<EventRecordPtr> record = ParseRecord(msg, sequence, /*include_raw=*/true);
  natsMsg_Destroy(msg);
  self->AdvanceLast(sequence);
  if (!record.ok()) {
    LOG_ERROR("JetStream follower: ", record.status().message());
    return;
  }
  if (AppendListener* listener = self->listener_.load()) {
    const EventRecordPtr records[] = {*std::move(record)};
    listener->OnAppended(records);
  }
}

void JetStreamEventLog::Impl::OnDisconnected(natsConnection*, void* closure) {
  Impl* self = static_cast<Impl*>(closure);
  {
    absl::MutexLock lock(&self->mu_);
    if (self->closing_) return;  // our own Close, not an outage
  }
  self->SetUnwritable("lost the connection to NATS; reconnecting");
}

void JetStreamEventLog::Impl::OnClosed(natsConnection*, void* closure) {
  static_cast<Impl*>(closure)->closed_.Notify();
}

void JetStreamEventLog::Impl::OnReconnected(natsConnection*, void*) {
  // Writable again only after the next refresh reads the stream.
  LOG_INFO("reconnected to NATS");
}

void JetStreamEventLog::Impl::SetUnwritable(const std::string& error) {
  absl::MutexLock lock(&mu_);
  if (writable_) LOG_ERROR("event log is not writable: ", error);
  writable_ = false;
  last_error_ = error;
}

void JetStreamEventLog::Impl::AdvanceLast(uint64_t sequence) {
  uint64_t seen = last_sequence_.load();
  while (sequence > seen && !last_sequence_.compare_exchange_weak(seen, sequence)) {
  }
}

void JetStreamEventLog::Impl::FailLater(AppendCallback done, absl::Status status) {
  completer_.Submit([done = std::move(done), status = std::move(status)]() mutable {
    std::move(done)(std::move(status));
  });
}

void JetStreamEventLog::Impl::Append(NewEvent event, AppendCallback done) {
  absl::StatusOr<std::string> subject = JetStreamSubject(options_.subject_prefix, event);
  if (!subject.ok()) return FailLater(std::move(done), subject.status());
  std::string payload = std::move(event.event_bytes);
  const size_t event_size = payload.size();
  payload.append(event.raw_json);
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject->c_str(), nullptr, payload.data(),
                                static_cast<int>(payload.size()));
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, kTypeHeader, event.type.c_str());
  if (s == NATS_OK && !event.account.empty()) {
    s = natsMsgHeader_Set(msg, kAccountHeader, event.account.c_str());
  }
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, kLiveHeader, event.livemode ? "1" : "0");
  if (s == NATS_OK) {
    s = natsMsgHeader_Set(msg, kReceivedHeader,
                          absl::StrCat(absl::ToUnixMicros(event.receive_time)).c_str());
  }
  if (s == NATS_OK) {
    s = natsMsgHeader_Set(msg, kEventBytesHeader, absl::StrCat(event_size).c_str());
  }
  if (s != NATS_OK) {
    natsMsg_Destroy(msg);
    return FailLater(std::move(done),
                     absl::InternalError(absl::StrCat("NATS message: ", NatsError(s))));
  }
  {
    absl::MutexLock lock(&mu_);
    absl::Status refused;
    if (closing_) {
      refused = absl::UnavailableError("the event log is shutting down");
    } else if (!Connected()) {
      refused = absl::UnavailableError("not connected to NATS");
    } else if (pending_.size() >= options_.max_pending_appends) {
      refused = absl::UnavailableError(absl::StrCat(
          options_.max_pending_appends, " appends are already waiting for NATS to acknowledge"));
    }
    if (!refused.ok()) {
      natsMsg_Destroy(msg);
      if (!closing_) {
        // Could not store: unwritable until a refresh finds NATS working.
        if (writable_) LOG_ERROR("event log is not writable: ", refused.message());
        writable_ = false;
        last_error_ = std::string(refused.message());
      }
      return FailLater(std::move(done), std::move(refused));
    }
    pending_.emplace(msg, Pending{std::move(done), payload.size() + subject->size()});
  }
  jsPubOptions publish;
  jsPubOptions_Init(&publish);
  publish.MsgId = event.id.c_str();
  publish.MaxWait = Millis(options_.timeout);
  natsMsg* owned = msg;
  s = js_PublishMsgAsync(js_, &owned, &publish);
  if (s != NATS_OK && owned != nullptr) {
    // The library did not take the message: no PubAck will come for it.
    Pending pending;
    {
      absl::MutexLock lock(&mu_);
      auto it = pending_.find(msg);
      if (it == pending_.end()) return;  // completed after all
      pending = std::move(it->second);
      pending_.erase(it);
    }
    natsMsg_Destroy(msg);
    const std::string error = absl::StrCat("publishing to NATS failed: ", NatsError(s));
    SetUnwritable(error);
    FailLater(std::move(pending.done), absl::UnavailableError(error));
  }
}

void JetStreamEventLog::Impl::OnPubAck(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                                       void* closure) {
  Impl* self = static_cast<Impl*>(closure);
  Pending pending;
  bool found = false;
  {
    absl::MutexLock lock(&self->mu_);
    auto it = self->pending_.find(msg);
    if (it != self->pending_.end()) {
      pending = std::move(it->second);
      self->pending_.erase(it);
      found = true;
      if (ack != nullptr && !ack->Duplicate) self->unrefreshed_bytes_ += pending.bytes;
    }
  }
  natsMsg_Destroy(msg);
  if (!found) return;
  if (ack != nullptr) {
    self->AdvanceLast(ack->Sequence);
    self->commits_.fetch_add(1);
    AppendResult result;
    result.sequence = ack->Sequence;
    result.duplicate = ack->Duplicate;
    std::move(pending.done)(result);
    return;
  }
  std::string reason = "no PubAck";
  if (error != nullptr) {
    reason = error->ErrText != nullptr && *error->ErrText != '\0'
                 ? std::string(error->ErrText)
                 : std::string(natsStatus_GetText(error->Err));
  }
  const std::string message = absl::StrCat("NATS did not acknowledge the event: ", reason);
  self->SetUnwritable(message);
  std::move(pending.done)(absl::UnavailableError(message));
}

absl::Status JetStreamEventLog::Impl::Refresh() {
  if (!Connected()) return absl::UnavailableError("not connected to NATS");
  jsOptions api = ApiOptions();
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, stream_.c_str(), &api, &code);
  if (s != NATS_OK) {
    return absl::UnavailableError(absl::StrCat("cannot read JetStream stream ", stream_, ": ",
                                               NatsError(s), " (error code ", code, ")"));
  }
  const int64_t created = info->Created;
  const jsStreamState state = info->State;
  jsStreamInfo_Destroy(info);
  if (created != created_ns_) {
    return absl::FailedPreconditionError(
        absl::StrCat("JetStream stream ", stream_,
                     " was deleted and created again (new epoch); restart this instance"));
  }
  AdvanceLast(state.LastSeq);
  absl::MutexLock lock(&mu_);
  const uint64_t first = state.Msgs == 0 ? state.LastSeq + 1 : state.FirstSeq;
  if (first > first_sequence_) {
    trimmed_events_ += first - first_sequence_;
    first_sequence_ = first;
  }
  refreshed_bytes_ = state.Bytes;
  unrefreshed_bytes_ = 0;
  return absl::OkStatus();
}

void JetStreamEventLog::Impl::RefreshLoop() {
  uint64_t watched_next = 0;
  int stalled_refreshes = 0;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // A periodic refresh, not synchronisation: wakes early only to stop.
      mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.refresh_interval);
      if (stop_) return;
    }
    absl::Status refreshed = Refresh();
    if (!refreshed.ok()) {
      SetUnwritable(std::string(refreshed.message()));
      continue;
    }
    // Follower watchdog: the stream has events the follower has not
    // delivered, and it made no progress for 3 refreshes (its consumer was
    // on a server that died and the client did not recreate it): start a
    // new ordered consumer at the next sequence the listener needs.
    uint64_t next;
    {
      absl::MutexLock lock(&follow_mu_);
      next = follow_next_;
    }
    if (last_sequence_.load() >= next && next == watched_next) {
      if (++stalled_refreshes >= 3) {
        LOG_WARNING("JetStream follower stalled at sequence ", next, "; restarting it");
        StopFollowing();
        if (absl::Status s = StartFollowing(); !s.ok()) SetUnwritable(std::string(s.message()));
        stalled_refreshes = 0;
      }
    } else {
      stalled_refreshes = 0;
    }
    watched_next = next;
    absl::MutexLock lock(&mu_);
    if (!writable_ && !absl::IsFailedPrecondition(refreshed)) {
      writable_ = true;
      last_error_.clear();
      LOG_INFO("event log is writable again (JetStream stream ", stream_, " reachable)");
    }
  }
}

absl::StatusOr<natsMsg*> JetStreamEventLog::Impl::GetMsg(uint64_t sequence) {
  jsOptions api = ApiOptions();
  natsMsg* msg = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&msg, js_, stream_.c_str(), sequence, &api, &code);
  if (s == NATS_NOT_FOUND) return absl::NotFoundError(absl::StrCat("no message ", sequence));
  if (s != NATS_OK) {
    return absl::UnavailableError(absl::StrCat("reading sequence ", sequence, " from JetStream: ",
                                               NatsError(s), " (error code ", code, ")"));
  }
  return msg;
}

absl::StatusOr<std::vector<EventRecordPtr>> JetStreamEventLog::Impl::ReadAfter(
    uint64_t after, const ReadOptions& options) {
  if (options.max_events == 0) return absl::InvalidArgumentError("max_events must be >= 1");
  if (!Connected()) return absl::UnavailableError("not connected to NATS");
  std::vector<EventRecordPtr> records;
  size_t bytes = 0;
  uint64_t sequence = after + 1;
  bool refreshed = false;
  while (records.size() < options.max_events && bytes < options.max_bytes) {
    absl::StatusOr<natsMsg*> msg = GetMsg(sequence);
    if (absl::IsNotFound(msg.status())) {
      // Below the head a missing message was trimmed from the front: find
      // the new first sequence once and go on from there (the caller sees
      // the jump and reports the loss).
      if (sequence > last_sequence_.load() || refreshed) break;
      refreshed = true;
      if (absl::Status s = Refresh(); !s.ok()) return s;
      uint64_t first;
      {
        absl::MutexLock lock(&mu_);
        first = first_sequence_;
      }
      if (first <= sequence) break;
      sequence = first;
      continue;
    }
    if (!msg.ok()) {
      if (!records.empty()) break;  // what was read is still good
      return msg.status();
    }
    absl::StatusOr<EventRecordPtr> record = ParseRecord(*msg, sequence, options.include_raw_json);
    natsMsg_Destroy(*msg);
    if (!record.ok()) {
      if (!records.empty()) break;  // the next read reports it
      return record.status();
    }
    bytes += (*record)->StoredBytes();
    records.push_back(*std::move(record));
    ++sequence;
  }
  return records;
}

absl::StatusOr<EventRecordPtr> JetStreamEventLog::Impl::Get(absl::string_view id,
                                                            bool include_raw) {
  // Only a well-formed id reaches the subject; nothing else can be stored.
  if (!IsStripeId(id)) return absl::NotFoundError("no event with this id");
  if (!Connected()) return absl::UnavailableError("not connected to NATS");
  const std::string subject = absl::StrCat(options_.subject_prefix, ".*.*.", id, ".>");
  jsOptions api = ApiOptions();
  natsMsg* msg = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetLastMsg(&msg, js_, stream_.c_str(), subject.c_str(), &api, &code);
  if (s == NATS_NOT_FOUND) return absl::NotFoundError(absl::StrCat("no event ", id));
  if (s != NATS_OK) {
    return absl::UnavailableError(absl::StrCat("looking up ", id, " in JetStream: ", NatsError(s),
                                               " (error code ", code, ")"));
  }
  absl::StatusOr<EventRecordPtr> record = ParseRecord(msg, natsMsg_GetSequence(msg), include_raw);
  natsMsg_Destroy(msg);
  return record;
}

absl::StatusOr<uint64_t> JetStreamEventLog::Impl::CursorForTime(absl::Time time) {
  if (absl::Status s = Refresh(); !s.ok()) return s;
  uint64_t low;
  {
    absl::MutexLock lock(&mu_);
    low = first_sequence_;
  }
  const uint64_t last = last_sequence_.load();
  // Binary search on the stored receive times (log2(n) gets). Receive times
  // follow the sequence closely; with clocks that differ between instances
  // the answer can be off by the skew, never by more.
  uint64_t high = last;
  uint64_t found = last + 1;
  while (low <= high && low <= last) {
    const uint64_t middle = low + (high - low) / 2;
    absl::StatusOr<natsMsg*> msg = GetMsg(middle);
    bool at_or_after = false;
    if (msg.ok()) {
      absl::StatusOr<EventRecordPtr> record = ParseRecord(*msg, middle, false);
      natsMsg_Destroy(*msg);
      if (!record.ok()) return record.status();
      at_or_after = (*record)->receive_time >= time;
    } else if (!absl::IsNotFound(msg.status())) {
      return msg.status();
    }  // trimmed meanwhile: older than anything retained
    if (at_or_after) {
      found = middle;
      if (middle == 0) break;
      high = middle - 1;
    } else {
      low = middle + 1;
    }
  }
  return found - 1;
}

LogInfo JetStreamEventLog::Impl::Info() const {
  LogInfo info;
  info.backend = "jetstream";
  info.epoch = epoch_;
  info.last_sequence = last_sequence_.load();
  info.commits = commits_.load();
  info.committed_appends = info.commits;
  absl::MutexLock lock(&mu_);
  info.first_sequence = std::min(first_sequence_, info.last_sequence + 1);
  info.event_count = info.last_sequence + 1 - info.first_sequence;
  info.event_bytes = refreshed_bytes_ + unrefreshed_bytes_;
  info.writable = writable_;
  info.last_error = last_error_;
  info.trimmed_events = trimmed_events_;
  return info;
}

absl::StatusOr<std::unique_ptr<JetStreamEventLog>> JetStreamEventLog::Open(
    const JetStreamEventLogOptions& options) {
  if (options.servers.empty()) return absl::InvalidArgumentError("no NATS server URL given");
  if (!IsPlainToken(options.stream)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream name \"", options.stream, "\" must be letters, digits, '_' or '-'"));
  }
  if (!IsSubjectPrefix(options.subject_prefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject prefix \"", options.subject_prefix,
                     "\" must be dot-separated tokens of letters, digits, '_' or '-'"));
  }
  if (options.replicas < 1 || options.replicas > 5) {
    return absl::InvalidArgumentError("replicas must be between 1 and 5");
  }
  if (options.retention <= absl::ZeroDuration() || options.dedup_window <= absl::ZeroDuration() ||
      options.timeout <= absl::ZeroDuration() || options.refresh_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "retention, dedup window, timeout and refresh interval must be positive");
  }
  if (options.retention < options.dedup_window && !options.allow_short_retention) {
    return absl::InvalidArgumentError(absl::StrCat(
        "retention ", absl::FormatDuration(options.retention), " is shorter than the dedup window ",
        absl::FormatDuration(options.dedup_window)));
  }
  if (options.max_pending_appends == 0) {
    return absl::InvalidArgumentError("max_pending_appends must be >= 1");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("a NATS client certificate needs its key, and the reverse");
  }
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Connect(); !s.ok()) return s;
  if (absl::Status s = impl->EnsureStream(); !s.ok()) return s;
  if (absl::Status s = impl->FollowFromHead(); !s.ok()) return s;
  impl->StartRefresher();
  return std::unique_ptr<JetStreamEventLog>(new JetStreamEventLog(std::move(impl)));
}

JetStreamEventLog::JetStreamEventLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JetStreamEventLog::~JetStreamEventLog() = default;

void JetStreamEventLog::Append(NewEvent event, AppendCallback done) {
  impl_->Append(std::move(event), std::move(done));
}
absl::StatusOr<std::vector<EventRecordPtr>> JetStreamEventLog::ReadAfter(
    uint64_t after_sequence, const ReadOptions& options) {
  return impl_->ReadAfter(after_sequence, options);
}
absl::StatusOr<EventRecordPtr> JetStreamEventLog::Get(absl::string_view id, bool include_raw_json) {
  return impl_->Get(id, include_raw_json);
}
absl::StatusOr<uint64_t> JetStreamEventLog::CursorForTime(absl::Time time) {
  return impl_->CursorForTime(time);
}
LogInfo JetStreamEventLog::Info() const { return impl_->Info(); }
void JetStreamEventLog::SetListener(AppendListener* listener) { impl_->SetListener(listener); }

}  // namespace sidestream
