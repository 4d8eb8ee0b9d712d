#include "client/sample_events.h"

#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "server/decode/event_decoder.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::IsSupersetOf;

constexpr char kAccount[] = "acct_1PqYz8Qx7RkB2mLc";
constexpr char kThinType[] = "v1.billing.meter.error_report_triggered";

// data.object.object (or related_object.type) for each hand-written type.
const std::map<std::string, std::string>& ObjectTypes() {
  static const auto* const kTypes = new std::map<std::string, std::string>{
      {"account.application.deauthorized", "application"},
      {"account.external_account.updated", "bank_account"},
      {"account.updated", "account"},
      {"balance.available", "balance"},
      {"payment_intent.succeeded", "payment_intent"},
      {"payout.failed", "payout"},
      {"person.updated", "person"},
      {"customer.created", "customer"},
      {"invoice.paid", "invoice"},
      {"charge.succeeded", "charge"},
      {"checkout.session.completed", "checkout.session"},
      {kThinType, "billing.meter"},
  };
  return *kTypes;
}

v1::Event Decode(const std::string& body) {
  v1::Event event;
  std::optional<Rejection> rejection = DecodeStripeEvent(body, &event);
  EXPECT_FALSE(rejection.has_value()) << rejection->detail << "\n" << body;
  return event;
}

std::string MustBuild(const SampleEventOptions& options) {
  absl::StatusOr<std::string> body = BuildSampleEvent(options);
  EXPECT_TRUE(body.ok()) << body.status();
  return body.value_or("");
}

bool IsAlnum(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

TEST(SampleEventsTest, ListsTheConnectAndCommonTypes) {
  const std::vector<std::string>& types = SampleEventTypes();
  EXPECT_THAT(types,
              IsSupersetOf({"account.application.deauthorized", "account.external_account.updated",
                            "account.updated", "balance.available", "payment_intent.succeeded",
                            "payout.failed", "person.updated", "customer.created", "invoice.paid",
                            "charge.succeeded", "checkout.session.completed", kThinType}));
  EXPECT_EQ(std::set<std::string>(types.begin(), types.end()).size(), types.size());
  for (const std::string& type : types) EXPECT_TRUE(ObjectTypes().count(type)) << type;
}

TEST(SampleEventsTest, EveryTypeDecodesLiveAndTestPlatformAndConnect) {
  for (const std::string& type : SampleEventTypes()) {
    for (bool livemode : {false, true}) {
      for (const char* account : {"", kAccount}) {
        SCOPED_TRACE(absl::StrCat(type, " livemode=", livemode, " account=", account));
        SampleEventOptions options;
        options.type = type;
        options.livemode = livemode;
        options.account = account;
        v1::Event event = Decode(MustBuild(options));
        const bool thin = type == kThinType;
        EXPECT_EQ(event.kind(), thin ? v1::EVENT_KIND_THIN : v1::EVENT_KIND_SNAPSHOT);
        EXPECT_EQ(event.type(), type);
        EXPECT_EQ(event.account(), account);
        EXPECT_EQ(event.livemode(), livemode);
        EXPECT_EQ(event.object_type(), ObjectTypes().at(type));
        EXPECT_EQ(event.object_id().empty(), type == "balance.available");
        EXPECT_GT(event.create_time().seconds(), 0);
        if (thin) {
          EXPECT_EQ(event.context(), account);
          EXPECT_EQ(event.related_object().url(),
                    absl::StrCat("/v1/billing/meters/", event.related_object().id()));
          EXPECT_TRUE(event.has_request());
        } else {
          EXPECT_EQ(event.api_version(), "2024-06-20");
          EXPECT_EQ(event.pending_webhooks(), 1);
          EXPECT_EQ(event.has_previous_attributes(), absl::EndsWith(type, ".updated"));
          // Every resource records its own mode.
          const auto& fields = event.data_object().fields();
          if (type != "account.application.deauthorized" && type != "account.updated" &&
              type != "account.external_account.updated" && type != "person.updated") {
            ASSERT_TRUE(fields.contains("livemode"));
            EXPECT_EQ(fields.at("livemode").bool_value(), livemode);
          }
        }
      }
    }
  }
}

TEST(SampleEventsTest, ConnectObjectsNameTheConnectedAccount) {
  SampleEventOptions options;
  options.account = kAccount;
  options.type = "account.updated";
  EXPECT_EQ(Decode(MustBuild(options)).object_id(), kAccount);
  options.type = "person.updated";
  EXPECT_EQ(Decode(MustBuild(options)).data_object().fields().at("account").string_value(),
            kAccount);
  options.type = "account.external_account.updated";
  EXPECT_EQ(Decode(MustBuild(options)).data_object().fields().at("account").string_value(),
            kAccount);
}

TEST(SampleEventsTest, PayoutFailedCarriesTheFailure) {
  SampleEventOptions options;
  options.type = "payout.failed";
  v1::Event event = Decode(MustBuild(options));
  const auto& fields = event.data_object().fields();
  EXPECT_EQ(fields.at("status").string_value(), "failed");
  EXPECT_EQ(fields.at("failure_code").string_value(), "account_closed");
  EXPECT_FALSE(fields.at("failure_message").string_value().empty());
  EXPECT_TRUE(absl::StartsWith(event.object_id(), "po_"));
  // Automatic payouts are not caused by an API request.
  EXPECT_FALSE(event.has_request());
}

TEST(SampleEventsTest, BalanceHasAvailableAndPendingButNoId) {
  SampleEventOptions options;
  options.type = "balance.available";
  v1::Event event = Decode(MustBuild(options));
  const auto& fields = event.data_object().fields();
  EXPECT_FALSE(fields.contains("id"));
  EXPECT_GT(fields.at("available").list_value().values_size(), 0);
  EXPECT_GT(fields.at("pending").list_value().values_size(), 0);
}

TEST(SampleEventsTest, ApiRequestEventsCarryARequest) {
  SampleEventOptions options;
  options.type = "payment_intent.succeeded";
  v1::Event event = Decode(MustBuild(options));
  ASSERT_TRUE(event.has_request());
  EXPECT_TRUE(absl::StartsWith(event.request().id(), "req_"));
  EXPECT_EQ(event.request().idempotency_key().size(), 36u);
}

TEST(SampleEventsTest, GivenIdAndCreatedAreUsed) {
  SampleEventOptions options;
  options.type = "payout.failed";
  options.id = "evt_1PqZFfCd1TdX3zBh5fI8jK4l";
  options.created = 1724929120;
  v1::Event event = Decode(MustBuild(options));
  EXPECT_EQ(event.id(), options.id);
  EXPECT_EQ(event.create_time().seconds(), 1724929120);

  options.type = kThinType;
  options.id = "evt_test_65R9Ijk8ZJ6ZKcfsl4o16RQ1k9DNSQo0VRYKLpA6eZMh";
  std::string body = MustBuild(options);
  EXPECT_THAT(body, HasSubstr(R"("created":"2024-08-29T10:58:40.000Z")"));
  event = Decode(body);
  EXPECT_EQ(event.id(), options.id);
  EXPECT_EQ(event.create_time().seconds(), 1724929120);
}

TEST(SampleEventsTest, ZeroCreatedMeansNow) {
  SampleEventOptions options;
  options.type = "customer.created";
  const int64_t before = absl::ToUnixSeconds(absl::Now());
  v1::Event event = Decode(MustBuild(options));
  const int64_t after = absl::ToUnixSeconds(absl::Now());
  EXPECT_GE(event.create_time().seconds(), before);
  EXPECT_LE(event.create_time().seconds(), after);
}

TEST(SampleEventsTest, RandomIdsAreStripeShapedAndDistinct) {
  SampleEventOptions options;
  options.type = "charge.succeeded";
  std::set<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    v1::Event event = Decode(MustBuild(options));
    ASSERT_TRUE(absl::StartsWith(event.id(), "evt_"));
    EXPECT_EQ(event.id().size(), 4u + 24u);
    EXPECT_TRUE(IsAlnum(event.id().substr(4))) << event.id();
    ids.insert(event.id());
  }
  EXPECT_EQ(ids.size(), 20u);
}

TEST(SampleEventsTest, AccountOnlyOnConnectEvents) {
  SampleEventOptions options;
  options.type = "customer.created";
  EXPECT_THAT(MustBuild(options), ::testing::Not(HasSubstr(R"("account":)")));
  options.account = kAccount;
  EXPECT_THAT(MustBuild(options), HasSubstr(absl::StrCat(R"("account":")", kAccount, "\"")));
}

TEST(SampleEventsTest, UnknownWellFormedTypeGetsAGenericObject) {
  SampleEventOptions options;
  options.type = "subscription_schedule.canceled";
  options.account = kAccount;
  v1::Event event = Decode(MustBuild(options));
  EXPECT_EQ(event.type(), "subscription_schedule.canceled");
  EXPECT_EQ(event.object_type(), "subscription_schedule");
  EXPECT_TRUE(absl::StartsWith(event.object_id(), "subscription_schedule_"));
  options.type = "ping";
  EXPECT_EQ(Decode(MustBuild(options)).object_type(), "ping");
}

TEST(SampleEventsTest, MalformedInputIsInvalidArgument) {
  for (const char* type : {"", "Payout.failed", "payout..failed", "payout.", "payout failed",
                           "payout.*", "payout.\"failed"}) {
    SampleEventOptions options;
    options.type = type;
    EXPECT_EQ(BuildSampleEvent(options).status().code(), absl::StatusCode::kInvalidArgument)
        << type;
  }
  for (const char* account : {"acct_", "acct_1-2", "acc_1", "acct_1\""}) {
    SampleEventOptions options;
    options.type = "payout.failed";
    options.account = account;
    EXPECT_EQ(BuildSampleEvent(options).status().code(), absl::StatusCode::kInvalidArgument)
        << account;
  }
  SampleEventOptions options;
  options.type = "payout.failed";
  options.id = "evt 1";
  EXPECT_EQ(BuildSampleEvent(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.id = "";
  options.created = -5;
  EXPECT_EQ(BuildSampleEvent(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SampleEventsTest, PaddingAddsThatManyBytesOfMetadata) {
  for (const char* type : {"payout.failed", "balance.available", "account.application.deauthorized",
                           "payment_intent.succeeded"}) {
    SampleEventOptions options;
    options.type = type;
    options.padding_bytes = 10000;
    v1::Event event = Decode(MustBuild(options));
    const auto& metadata = event.data_object().fields().at("metadata").struct_value().fields();
    ASSERT_TRUE(metadata.contains("sidestream_padding")) << type;
    EXPECT_EQ(metadata.at("sidestream_padding").string_value().size(), 10000u) << type;
  }
  SampleEventOptions options;
  options.type = "payment_intent.succeeded";
  options.padding_bytes = 5;
  v1::Event event = Decode(MustBuild(options));
  // Padding joins the object's own metadata.
  EXPECT_EQ(event.data_object()
                .fields()
                .at("metadata")
                .struct_value()
                .fields()
                .at("order_id")
                .string_value(),
            "1042");
}

TEST(SampleEventsTest, StringsAreJsonEscaped) {
  SampleEventOptions options;
  options.type = "payout.failed";
  options.api_version = "2024-06-20\"\\\n\t\x01ü";
  EXPECT_EQ(Decode(MustBuild(options)).api_version(), options.api_version);
  options.api_version = "";
  v1::Event event = Decode(MustBuild(options));
  EXPECT_EQ(event.api_version(), "");
  EXPECT_THAT(MustBuild(options), HasSubstr(R"("api_version":null)"));
}

}  // namespace
}  // namespace sidestream
