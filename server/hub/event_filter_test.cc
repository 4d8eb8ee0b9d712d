#include "server/hub/event_filter.h"

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;

constexpr char kAccount[] = "acct_1PqYz8Qx7RkB2mLc";
constexpr char kOtherAccount[] = "acct_9ZzZz8Qx7RkB2mLc";

v1::EventFilter Proto(std::initializer_list<const char*> types,
                      std::initializer_list<const char*> accounts = {},
                      v1::Origin origin = v1::ORIGIN_UNSPECIFIED,
                      v1::Livemode livemode = v1::LIVEMODE_UNSPECIFIED) {
  v1::EventFilter proto;
  for (const char* type : types) proto.add_types(type);
  for (const char* account : accounts) proto.add_accounts(account);
  proto.set_origin(origin);
  proto.set_livemode(livemode);
  return proto;
}

EventFilter MustCreate(const v1::EventFilter& proto) {
  absl::StatusOr<EventFilter> filter = EventFilter::Create(proto);
  EXPECT_TRUE(filter.ok()) << filter.status() << " for " << proto.ShortDebugString();
  return filter.ok() ? *std::move(filter) : EventFilter();
}

// The message of the INVALID_ARGUMENT that Create must return for `proto`.
std::string MustRejectMessage(const v1::EventFilter& proto) {
  absl::StatusOr<EventFilter> filter = EventFilter::Create(proto);
  EXPECT_FALSE(filter.ok()) << "accepted " << proto.ShortDebugString();
  if (filter.ok()) return "";
  EXPECT_EQ(filter.status().code(), absl::StatusCode::kInvalidArgument) << filter.status();
  return std::string(filter.status().message());
}

TEST(EventFilterTest, DefaultFilterMatchesEverything) {
  EventFilter filter;
  EXPECT_TRUE(filter.Matches("payout.failed", "", false));
  EXPECT_TRUE(filter.Matches("account.updated", kAccount, true));
  EXPECT_TRUE(filter.Matches("v1.billing.meter.error_report_triggered", "", true));
}

TEST(EventFilterTest, EmptyProtoMatchesEverything) {
  EventFilter filter = MustCreate(v1::EventFilter());
  for (bool livemode : {false, true}) {
    EXPECT_TRUE(filter.Matches("payout.failed", "", livemode));
    EXPECT_TRUE(filter.Matches("payout.failed", kAccount, livemode));
    EXPECT_TRUE(filter.Matches("balance.available", kOtherAccount, livemode));
  }
}

TEST(EventFilterTest, ExactTypeMatchesOnlyThatType) {
  EventFilter filter = MustCreate(Proto({"payout.failed"}));
  EXPECT_TRUE(filter.Matches("payout.failed", "", false));
  EXPECT_TRUE(filter.Matches("payout.failed", kAccount, true));
  EXPECT_FALSE(filter.Matches("payout.paid", "", false));
  EXPECT_FALSE(filter.Matches("payout.failed.x", "", false));
  EXPECT_FALSE(filter.Matches("payout", "", false));
  EXPECT_FALSE(filter.Matches("xpayout.failed", "", false));
  EXPECT_FALSE(filter.Matches("", "", false));
}

TEST(EventFilterTest, PrefixMatchesDescendantsOnly) {
  EventFilter filter = MustCreate(Proto({"account.*"}));
  EXPECT_TRUE(filter.Matches("account.updated", kAccount, false));
  EXPECT_TRUE(filter.Matches("account.external_account.updated", kAccount, false));
  EXPECT_TRUE(filter.Matches("account.application.deauthorized", "", true));
  EXPECT_FALSE(filter.Matches("account", kAccount, false));
  EXPECT_FALSE(filter.Matches("accounts.x", kAccount, false));
  EXPECT_FALSE(filter.Matches("accountx.updated", kAccount, false));
  EXPECT_FALSE(filter.Matches("payout.failed", kAccount, false));
  EXPECT_FALSE(filter.Matches("v1.account.updated", kAccount, false));
}

TEST(EventFilterTest, MultiTokenPrefix) {
  EventFilter filter = MustCreate(Proto({"v1.billing.*"}));
  EXPECT_TRUE(filter.Matches("v1.billing.meter.error_report_triggered", "", false));
  EXPECT_FALSE(filter.Matches("v1.billing", "", false));
  EXPECT_FALSE(filter.Matches("v1.billingx.meter", "", false));
  EXPECT_FALSE(filter.Matches("v2.billing.meter", "", false));
}

TEST(EventFilterTest, StarMatchesEveryType) {
  EventFilter filter = MustCreate(Proto({"*"}));
  EXPECT_TRUE(filter.Matches("payout.failed", "", false));
  EXPECT_TRUE(filter.Matches("account.updated", kAccount, true));
}

TEST(EventFilterTest, StarAmongOtherTypesMatchesEveryType) {
  EventFilter filter = MustCreate(Proto({"payout.failed", "*", "account.*"}));
  EXPECT_TRUE(filter.Matches("charge.succeeded", "", false));
  EXPECT_TRUE(filter.Matches("payout.failed", "", false));
}

TEST(EventFilterTest, TypeListIsOr) {
  EventFilter filter = MustCreate(Proto({"payout.failed", "account.*", "person.updated"}));
  EXPECT_TRUE(filter.Matches("payout.failed", "", false));
  EXPECT_TRUE(filter.Matches("account.updated", "", false));
  EXPECT_TRUE(filter.Matches("person.updated", "", false));
  EXPECT_FALSE(filter.Matches("payout.paid", "", false));
  EXPECT_FALSE(filter.Matches("balance.available", "", false));
}

TEST(EventFilterTest, AccountListIsOrAndExcludesPlatformEvents) {
  EventFilter filter = MustCreate(Proto({}, {kAccount, kOtherAccount}));
  EXPECT_TRUE(filter.Matches("payout.failed", kAccount, false));
  EXPECT_TRUE(filter.Matches("payout.failed", kOtherAccount, true));
  EXPECT_FALSE(filter.Matches("payout.failed", "acct_unlisted", false));
  EXPECT_FALSE(filter.Matches("payout.failed", "", false));
}

TEST(EventFilterTest, AccountMatchIsExact) {
  EventFilter filter = MustCreate(Proto({}, {kAccount}));
  EXPECT_FALSE(filter.Matches("payout.failed", absl::StrCat(kAccount, "x"), false));
  EXPECT_FALSE(filter.Matches("payout.failed", "acct_1PqYz8Qx7RkB2mL", false));
}

TEST(EventFilterTest, Origin) {
  struct Case {
    v1::Origin origin;
    bool platform;
    bool connect;
  };
  for (const Case& c :
       {Case{v1::ORIGIN_UNSPECIFIED, true, true}, Case{v1::ORIGIN_ANY, true, true},
        Case{v1::ORIGIN_PLATFORM, true, false}, Case{v1::ORIGIN_CONNECT, false, true}}) {
    SCOPED_TRACE(v1::Origin_Name(c.origin));
    EventFilter filter = MustCreate(Proto({}, {}, c.origin));
    for (bool livemode : {false, true}) {
      EXPECT_EQ(filter.Matches("payout.failed", "", livemode), c.platform);
      EXPECT_EQ(filter.Matches("payout.failed", kAccount, livemode), c.connect);
    }
  }
}

TEST(EventFilterTest, Livemode) {
  struct Case {
    v1::Livemode livemode;
    bool live;
    bool test;
  };
  for (const Case& c :
       {Case{v1::LIVEMODE_UNSPECIFIED, true, true}, Case{v1::LIVEMODE_ANY, true, true},
        Case{v1::LIVEMODE_LIVE, true, false}, Case{v1::LIVEMODE_TEST, false, true}}) {
    SCOPED_TRACE(v1::Livemode_Name(c.livemode));
    EventFilter filter = MustCreate(Proto({}, {}, v1::ORIGIN_UNSPECIFIED, c.livemode));
    for (const char* account : {"", kAccount}) {
      EXPECT_EQ(filter.Matches("payout.failed", account, true), c.live);
      EXPECT_EQ(filter.Matches("payout.failed", account, false), c.test);
    }
  }
}

TEST(EventFilterTest, ConditionsAreAnded) {
  EventFilter filter = MustCreate(
      Proto({"account.*", "payout.failed"}, {kAccount}, v1::ORIGIN_CONNECT, v1::LIVEMODE_LIVE));
  EXPECT_TRUE(filter.Matches("account.updated", kAccount, true));
  EXPECT_TRUE(filter.Matches("payout.failed", kAccount, true));
  // Each condition alone failing rejects the event.
  EXPECT_FALSE(filter.Matches("payout.paid", kAccount, true));
  EXPECT_FALSE(filter.Matches("account.updated", kOtherAccount, true));
  EXPECT_FALSE(filter.Matches("account.updated", "", true));
  EXPECT_FALSE(filter.Matches("account.updated", kAccount, false));
}

TEST(EventFilterTest, PlatformOnlyTestModeTypes) {
  EventFilter filter = MustCreate(Proto({"charge.*"}, {}, v1::ORIGIN_PLATFORM, v1::LIVEMODE_TEST));
  EXPECT_TRUE(filter.Matches("charge.succeeded", "", false));
  EXPECT_FALSE(filter.Matches("charge.succeeded", "", true));
  EXPECT_FALSE(filter.Matches("charge.succeeded", kAccount, false));
  EXPECT_FALSE(filter.Matches("customer.created", "", false));
}

TEST(EventFilterTest, MatchesRecordUsesItsFields) {
  EventFilter filter =
      MustCreate(Proto({"payout.failed"}, {kAccount}, v1::ORIGIN_ANY, v1::LIVEMODE_LIVE));
  EventRecord record;
  record.type = "payout.failed";
  record.account = kAccount;
  record.livemode = true;
  EXPECT_TRUE(filter.Matches(record));
  record.livemode = false;
  EXPECT_FALSE(filter.Matches(record));
  record.livemode = true;
  record.account = kOtherAccount;
  EXPECT_FALSE(filter.Matches(record));
  record.account = kAccount;
  record.type = "payout.paid";
  EXPECT_FALSE(filter.Matches(record));
}

TEST(EventFilterTest, AcceptsValidTypeForms) {
  for (const char* type : {"payout.failed", "v1.billing.meter.error_report_triggered",
                           "account.external_account.updated", "account.*", "v1.*", "*",
                           "issuing_authorization.request", "a1.b2"}) {
    SCOPED_TRACE(type);
    EXPECT_TRUE(EventFilter::Create(Proto({type})).ok());
  }
}

TEST(EventFilterTest, RejectsBadTypeForms) {
  for (const char* type : {"", "Payout.failed", "payout.", ".x", "payout.*.x", "a*", ".*", "*.*",
                           "payout..failed", "payout.fa-iled", "payout.failed ", " payout.failed",
                           "payout.*x", "**", "payout.failed*", "payout*"}) {
    SCOPED_TRACE(absl::StrCat("\"", type, "\""));
    std::string message = MustRejectMessage(Proto({type}));
    EXPECT_THAT(message, HasSubstr("filter.types"));
    EXPECT_THAT(message, HasSubstr(absl::StrCat("\"", type, "\"")));
  }
}

TEST(EventFilterTest, OneBadTypeAmongGoodOnesIsRejected) {
  std::string message = MustRejectMessage(Proto({"payout.failed", "*", "Bad.type"}));
  EXPECT_THAT(message, HasSubstr("\"Bad.type\""));
}

TEST(EventFilterTest, AcceptsValidAccounts) {
  EXPECT_TRUE(EventFilter::Create(Proto({}, {kAccount, "acct_1", "acct_ABCxyz019"})).ok());
}

TEST(EventFilterTest, RejectsBadAccounts) {
  for (const char* account : {"", "acct_", "acct", "ACCT_123", "cus_123", "acct_12-3", "acct_12 3",
                              " acct_123", "acct_123 ", "acct_1_2"}) {
    SCOPED_TRACE(absl::StrCat("\"", account, "\""));
    std::string message = MustRejectMessage(Proto({}, {account}));
    EXPECT_THAT(message, HasSubstr("filter.accounts"));
    EXPECT_THAT(message, HasSubstr(absl::StrCat("\"", account, "\"")));
  }
}

TEST(EventFilterTest, RejectsAccountsWithPlatformOrigin) {
  std::string message = MustRejectMessage(Proto({}, {kAccount}, v1::ORIGIN_PLATFORM));
  EXPECT_THAT(message, HasSubstr("ORIGIN_PLATFORM"));
}

TEST(EventFilterTest, AccountsCombineWithOtherOrigins) {
  for (v1::Origin origin : {v1::ORIGIN_UNSPECIFIED, v1::ORIGIN_ANY, v1::ORIGIN_CONNECT}) {
    SCOPED_TRACE(v1::Origin_Name(origin));
    EXPECT_TRUE(EventFilter::Create(Proto({}, {kAccount}, origin)).ok());
  }
}

TEST(EventFilterTest, RejectsUnknownOrigin) {
  v1::EventFilter proto;
  // Proto3 enums are open: a newer client may send a value this server does
  // not know. Built from the wire so the value is what a peer would send.
  ASSERT_TRUE(proto.ParseFromString(std::string("\x18\x07", 2)));  // origin = 7
  ASSERT_EQ(static_cast<int>(proto.origin()), 7);
  EXPECT_THAT(MustRejectMessage(proto), HasSubstr("filter.origin"));
}

TEST(EventFilterTest, RejectsUnknownLivemode) {
  v1::EventFilter proto;
  ASSERT_TRUE(proto.ParseFromString(std::string("\x20\x09", 2)));  // livemode = 9
  ASSERT_EQ(static_cast<int>(proto.livemode()), 9);
  EXPECT_THAT(MustRejectMessage(proto), HasSubstr("filter.livemode"));
}

TEST(EventFilterTest, RejectsNegativeEnumValues) {
  v1::EventFilter proto;
  proto.set_origin(static_cast<v1::Origin>(-1));
  EXPECT_THAT(MustRejectMessage(proto), HasSubstr("filter.origin"));
  proto.Clear();
  proto.set_livemode(static_cast<v1::Livemode>(-1));
  EXPECT_THAT(MustRejectMessage(proto), HasSubstr("filter.livemode"));
}

TEST(EventFilterTest, AcceptsExactlyMaxEntries) {
  v1::EventFilter proto;
  for (int i = 0; i < EventFilter::kMaxEntries; ++i) {
    proto.add_types(absl::StrCat("type", i, ".updated"));
    proto.add_accounts(absl::StrCat("acct_", i));
  }
  absl::StatusOr<EventFilter> filter = EventFilter::Create(proto);
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_TRUE(filter->Matches("type999.updated", "acct_999", false));
  EXPECT_FALSE(filter->Matches("type1000.updated", "acct_999", false));
  EXPECT_FALSE(filter->Matches("type999.updated", "acct_1000", false));
}

TEST(EventFilterTest, RejectsTooManyTypes) {
  v1::EventFilter proto;
  for (int i = 0; i <= EventFilter::kMaxEntries; ++i) {
    proto.add_types(absl::StrCat("type", i, ".updated"));
  }
  EXPECT_THAT(MustRejectMessage(proto), HasSubstr(absl::StrCat(EventFilter::kMaxEntries)));
}

TEST(EventFilterTest, RejectsTooManyAccounts) {
  v1::EventFilter proto;
  for (int i = 0; i <= EventFilter::kMaxEntries; ++i) proto.add_accounts(absl::StrCat("acct_", i));
  EXPECT_THAT(MustRejectMessage(proto), HasSubstr(absl::StrCat(EventFilter::kMaxEntries)));
}

TEST(EventFilterTest, CopiesAreIndependentAndEqual) {
  EventFilter original = MustCreate(Proto({"account.*"}, {kAccount}));
  EventFilter copy = original;
  original = EventFilter();
  EXPECT_TRUE(copy.Matches("account.updated", kAccount, false));
  EXPECT_FALSE(copy.Matches("account.updated", kOtherAccount, false));
  EXPECT_TRUE(original.Matches("anything.else", "", true));
}

}  // namespace
}  // namespace sidestream
