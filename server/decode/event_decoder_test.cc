#include "server/decode/event_decoder.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The project root: $SIDESTREAM_SOURCE_DIR, else derived from this file's
// absolute path (server/decode/event_decoder_test.cc below the root).
std::filesystem::path SourceDir() {
  if (const char* dir = std::getenv("SIDESTREAM_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

std::filesystem::path StripeTestdataDir() { return SourceDir() / "tests/testdata/stripe"; }

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string ReadTestdata(absl::string_view name) {
  return ReadFile(StripeTestdataDir() / std::string(name));
}

// A minimal valid snapshot event with some top-level fields replaced, added
// (value) or removed (nullopt). Values are raw JSON.
using FieldChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;

std::string RenderObject(std::vector<std::pair<std::string, std::string>> fields,
                         const FieldChanges& changes) {
  for (const auto& [name, value] : changes) {
    bool found = false;
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      if (it->first != name) continue;
      found = true;
      if (value.has_value()) {
        it->second = *value;
      } else {
        fields.erase(it);
      }
      break;
    }
    if (!found && value.has_value()) fields.emplace_back(name, *value);
  }
  return absl::StrCat(
      "{",
      absl::StrJoin(fields, ",",
                    [](std::string* out, const std::pair<std::string, std::string>& field) {
                      absl::StrAppend(out, "\"", field.first, "\":", field.second);
                    }),
      "}");
}

std::string Snapshot(const FieldChanges& changes = {}) {
  return RenderObject({{"id", R"("evt_1PqZFfCd1TdX3zBh5fI8jK4l")"},
                       {"object", R"("event")"},
                       {"type", R"("payout.failed")"},
                       {"livemode", "false"},
                       {"created", "1724929120"},
                       {"data", R"({"object":{"id":"po_1","object":"payout","amount":1100}})"}},
                      changes);
}

std::string Thin(const FieldChanges& changes = {}) {
  return RenderObject({{"id", R"("evt_test_65R9Ijk8ZJ6ZKcfsl4o16RQ1k9DNSQo0VRYKLpA6eZMh")"},
                       {"object", R"("v2.core.event")"},
                       {"type", R"("v1.billing.meter.error_report_triggered")"},
                       {"livemode", "false"},
                       {"created", R"("2024-09-17T06:20:52.246Z")"}},
                      changes);
}

// A snapshot event whose data.object is `object_json`.
std::string WithDataObject(absl::string_view object_json) {
  return Snapshot({{"data", absl::StrCat(R"({"object":)", object_json, "}")}});
}

v1::Event MustDecode(absl::string_view body) {
  v1::Event event;
  std::optional<Rejection> rejection = DecodeStripeEvent(body, &event);
  EXPECT_FALSE(rejection.has_value()) << rejection->detail;
  return event;
}

Rejection MustReject(absl::string_view body) {
  v1::Event event;
  std::optional<Rejection> rejection = DecodeStripeEvent(body, &event);
  EXPECT_TRUE(rejection.has_value()) << "accepted: " << body.substr(0, 200);
  return rejection.value_or(Rejection{RejectReason::kBadRequest, "(accepted)"});
}

void ExpectInvalidJson(absl::string_view body, absl::string_view detail_part) {
  Rejection rejection = MustReject(body);
  EXPECT_EQ(rejection.reason, RejectReason::kInvalidJson) << rejection.detail;
  EXPECT_THAT(rejection.detail, HasSubstr(std::string(detail_part))) << body.substr(0, 200);
  EXPECT_THAT(rejection.detail, Not(HasSubstr("\n")));
}

// What each testdata file must decode to.
struct Expected {
  const char* file;
  v1::EventKind kind;
  const char* id;
  const char* type;
  const char* account;
  bool livemode;
  const char* object_type;
  const char* object_id;
  int64_t create_seconds;
  int32_t create_nanos;
  const char* api_version;
  bool has_request;
  const char* request_id;
  const char* idempotency_key;
  bool has_previous_attributes;
  int64_t pending_webhooks;
};

// Names the case by its file in test output (gtest would print raw bytes).
void PrintTo(const Expected& expected, std::ostream* os) { *os << expected.file; }

constexpr char kConnectAccount[] = "acct_1PqYz8Qx7RkB2mLc";

const Expected kTestdata[] = {
    {"connect_account_application_deauthorized.json", v1::EVENT_KIND_SNAPSHOT,
     "evt_1PqZ4sQx7RkB2mLc0aD3eF9g", "account.application.deauthorized", kConnectAccount, false,
     "application", "ca_QhYz2WmP4nVbT8rKxLs6GdJe", 1724927410, 0, "2024-06-20", false, "", "",
     false, 1},
    {"connect_account_external_account_updated.json", v1::EVENT_KIND_SNAPSHOT,
     "evt_1PqZ7bHt3NwK8sVd1bE4fG0h", "account.external_account.updated", kConnectAccount, false,
     "bank_account", "ba_1PqZ7aQx7RkB2mLcT5uV6wXy", 1724927577, 0, "2024-06-20", true,
     "req_Rk2bVq8NwL4sTd", "7f1c2a9e-5b3d-4e8f-9a61-0c2d4b6e8f10", true, 2},
    {"connect_account_updated.json", v1::EVENT_KIND_SNAPSHOT, "evt_1PqZ9cLm5PxR7tWe2cF5gH1i",
     "account.updated", kConnectAccount, false, "account", kConnectAccount, 1724927702, 0,
     "2024-06-20", false, "", "", true, 1},
    {"connect_balance_available.json", v1::EVENT_KIND_SNAPSHOT, "evt_1PqZBdNo7RzT9vXf3dG6hI2j",
     "balance.available", kConnectAccount, false, "balance", "", 1724928003, 0, "2024-06-20", false,
     "", "", false, 1},
    {"connect_payment_intent_succeeded_live.json", v1::EVENT_KIND_SNAPSHOT,
     "evt_3PqZDeAb9SbV1xZg4eH7iJ3k", "payment_intent.succeeded", kConnectAccount, true,
     "payment_intent", "pi_3PqZDdQx7RkB2mLc0mN4oP5q", 1724928311, 0, "2024-06-20", true,
     "req_Vn4cWr9OxM5tUe", "c4b1e7d2-93a8-4f60-b5de-2a7c9e1f3b84", false, 3},
    {"connect_payout_failed.json", v1::EVENT_KIND_SNAPSHOT, "evt_1PqZFfCd1TdX3zBh5fI8jK4l",
     "payout.failed", kConnectAccount, false, "payout", "po_1PqZ2bQx7RkB2mLcB1cD2eF3", 1724929120,
     0, "2024-06-20", false, "", "", false, 1},
    {"connect_person_updated.json", v1::EVENT_KIND_SNAPSHOT, "evt_1PqZHgEf3VfZ5bDj6gJ9kL5m",
     "person.updated", kConnectAccount, false, "person", "person_1PqZ0aQx7RkB2mLcQ1rS2tU3",
     1724929388, 0, "2024-06-20", true, "req_Xp6eYt1QzO7vWg", "", true, 1},
    {"platform_customer_created_live.json", v1::EVENT_KIND_SNAPSHOT, "evt_1PqZJhGh5XhB7dFl7hK0lM6n",
     "customer.created", "", true, "customer", "cus_QhZJmC8sRt3vWx", 1724929701, 0, "2024-06-20",
     true, "req_Zr8gAv3SbQ9xYi", "0e5d8c7b-1a2f-4c3e-8d9b-6f4a2e1c0b97", false, 2},
    {"platform_charge_succeeded_test.json", v1::EVENT_KIND_SNAPSHOT, "evt_3PqZLiIj7ZjD9fHn8iL1mN7o",
     "charge.succeeded", "", false, "charge", "ch_3PqZLhK2lM3nO4pQ1aB2cD3e", 1724929945, 0,
     "2024-06-20", true, "req_Bt0iCx5UdS1zAk",
     "stripe-node-retry-3e9a1b7c-6d2f-4e08-a5c4-9b8d7e6f5a43", false, 1},
    {"platform_invoice_paid_request_null.json", v1::EVENT_KIND_SNAPSHOT,
     "evt_1PqZNjKl9BlF1hJp9jM2nO8p", "invoice.paid", "", false, "invoice",
     "in_1PqZNiK2lM3nO4pQaB3cD4eF", 1724930207, 0, "2024-06-20", false, "", "", false, 1},
    {"platform_charge_succeeded_request_string.json", v1::EVENT_KIND_SNAPSHOT,
     "evt_1AbCdEfGhIjKlMnOpQrStUv", "charge.succeeded", "", false, "charge",
     "ch_1AbCdDfGhIjKlMnOwXyZaBc", 1496923423, 0, "2017-05-25", true, "req_AqB7xYzW1vUtSr", "",
     false, 1},
    {"platform_customer_created_api_version_null.json", v1::EVENT_KIND_SNAPSHOT,
     "evt_4aXyZ8bCdEfGhI", "customer.created", "", true, "customer", "cus_4aXyZ7bCdEfGhI",
     1404205200, 0, "", true, "iar_4aXyZ6bCdEfGhI", "", false, 1},
    {"thin_meter_error_report_triggered.json", v1::EVENT_KIND_THIN,
     "evt_test_65R9Ijk8ZJ6ZKcfsl4o16RQ1k9DNSQo0VRYKLpA6eZMh",
     "v1.billing.meter.error_report_triggered", kConnectAccount, false, "billing.meter",
     "mtr_test_61R9IeP2mR1Jx4tKq41PqYz8Qx7RkB2mLc", 1726554052, 246000000, "", true,
     "req_Dv2kEz7WfU3bCm", "5b7d9f1a-3c2e-4a6b-8d0f-1e3c5a7b9d2f", false, 0},
    {"thin_meter_error_report_triggered_platform.json", v1::EVENT_KIND_THIN,
     "evt_65R9KxP3aL7MNdgtm5p27SR2l0EOTRp1WSZLMqB7fANi", "v1.billing.meter.error_report_triggered",
     "", true, "billing.meter", "mtr_61R9KwQ3nS2Ky5uLr52QrZa9Ry8SlC3nMd", 1726657327, 0, "", false,
     "", "", false, 0},
};

class TestdataTest : public ::testing::TestWithParam<Expected> {};

TEST_P(TestdataTest, DecodesToExpectedFields) {
  const Expected& want = GetParam();
  v1::Event event;
  event.set_sequence(42);
  event.set_raw_json("raw");
  event.set_secret_label("connect-test");
  event.mutable_receive_time()->set_seconds(7);
  std::optional<Rejection> rejection = DecodeStripeEvent(ReadTestdata(want.file), &event);
  ASSERT_FALSE(rejection.has_value()) << rejection->detail;

  EXPECT_EQ(event.kind(), want.kind);
  EXPECT_EQ(event.id(), want.id);
  EXPECT_EQ(event.type(), want.type);
  EXPECT_EQ(event.account(), want.account);
  EXPECT_EQ(event.livemode(), want.livemode);
  EXPECT_EQ(event.object_type(), want.object_type);
  EXPECT_EQ(event.object_id(), want.object_id);
  EXPECT_EQ(event.create_time().seconds(), want.create_seconds);
  EXPECT_EQ(event.create_time().nanos(), want.create_nanos);
  EXPECT_EQ(event.api_version(), want.api_version);
  EXPECT_EQ(event.has_request(), want.has_request);
  EXPECT_EQ(event.request().id(), want.request_id);
  EXPECT_EQ(event.request().idempotency_key(), want.idempotency_key);
  EXPECT_EQ(event.has_previous_attributes(), want.has_previous_attributes);
  EXPECT_EQ(event.pending_webhooks(), want.pending_webhooks);
  if (want.kind == v1::EVENT_KIND_SNAPSHOT) {
    EXPECT_EQ(event.data_object().fields().at("object").string_value(), want.object_type);
    EXPECT_FALSE(event.has_related_object());
  } else {
    EXPECT_FALSE(event.has_data_object());
    EXPECT_EQ(event.context(), want.account);
  }
  // Fields the decoder does not own survive.
  EXPECT_EQ(event.sequence(), 42u);
  EXPECT_EQ(event.raw_json(), "raw");
  EXPECT_EQ(event.secret_label(), "connect-test");
  EXPECT_EQ(event.receive_time().seconds(), 7);
}

INSTANTIATE_TEST_SUITE_P(StripeExamples, TestdataTest, ::testing::ValuesIn(kTestdata),
                         [](const ::testing::TestParamInfo<Expected>& info) {
                           std::string name = std::filesystem::path(info.param.file).stem();
                           for (char& c : name) {
                             if (c == '.' || c == '-') c = '_';
                           }
                           return name;
                         });

TEST(EventDecoderTest, EveryTestdataFileIsListedAndDecodes) {
  std::set<std::string> listed;
  for (const Expected& want : kTestdata) listed.insert(want.file);
  std::set<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(StripeTestdataDir())) {
    if (entry.path().extension() != ".json") continue;
    found.insert(entry.path().filename().string());
    MustDecode(ReadFile(entry.path()));
  }
  EXPECT_EQ(found, listed);
}

TEST(EventDecoderTest, CoversEverySevenConnectTypeAndBothModesAndOrigins) {
  std::set<std::string> connect_types;
  bool platform_live = false, platform_test = false, connect_live = false, connect_test = false;
  for (const Expected& want : kTestdata) {
    v1::Event event = MustDecode(ReadTestdata(want.file));
    const bool connect = !event.account().empty();
    if (connect) connect_types.insert(event.type());
    (connect ? (event.livemode() ? connect_live : connect_test)
             : (event.livemode() ? platform_live : platform_test)) = true;
  }
  EXPECT_TRUE(platform_live && platform_test && connect_live && connect_test);
  for (const char* type :
       {"account.application.deauthorized", "account.external_account.updated", "account.updated",
        "balance.available", "payment_intent.succeeded", "payout.failed", "person.updated"}) {
    EXPECT_TRUE(connect_types.count(type)) << type;
  }
}

TEST(EventDecoderTest, PreviousAttributesKeepNestedValues) {
  v1::Event event = MustDecode(ReadTestdata("connect_account_updated.json"));
  const auto& previous = event.previous_attributes().fields();
  ASSERT_TRUE(previous.contains("charges_enabled"));
  EXPECT_TRUE(previous.at("charges_enabled").has_bool_value());
  EXPECT_FALSE(previous.at("charges_enabled").bool_value());
  const auto& requirements = previous.at("requirements").struct_value().fields();
  EXPECT_EQ(requirements.at("disabled_reason").string_value(), "requirements.past_due");
  const auto& currently_due = requirements.at("currently_due").list_value();
  ASSERT_EQ(currently_due.values_size(), 1);
  EXPECT_EQ(currently_due.values(0).string_value(), "individual.verification.document");
  EXPECT_TRUE(event.data_object().fields().at("charges_enabled").bool_value());
}

TEST(EventDecoderTest, BalanceHasNoIdButKeepsItsArrays) {
  v1::Event event = MustDecode(ReadTestdata("connect_balance_available.json"));
  EXPECT_EQ(event.object_id(), "");
  const auto& available = event.data_object().fields().at("available").list_value();
  ASSERT_EQ(available.values_size(), 1);
  EXPECT_EQ(available.values(0).struct_value().fields().at("amount").number_value(), 2217713.0);
}

TEST(EventDecoderTest, ThinEventFields) {
  v1::Event event = MustDecode(ReadTestdata("thin_meter_error_report_triggered.json"));
  EXPECT_EQ(event.kind(), v1::EVENT_KIND_THIN);
  EXPECT_EQ(event.context(), kConnectAccount);
  EXPECT_EQ(event.account(), kConnectAccount);
  EXPECT_EQ(event.related_object().id(), "mtr_test_61R9IeP2mR1Jx4tKq41PqYz8Qx7RkB2mLc");
  EXPECT_EQ(event.related_object().type(), "billing.meter");
  EXPECT_EQ(event.related_object().url(),
            "/v1/billing/meters/mtr_test_61R9IeP2mR1Jx4tKq41PqYz8Qx7RkB2mLc");
  EXPECT_EQ(event.create_time().nanos(), 246000000);
  EXPECT_EQ(event.api_version(), "");
  EXPECT_FALSE(event.has_data_object());
}

TEST(EventDecoderTest, ThinCreatedKeepsNanosAndOffsets) {
  v1::Event event = MustDecode(Thin({{"created", R"("2024-09-17T08:20:52.123456789+02:00")"}}));
  EXPECT_EQ(event.create_time().seconds(), 1726554052);
  EXPECT_EQ(event.create_time().nanos(), 123456789);
  event = MustDecode(Thin({{"created", R"("1969-12-31T23:59:59.5Z")"}}));
  EXPECT_EQ(event.create_time().seconds(), -1);
  EXPECT_EQ(event.create_time().nanos(), 500000000);
}

TEST(EventDecoderTest, ContextOnSnapshotEventIsNotTheAccount) {
  v1::Event event = MustDecode(Snapshot({{"context", R"("acct_1Abc")"}}));
  EXPECT_EQ(event.context(), "acct_1Abc");
  EXPECT_EQ(event.account(), "");
}

TEST(EventDecoderTest, RequestForms) {
  v1::Event event = MustDecode(Snapshot({{"request", "null"}}));
  EXPECT_FALSE(event.has_request());
  event = MustDecode(Snapshot());
  EXPECT_FALSE(event.has_request());
  event = MustDecode(Snapshot({{"request", R"({"id":null,"idempotency_key":null})"}}));
  EXPECT_FALSE(event.has_request());
  event = MustDecode(Snapshot({{"request", R"({"id":"req_1","idempotency_key":null})"}}));
  EXPECT_TRUE(event.has_request());
  EXPECT_EQ(event.request().id(), "req_1");
  EXPECT_EQ(event.request().idempotency_key(), "");
  event = MustDecode(Snapshot({{"request", R"({"id":null,"idempotency_key":"k-1"})"}}));
  EXPECT_EQ(event.request().id(), "");
  EXPECT_EQ(event.request().idempotency_key(), "k-1");
  event = MustDecode(Snapshot({{"request", R"("req_old")"}}));
  EXPECT_EQ(event.request().id(), "req_old");
  event = MustDecode(Thin({{"reason", R"({"type":"request","request":null})"}}));
  EXPECT_FALSE(event.has_request());
}

TEST(EventDecoderTest, NullOptionalFieldsAreEmpty) {
  v1::Event event = MustDecode(Snapshot({{"account", "null"},
                                         {"api_version", "null"},
                                         {"context", "null"},
                                         {"pending_webhooks", "null"},
                                         {"data", R"({"object":{"id":null,"object":null},
                                                      "previous_attributes":null})"}}));
  EXPECT_EQ(event.account(), "");
  EXPECT_EQ(event.api_version(), "");
  EXPECT_EQ(event.context(), "");
  EXPECT_EQ(event.pending_webhooks(), 0);
  EXPECT_EQ(event.object_id(), "");
  EXPECT_EQ(event.object_type(), "");
  EXPECT_FALSE(event.has_previous_attributes());
  event = MustDecode(Thin({{"context", "null"}, {"related_object", "null"}, {"reason", "null"}}));
  EXPECT_EQ(event.account(), "");
  EXPECT_FALSE(event.has_related_object());
}

TEST(EventDecoderTest, ReusedMessageCarriesNothingOver) {
  v1::Event event;
  ASSERT_FALSE(DecodeStripeEvent(ReadTestdata("connect_account_updated.json"), &event).has_value());
  ASSERT_FALSE(
      DecodeStripeEvent(ReadTestdata("thin_meter_error_report_triggered_platform.json"), &event)
          .has_value());
  EXPECT_EQ(event.account(), "");
  EXPECT_EQ(event.api_version(), "");
  EXPECT_FALSE(event.has_data_object());
  EXPECT_FALSE(event.has_previous_attributes());
  EXPECT_FALSE(event.has_request());
  EXPECT_EQ(event.pending_webhooks(), 0);
}

TEST(EventDecoderTest, MissingRequiredSnapshotFields) {
  for (const char* field : {"id", "object", "type", "livemode", "created", "data"}) {
    ExpectInvalidJson(Snapshot({{field, std::nullopt}}), absl::StrCat("\"", field, "\""));
  }
  ExpectInvalidJson(Snapshot({{"data", "{}"}}), "\"data.object\"");
  ExpectInvalidJson(Snapshot({{"data", R"({"previous_attributes":{}})"}}), "\"data.object\"");
}

TEST(EventDecoderTest, MissingRequiredThinFields) {
  for (const char* field : {"id", "object", "type", "livemode", "created"}) {
    ExpectInvalidJson(Thin({{field, std::nullopt}}), absl::StrCat("\"", field, "\""));
  }
  // Thin events carry no data.
  MustDecode(Thin({{"data", std::nullopt}}));
}

TEST(EventDecoderTest, WrongTypesAreRejected) {
  const std::vector<std::pair<FieldChanges, const char*>> cases = {
      {{{"id", "12"}}, "id"},
      {{{"id", "null"}}, "id"},
      {{{"object", "1"}}, "object"},
      {{{"object", "null"}}, "object"},
      {{{"type", "[]"}}, "type"},
      {{{"livemode", R"("true")"}}, "livemode"},
      {{{"livemode", "1"}}, "livemode"},
      {{{"livemode", "null"}}, "livemode"},
      {{{"created", R"("1724929120")"}}, "created"},
      {{{"created", "1724929120.5"}}, "created"},
      {{{"created", "1.7e9"}}, "created"},
      {{{"created", "-62135596801"}}, "created"},
      {{{"created", "253402300800"}}, "created"},
      {{{"created", "18446744073709551615"}}, "created"},
      {{{"account", "12"}}, "account"},
      {{{"api_version", "20240620"}}, "api_version"},
      {{{"pending_webhooks", R"("1")"}}, "pending_webhooks"},
      {{{"pending_webhooks", "1.5"}}, "pending_webhooks"},
      {{{"request", "7"}}, "request"},
      {{{"request", "[]"}}, "request"},
      {{{"request", R"({"id":5})"}}, "request"},
      {{{"context", "true"}}, "context"},
      {{{"data", "[]"}}, "data"},
      {{{"data", R"({"object":"po_1"})"}}, "data.object"},
      {{{"data", R"({"object":null})"}}, "data.object"},
      {{{"data", R"({"object":{},"previous_attributes":[]})"}}, "data.previous_attributes"},
  };
  for (const auto& [changes, field] : cases) {
    ExpectInvalidJson(Snapshot(changes), field);
  }
  const std::vector<std::pair<FieldChanges, const char*>> thin_cases = {
      {{{"created", "1726554052"}}, "created"},
      {{{"created", R"("yesterday")"}}, "created"},
      {{{"created", R"("2024-09-17 06:20:52Z")"}}, "created"},
      {{{"created", R"("2024-09-17T06:20:52")"}}, "created"},
      {{{"context", "5"}}, "context"},
      {{{"related_object", R"("mtr_1")"}}, "related_object"},
      {{{"related_object", R"({"id":1})"}}, "related_object.id"},
      {{{"reason", "[]"}}, "reason"},
      {{{"reason", R"({"request":"req_1"})"}}, "reason.request"},
      {{{"livemode", R"("false")"}}, "livemode"},
  };
  for (const auto& [changes, field] : thin_cases) {
    ExpectInvalidJson(Thin(changes), field);
  }
}

TEST(EventDecoderTest, IdTypeAndAccountMustHaveStripesForm) {
  for (const char* id :
       {R"("")", R"("evt 1")", R"("evt-1")", R"("evt.1")", R"("evt_1*")", R"("evt_é")"}) {
    ExpectInvalidJson(Snapshot({{"id", id}}), "id");
  }
  ExpectInvalidJson(Snapshot({{"id", absl::StrCat("\"", std::string(256, 'a'), "\"")}}), "id");
  MustDecode(Snapshot({{"id", absl::StrCat("\"", std::string(255, 'a'), "\"")}}));

  for (const char* type :
       {R"("")", R"("Payout.failed")", R"("payout..failed")", R"(".payout")", R"("payout.")",
        R"("payout failed")", R"("payout.*")", R"("payout>failed")"}) {
    ExpectInvalidJson(Snapshot({{"type", type}}), "type");
  }
  ExpectInvalidJson(Snapshot({{"type", absl::StrCat("\"a.", std::string(254, 'b'), "\"")}}),
                    "type");
  MustDecode(Snapshot({{"type", R"("payout")"}}));
  MustDecode(Snapshot({{"type", R"("v2.core.event_destination.ping")"}}));

  for (const char* account : {R"("acct_")", R"("acc_1")", R"("acct_1-2")", R"("acct_1.x")",
                              R"("ACCT_1")", R"(" acct_1")"}) {
    ExpectInvalidJson(Snapshot({{"account", account}}), "account");
    ExpectInvalidJson(Thin({{"context", account}}), "context");
  }
  ExpectInvalidJson(Snapshot({{"account", absl::StrCat("\"acct_", std::string(251, 'x'), "\"")}}),
                    "account");
  EXPECT_EQ(
      MustDecode(Snapshot({{"account", absl::StrCat("\"acct_", std::string(250, 'x'), "\"")}}))
          .account()
          .size(),
      255u);
  EXPECT_EQ(MustDecode(Snapshot({{"account", R"("")"}})).account(), "");
}

TEST(EventDecoderTest, NotJsonOrNotAnObject) {
  ExpectInvalidJson("", "empty");
  ExpectInvalidJson("   \n", "JSON");
  ExpectInvalidJson("[]", "not an object");
  ExpectInvalidJson("\"x\"", "not an object");
  ExpectInvalidJson("42", "not an object");
  ExpectInvalidJson("null", "not an object");
  ExpectInvalidJson(R"({"id":"evt_1")", "JSON");
  ExpectInvalidJson(Snapshot() + " {}", "JSON");
  ExpectInvalidJson(R"({"id":'evt_1'})", "JSON");
  ExpectInvalidJson(R"({"id":"evt_1",})", "JSON");
}

TEST(EventDecoderTest, InvalidUtf8IsRejected) {
  for (const char* bad : {"\xff", "\xc3", "\xed\xa0\x80", "\xc0\xaf"}) {
    ExpectInvalidJson(WithDataObject(absl::StrCat(R"({"name":"caf)", bad, R"("})")), "JSON");
  }
  // Outside strings too.
  ExpectInvalidJson(absl::StrCat(Snapshot(), "\xff"), "JSON");
  // An escaped lone surrogate does not produce UTF-8 either.
  ExpectInvalidJson(WithDataObject(R"({"name":"\ud800"})"), "JSON");
}

// `levels` nested arrays around a 1 inside data.object.other: the whole
// document is levels + 3 deep.
std::string NestedArrays(int levels) {
  return WithDataObject(
      absl::StrCat(R"({"other":)", std::string(levels, '['), "1", std::string(levels, ']'), "}"));
}

TEST(EventDecoderTest, NestingLimitIsThirtyTwoLevels) {
  v1::Event event = MustDecode(NestedArrays(kMaxJsonDepth - 3));
  const google::protobuf::Value* value = &event.data_object().fields().at("other");
  int depth = 3;
  while (value->has_list_value()) {
    ++depth;
    value = &value->list_value().values(0);
  }
  EXPECT_EQ(depth, kMaxJsonDepth);
  EXPECT_EQ(value->number_value(), 1.0);
  ExpectInvalidJson(NestedArrays(kMaxJsonDepth - 2), "nesting deeper than 32 levels");
}

TEST(EventDecoderTest, NestingLimitAppliesOutsideDataObject) {
  // Objects nested in an unknown top-level field: the field is depth 2.
  auto nested_objects = [](int levels) {
    std::string json = "1";
    for (int i = 0; i < levels; ++i) json = absl::StrCat(R"({"k":)", json, "}");
    return json;
  };
  MustDecode(Snapshot({{"extra", nested_objects(kMaxJsonDepth - 1)}}));
  ExpectInvalidJson(Snapshot({{"extra", nested_objects(kMaxJsonDepth)}}), "nesting deeper");
  MustDecode(Thin({{"extra", nested_objects(kMaxJsonDepth - 1)}}));
  ExpectInvalidJson(Thin({{"extra", nested_objects(kMaxJsonDepth)}}), "nesting deeper");
  // previous_attributes is depth 3, like data.object.
  MustDecode(Snapshot({{"data", absl::StrCat(R"({"object":{},"previous_attributes":)",
                                             nested_objects(kMaxJsonDepth - 2), "}")}}));
  ExpectInvalidJson(Snapshot({{"data", absl::StrCat(R"({"object":{},"previous_attributes":)",
                                                    nested_objects(kMaxJsonDepth - 1), "}")}}),
                    "nesting deeper");
  // Other members of data are depth 3 as well.
  ExpectInvalidJson(Snapshot({{"data", absl::StrCat(R"({"object":{},"extra":)",
                                                    nested_objects(kMaxJsonDepth - 1), "}")}}),
                    "nesting deeper");
}

TEST(EventDecoderTest, HundredThousandLevelsAreRejectedWithoutCrashing) {
  constexpr int kLevels = 100000;
  ExpectInvalidJson(std::string(kLevels, '['), "JSON");
  ExpectInvalidJson(absl::StrCat(std::string(kLevels, '['), std::string(kLevels, ']')), "");
  ExpectInvalidJson(NestedArrays(kLevels), "nesting deeper");
  std::string objects;
  for (int i = 0; i < kLevels; ++i) objects += R"({"a":)";
  objects += "1";
  objects += std::string(kLevels, '}');
  ExpectInvalidJson(objects, "nesting deeper");
}

TEST(EventDecoderTest, MegabyteObjectWithThousandsOfKeysDecodes) {
  constexpr int kKeys = 8000;
  std::string object = R"({"id":"cus_big","object":"customer","metadata":{)";
  const std::string filler(120, 'v');
  for (int i = 0; i < kKeys; ++i) {
    absl::StrAppend(&object, i == 0 ? "" : ",", "\"key_", i, "\":\"", filler, "\"");
  }
  object += "}}";
  std::string body = WithDataObject(object);
  ASSERT_GT(body.size(), 1u << 20);
  v1::Event event = MustDecode(body);
  const auto& metadata = event.data_object().fields().at("metadata").struct_value().fields();
  EXPECT_EQ(metadata.size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(metadata.at("key_7999").string_value(), filler);
  EXPECT_EQ(event.object_id(), "cus_big");
}

TEST(EventDecoderTest, DuplicateKeysAreRejectedEverywhere) {
  // Top level.
  ExpectInvalidJson(absl::StrCat(R"({"id":"evt_2",)", Snapshot().substr(1)),
                    "duplicate key \"id\"");
  std::string twice = Snapshot();
  twice.insert(1, R"("zzz":1,"zzz":2,)");
  ExpectInvalidJson(twice, "duplicate key \"zzz\"");
  // In data, data.object, nested objects and arrays of objects.
  ExpectInvalidJson(Snapshot({{"data", R"({"object":{},"object":{}})"}}),
                    "duplicate key \"object\"");
  ExpectInvalidJson(WithDataObject(R"({"id":"po_1","id":"po_2"})"), "duplicate key \"id\"");
  ExpectInvalidJson(WithDataObject(R"({"a":{"b":{"c":1,"c":1}}})"), "duplicate key \"c\"");
  ExpectInvalidJson(WithDataObject(R"({"a":[{"x":1},{"y":1,"y":2}]})"), "duplicate key \"y\"");
  ExpectInvalidJson(Snapshot({{"data", R"({"object":{},"previous_attributes":{"s":1,"s":2}})"}}),
                    "duplicate key \"s\"");
  // In fields that are read but not kept as a Struct, and unknown ones.
  ExpectInvalidJson(Snapshot({{"request", R"({"id":"req_1","id":"req_2"})"}}),
                    "duplicate key \"id\"");
  ExpectInvalidJson(Snapshot({{"extra", R"([{"q":1,"q":1}])"}}), "duplicate key \"q\"");
  ExpectInvalidJson(Thin({{"related_object", R"({"id":"mtr_1","type":"a","id":"mtr_2"})"}}),
                    "duplicate key \"id\"");
  ExpectInvalidJson(Thin({{"reason", R"({"request":{"id":"req_1","id":null}})"}}),
                    "duplicate key \"id\"");
  // A large unkept object (hash-set path).
  std::string large = "{";
  for (int i = 0; i < 100; ++i) absl::StrAppend(&large, "\"k", i, "\":1,");
  large += R"("k42":2})";
  ExpectInvalidJson(Snapshot({{"extra", large}}), "duplicate key \"k42\"");
}

TEST(EventDecoderTest, DuplicateKeyDetailIsShortAndOneLine) {
  std::string body =
      WithDataObject(absl::StrCat("{\"", "line1\\nline2", std::string(1000, 'k'),
                                  "\":1,\"line1\\nline2", std::string(1000, 'k'), "\":2}"));
  Rejection rejection = MustReject(body);
  EXPECT_EQ(rejection.reason, RejectReason::kInvalidJson);
  EXPECT_THAT(rejection.detail, HasSubstr("duplicate key"));
  EXPECT_THAT(rejection.detail, Not(HasSubstr("\n")));
  EXPECT_LT(rejection.detail.size(), 120u) << rejection.detail;
  EXPECT_THAT(rejection.detail, Not(HasSubstr(std::string(65, 'k'))));
}

TEST(EventDecoderTest, UnsupportedObject) {
  Rejection rejection = MustReject(Snapshot({{"object", R"("customer")"}}));
  EXPECT_EQ(rejection.reason, RejectReason::kUnsupportedObject);
  EXPECT_THAT(rejection.detail, HasSubstr("\"customer\""));

  rejection = MustReject(Snapshot({{"object", R"("v2.core.event_notification")"}}));
  EXPECT_EQ(rejection.reason, RejectReason::kUnsupportedObject);

  rejection = MustReject(Snapshot({{"object", absl::StrCat("\"", std::string(500, 'x'), "\"")}}));
  EXPECT_EQ(rejection.reason, RejectReason::kUnsupportedObject);
  EXPECT_THAT(rejection.detail, HasSubstr(std::string(64, 'x')));
  EXPECT_THAT(rejection.detail, Not(HasSubstr(std::string(65, 'x'))));

  // Only a string names an object; anything else is bad JSON for an event.
  EXPECT_EQ(MustReject(Snapshot({{"object", R"({"type":"event"})"}})).reason,
            RejectReason::kInvalidJson);
}

TEST(EventDecoderTest, NumbersInDataObjectBecomeDoubles) {
  v1::Event event = MustDecode(WithDataObject(
      R"({"amount":2000,"negative":-1100,"zero":0,"fraction":-0.25,"exponent":1.5e3,)"
      R"("big":9007199254740993,"u64":18446744073709551615,"list":[1,2.5]})"));
  const auto& fields = event.data_object().fields();
  for (const char* name : {"amount", "negative", "zero", "fraction", "exponent", "big", "u64"}) {
    EXPECT_TRUE(fields.at(name).has_number_value()) << name;
  }
  EXPECT_EQ(fields.at("amount").number_value(), 2000.0);
  EXPECT_EQ(fields.at("negative").number_value(), -1100.0);
  EXPECT_EQ(fields.at("zero").number_value(), 0.0);
  EXPECT_EQ(fields.at("fraction").number_value(), -0.25);
  EXPECT_EQ(fields.at("exponent").number_value(), 1500.0);
  EXPECT_EQ(fields.at("big").number_value(), 9007199254740992.0);
  EXPECT_EQ(fields.at("u64").number_value(), 18446744073709551616.0);
  EXPECT_EQ(fields.at("list").list_value().values(1).number_value(), 2.5);

  ExpectInvalidJson(WithDataObject(R"({"huge":123456789012345678901234567890})"), "JSON");
  ExpectInvalidJson(WithDataObject(R"({"huge":1e400})"), "JSON");
}

TEST(EventDecoderTest, OtherScalarsKeepTheirKind) {
  v1::Event event =
      MustDecode(WithDataObject(R"({"t":true,"f":false,"n":null,"s":"","e":{},"a":[]})"));
  const auto& fields = event.data_object().fields();
  EXPECT_TRUE(fields.at("t").bool_value());
  EXPECT_TRUE(fields.at("f").has_bool_value());
  EXPECT_FALSE(fields.at("f").bool_value());
  EXPECT_TRUE(fields.at("n").has_null_value());
  EXPECT_TRUE(fields.at("s").has_string_value());
  EXPECT_TRUE(fields.at("e").has_struct_value());
  EXPECT_EQ(fields.at("e").struct_value().fields_size(), 0);
  EXPECT_TRUE(fields.at("a").has_list_value());
  EXPECT_EQ(fields.at("a").list_value().values_size(), 0);
}

TEST(EventDecoderTest, UnicodeStringsRoundTripExactly) {
  const std::string raw =
      "Zürich – 東京 😀 \xc2\xa0"
      "end";
  v1::Event event = MustDecode(WithDataObject(absl::StrCat(
      R"({"raw":")", raw, R"(",)", R"("escaped":"Z\u00fcrich \u2013 \u6771\u4eac \ud83d\ude00",)",
      R"("control":"a\"b\\c\/d\n\t\u0000e",)", "\"ключ\":\"значение\"}")));
  const auto& fields = event.data_object().fields();
  EXPECT_EQ(fields.at("raw").string_value(), raw);
  EXPECT_EQ(fields.at("escaped").string_value(), "Zürich – 東京 😀");
  EXPECT_EQ(fields.at("control").string_value(), std::string("a\"b\\c/d\n\t\0e", 11));
  EXPECT_EQ(fields.at("ключ").string_value(), "значение");
  // The Struct is valid protobuf (strings are UTF-8) and survives a round trip.
  std::string wire;
  ASSERT_TRUE(event.SerializeToString(&wire));
  v1::Event parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.data_object().fields().at("raw").string_value(), raw);
}

TEST(EventDecoderTest, ConcurrentDecodesAreIndependent) {
  std::vector<std::string> bodies;
  std::vector<v1::Event> expected;
  for (const Expected& want : kTestdata) {
    bodies.push_back(ReadTestdata(want.file));
    expected.push_back(MustDecode(bodies.back()));
  }
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        for (size_t i = 0; i < bodies.size(); ++i) {
          size_t pick = (i + t) % bodies.size();
          v1::Event event;
          if (DecodeStripeEvent(bodies[pick], &event).has_value() ||
              !google::protobuf::util::MessageDifferencer::Equals(event, expected[pick])) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace sidestream
