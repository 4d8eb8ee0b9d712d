#include "server/verify/stripe_signature.h"

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Stripe's published test vector (docs and the SDK suites).
constexpr absl::string_view kVectorSecret = "whsec_test_secret";
constexpr int64_t kVectorTimestamp = 1492774577;
constexpr absl::string_view kVectorBody = R"({"id":"evt_test_webhook","object":"event"})";
constexpr absl::string_view kVectorV1 =
    "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a";

constexpr int64_t kT = kVectorTimestamp;
const absl::Duration kTolerance = absl::Seconds(300);
const absl::Time kNow = absl::FromUnixSeconds(kT);

constexpr absl::string_view kOldSecret = "whsec_old_0123456789abcdef";
constexpr absl::string_view kNewSecret = "whsec_new_fedcba9876543210";

SignatureVerifier MakeVerifier(std::vector<WebhookSecret> secrets,
                               absl::Duration tolerance = kTolerance) {
  absl::StatusOr<SignatureVerifier> verifier =
      SignatureVerifier::Create(std::move(secrets), tolerance);
  EXPECT_TRUE(verifier.ok()) << verifier.status();
  return *std::move(verifier);
}

SignatureVerifier VectorVerifier() { return MakeVerifier({{"test", std::string(kVectorSecret)}}); }

std::string V1(absl::string_view secret, int64_t t, absl::string_view body) {
  return ComputeStripeV1Signature(secret, t, body);
}

// Expects a rejection with `reason`; returns its detail.
std::string ExpectRejected(const SignatureVerifier::Result& result, RejectReason reason) {
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.secret, nullptr);
  if (!result.rejection.has_value()) return "";
  EXPECT_EQ(RejectReasonName(result.rejection->reason), RejectReasonName(reason))
      << result.rejection->detail;
  return result.rejection->detail;
}

// --- Signing ---------------------------------------------------------------

TEST(ComputeStripeV1SignatureTest, MatchesStripeKnownVector) {
  EXPECT_EQ(ComputeStripeV1Signature(kVectorSecret, kVectorTimestamp, kVectorBody), kVectorV1);
}

TEST(ComputeStripeV1SignatureTest, IsLowerCaseHexOfSha256Size) {
  const std::string sig = V1(kOldSecret, kT, "{}");
  ASSERT_THAT(sig, SizeIs(64));
  for (char c : sig) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << sig;
}

TEST(ComputeStripeV1SignatureTest, DependsOnSecretTimestampAndBody) {
  const std::string base = V1(kOldSecret, kT, "{}");
  EXPECT_NE(V1(kNewSecret, kT, "{}"), base);
  EXPECT_NE(V1(kOldSecret, kT + 1, "{}"), base);
  EXPECT_NE(V1(kOldSecret, kT, "{ }"), base);
}

TEST(MakeStripeSignatureHeaderTest, OneV1PerSecretInOrder) {
  const std::string header = MakeStripeSignatureHeader(
      {std::string(kOldSecret), std::string(kNewSecret)}, kT, kVectorBody);
  EXPECT_EQ(header, absl::StrCat("t=", kT, ",v1=", V1(kOldSecret, kT, kVectorBody),
                                 ",v1=", V1(kNewSecret, kT, kVectorBody)));
}

TEST(MakeStripeSignatureHeaderTest, KnownVectorHeader) {
  EXPECT_EQ(MakeStripeSignatureHeader({std::string(kVectorSecret)}, kVectorTimestamp, kVectorBody),
            absl::StrCat("t=1492774577,v1=", kVectorV1));
}

// --- Accepted requests -----------------------------------------------------

TEST(VerifyTest, KnownVectorHeaderVerifies) {
  const SignatureVerifier verifier = VectorVerifier();
  const std::string header = absl::StrCat("t=1492774577,v1=", kVectorV1);
  const auto result = verifier.Verify(header, kVectorBody, kNow);
  ASSERT_TRUE(result.ok()) << result.rejection->detail;
  EXPECT_EQ(result.secret, &verifier.secrets()[0]);
  EXPECT_EQ(result.secret->label, "test");
}

TEST(VerifyTest, ValidHeaderWithV0AndUnknownKeysVerifies) {
  const SignatureVerifier verifier = VectorVerifier();
  const std::string header = absl::StrCat(
      "t=", kT, ",v1=", kVectorV1,
      ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb0399", ",foo=bar,novalue,=x");
  EXPECT_TRUE(verifier.Verify(header, kVectorBody, kNow).ok());
}

TEST(VerifyTest, SpacesAroundElementsAreTrimmed) {
  const SignatureVerifier verifier = VectorVerifier();
  const std::string header = absl::StrCat("  t=", kT, " , v1=", kVectorV1, "  ");
  EXPECT_TRUE(verifier.Verify(header, kVectorBody, kNow).ok());
}

TEST(VerifyTest, NonAsciiUtf8BodyIsHashedAsRawBytes) {
  const SignatureVerifier verifier = VectorVerifier();
  // "café ☕ €" in UTF-8.
  const std::string body =
      "{\"id\":\"evt_1\",\"object\":\"event\",\"name\":\"caf\xc3\xa9 \xe2\x98\x95 \xe2\x82\xac\"}";
  const std::string header = MakeStripeSignatureHeader({std::string(kVectorSecret)}, kT, body);
  EXPECT_TRUE(verifier.Verify(header, body, kNow).ok());

  // The same JSON re-encoded (escaped, or as Latin-1) is a different byte
  // string and must not verify.
  const std::string escaped =
      "{\"id\":\"evt_1\",\"object\":\"event\",\"name\":\"caf\\u00e9 \\u2615 \\u20ac\"}";
  ExpectRejected(verifier.Verify(header, escaped, kNow), RejectReason::kSignatureMismatch);
  const std::string latin1 =
      "{\"id\":\"evt_1\",\"object\":\"event\",\"name\":\"caf\xe9 \xe2\x98\x95 \xe2\x82\xac\"}";
  ExpectRejected(verifier.Verify(header, latin1, kNow), RejectReason::kSignatureMismatch);
}

TEST(VerifyTest, InvalidUtf8BodyStillVerifiesAsBytes) {
  // The decode stage rejects it later; the signature covers bytes, not text.
  const SignatureVerifier verifier = VectorVerifier();
  const std::string body("{\"a\":\"\xff\xfe\x00\"}", 11);
  const std::string header = MakeStripeSignatureHeader({std::string(kVectorSecret)}, kT, body);
  EXPECT_TRUE(verifier.Verify(header, body, kNow).ok());
  EXPECT_FALSE(verifier.Verify(header, body.substr(0, 8), kNow).ok());
}

TEST(VerifyTest, EmptyBodyWithValidSignatureVerifies) {
  const SignatureVerifier verifier = VectorVerifier();
  const std::string header = MakeStripeSignatureHeader({std::string(kVectorSecret)}, kT, "");
  EXPECT_TRUE(verifier.Verify(header, "", kNow).ok());
  ExpectRejected(verifier.Verify(header, " ", kNow), RejectReason::kSignatureMismatch);
}

TEST(VerifyTest, OneValidAndOneJunkV1Verifies) {
  const SignatureVerifier verifier = VectorVerifier();
  EXPECT_TRUE(
      verifier.Verify(absl::StrCat("t=", kT, ",v1=", kVectorV1, ",v1=potato"), kVectorBody, kNow)
          .ok());
  EXPECT_TRUE(
      verifier.Verify(absl::StrCat("t=", kT, ",v1=potato,v1=", kVectorV1), kVectorBody, kNow).ok());
  EXPECT_TRUE(verifier
                  .Verify(absl::StrCat("t=", kT, ",v1=", std::string(64, '0'), ",v1=", kVectorV1),
                          kVectorBody, kNow)
                  .ok());
}

TEST(VerifyTest, SecretRollHeaderVerifiesWithEitherSecret) {
  const std::string header = MakeStripeSignatureHeader(
      {std::string(kOldSecret), std::string(kNewSecret)}, kT, kVectorBody);
  ASSERT_NE(V1(kOldSecret, kT, kVectorBody), V1(kNewSecret, kT, kVectorBody));

  const SignatureVerifier old_only = MakeVerifier({{"old", std::string(kOldSecret)}});
  const auto old_result = old_only.Verify(header, kVectorBody, kNow);
  ASSERT_TRUE(old_result.ok());
  EXPECT_EQ(old_result.secret->label, "old");

  const SignatureVerifier new_only = MakeVerifier({{"new", std::string(kNewSecret)}});
  const auto new_result = new_only.Verify(header, kVectorBody, kNow);
  ASSERT_TRUE(new_result.ok());
  EXPECT_EQ(new_result.secret->label, "new");
}

TEST(VerifyTest, ReportsTheSecretThatMatched) {
  const SignatureVerifier verifier = MakeVerifier({{"account", "whsec_account_aaaa"},
                                                   {"connect", "whsec_connect_bbbb"},
                                                   {"connect-test", "whsec_connect_test_cccc"}});
  for (size_t i = 0; i < verifier.secrets().size(); ++i) {
    const std::string header =
        MakeStripeSignatureHeader({verifier.secrets()[i].secret}, kT, kVectorBody);
    const auto result = verifier.Verify(header, kVectorBody, kNow);
    ASSERT_TRUE(result.ok()) << i;
    EXPECT_EQ(result.secret, &verifier.secrets()[i]);
  }
  // A header signed by a secret we do not hold, plus the second one.
  const std::string header = MakeStripeSignatureHeader(
      {std::string(kOldSecret), verifier.secrets()[1].secret}, kT, kVectorBody);
  const auto result = verifier.Verify(header, kVectorBody, kNow);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.secret->label, "connect");
}

TEST(VerifyTest, CopiedVerifierVerifiesAndPointsIntoItsOwnSecrets) {
  const SignatureVerifier original = VectorVerifier();
  const SignatureVerifier copy = original;  // NOLINT(performance-unnecessary-copy-initialization)
  const std::string header = absl::StrCat("t=", kT, ",v1=", kVectorV1);
  const auto result = copy.Verify(header, kVectorBody, kNow);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.secret, &copy.secrets()[0]);
  EXPECT_TRUE(original.Verify(header, kVectorBody, kNow).ok());
}

TEST(VerifyTest, ConcurrentCallsAllVerify) {
  const SignatureVerifier verifier =
      MakeVerifier({{"old", std::string(kOldSecret)}, {"new", std::string(kNewSecret)}});
  const std::string good = MakeStripeSignatureHeader({std::string(kNewSecret)}, kT, kVectorBody);
  const std::string bad = absl::StrCat("t=", kT, ",v1=", std::string(64, 'a'));
  constexpr int kThreads = 4;
  constexpr int kCalls = 500;
  std::vector<int> accepted(kThreads, 0);
  std::vector<int> rejected(kThreads, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kCalls; ++j) {
        if (verifier.Verify(good, kVectorBody, kNow).ok()) ++accepted[i];
        if (!verifier.Verify(bad, kVectorBody, kNow).ok()) ++rejected[i];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(accepted[i], kCalls);
    EXPECT_EQ(rejected[i], kCalls);
  }
}

// --- Header problems -------------------------------------------------------

TEST(VerifyTest, MissingHeaderIsMissingSignature) {
  ExpectRejected(VectorVerifier().Verify(std::nullopt, kVectorBody, kNow),
                 RejectReason::kMissingSignature);
}

TEST(VerifyTest, EmptyOrBlankHeaderIsMissingSignature) {
  const SignatureVerifier verifier = VectorVerifier();
  ExpectRejected(verifier.Verify("", kVectorBody, kNow), RejectReason::kMissingSignature);
  ExpectRejected(verifier.Verify("   \t ", kVectorBody, kNow), RejectReason::kMissingSignature);
}

TEST(VerifyTest, GarbageHeaderIsMalformed) {
  const SignatureVerifier verifier = VectorVerifier();
  ExpectRejected(verifier.Verify("bad_header", kVectorBody, kNow),
                 RejectReason::kMalformedSignature);
  ExpectRejected(verifier.Verify("I'm not even a real signature header", kVectorBody, kNow),
                 RejectReason::kMalformedSignature);
  ExpectRejected(verifier.Verify(",,,", kVectorBody, kNow), RejectReason::kMalformedSignature);
}

TEST(VerifyTest, NoTimestampIsMalformed) {
  const SignatureVerifier verifier = VectorVerifier();
  const std::string detail =
      ExpectRejected(verifier.Verify(absl::StrCat("v1=", kVectorV1), kVectorBody, kNow),
                     RejectReason::kMalformedSignature);
  EXPECT_THAT(detail, HasSubstr("no t"));
}

TEST(VerifyTest, BadTimestampValuesAreMalformed) {
  const SignatureVerifier verifier = VectorVerifier();
  for (absl::string_view t : {"", "abc", "-5", "1.5", "0", "+5", "1 2", "0x10", "1e9",
                              "99999999999999999999", " 1492774577"}) {
    SCOPED_TRACE(t);
    ExpectRejected(verifier.Verify(absl::StrCat("t=", t, ",v1=", kVectorV1), kVectorBody, kNow),
                   RejectReason::kMalformedSignature);
  }
}

TEST(VerifyTest, SeveralTimestampsAreMalformed) {
  const SignatureVerifier verifier = VectorVerifier();
  ExpectRejected(
      verifier.Verify(absl::StrCat("t=", kT, ",t=", kT, ",v1=", kVectorV1), kVectorBody, kNow),
      RejectReason::kMalformedSignature);
  ExpectRejected(
      verifier.Verify(absl::StrCat("t=", kT, ",v1=", kVectorV1, ",t=abc"), kVectorBody, kNow),
      RejectReason::kMalformedSignature);
}

TEST(VerifyTest, V1WithoutValueAndTimestampIsNoV1) {
  // "v1" has no '=', so it is not a v1 element; a usable t remains.
  ExpectRejected(VectorVerifier().Verify("v1,t=1", kVectorBody, kNow),
                 RejectReason::kNoV1Signature);
}

TEST(VerifyTest, V0OnlyIsNoV1) {
  const std::string v0_header = absl::StrCat("t=", kT, ",v0=", kVectorV1);
  ExpectRejected(VectorVerifier().Verify(v0_header, kVectorBody, kNow),
                 RejectReason::kNoV1Signature);
}

TEST(VerifyTest, OtherSchemesOnlyIsNoV1) {
  const std::string header = absl::StrCat("t=", kT, ",v2=", kVectorV1, ",V1=", kVectorV1);
  ExpectRejected(VectorVerifier().Verify(header, kVectorBody, kNow), RejectReason::kNoV1Signature);
}

// --- Signature problems ----------------------------------------------------

TEST(VerifyTest, WrongSignatureOfRightLengthIsMismatch) {
  const SignatureVerifier verifier = VectorVerifier();
  std::string wrong(kVectorV1);
  wrong[10] = wrong[10] == '0' ? '1' : '0';
  ExpectRejected(verifier.Verify(absl::StrCat("t=", kT, ",v1=", wrong), kVectorBody, kNow),
                 RejectReason::kSignatureMismatch);
  // Right length, right body, other secret.
  ExpectRejected(
      verifier.Verify(MakeStripeSignatureHeader({std::string(kOldSecret)}, kT, kVectorBody),
                      kVectorBody, kNow),
      RejectReason::kSignatureMismatch);
}

TEST(VerifyTest, SignatureOverOtherTimestampIsMismatch) {
  // Replaying a signature with a fresh t must fail the HMAC.
  const std::string header = absl::StrCat("t=", kT + 1, ",v1=", kVectorV1);
  ExpectRejected(VectorVerifier().Verify(header, kVectorBody, kNow),
                 RejectReason::kSignatureMismatch);
}

TEST(VerifyTest, WrongLengthV1IsMismatch) {
  const SignatureVerifier verifier = VectorVerifier();
  for (const std::string& v1 : {std::string(kVectorV1.substr(0, 63)), absl::StrCat(kVectorV1, "0"),
                                std::string(), std::string(kVectorV1.substr(0, 32))}) {
    SCOPED_TRACE(v1);
    ExpectRejected(verifier.Verify(absl::StrCat("t=", kT, ",v1=", v1), kVectorBody, kNow),
                   RejectReason::kSignatureMismatch);
  }
}

TEST(VerifyTest, UpperCaseHexDoesNotMatch) {
  std::string upper(kVectorV1);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(upper, kVectorV1);
  ExpectRejected(VectorVerifier().Verify(absl::StrCat("t=", kT, ",v1=", upper), kVectorBody, kNow),
                 RejectReason::kSignatureMismatch);
}

TEST(VerifyTest, HeaderIsCheckedBeforeSignatureAndSignatureBeforeTimestamp) {
  const SignatureVerifier verifier = VectorVerifier();
  const absl::Time much_later = kNow + absl::Hours(24);
  // Malformed t and no v1: the header problem is reported.
  ExpectRejected(verifier.Verify("t=abc", kVectorBody, much_later),
                 RejectReason::kMalformedSignature);
  // Bad signature and stale timestamp: the signature problem is reported.
  ExpectRejected(verifier.Verify(absl::StrCat("t=", kT, ",v1=", std::string(64, 'f')), kVectorBody,
                                 much_later),
                 RejectReason::kSignatureMismatch);
  // Good signature, stale timestamp.
  ExpectRejected(
      verifier.Verify(absl::StrCat("t=", kT, ",v1=", kVectorV1), kVectorBody, much_later),
      RejectReason::kTimestampOutOfTolerance);
}

// --- Timestamp tolerance ---------------------------------------------------

class ToleranceTest : public ::testing::Test {
 protected:
  SignatureVerifier::Result VerifyAt(absl::Time now) const {
    return verifier_.Verify(header_, kVectorBody, now);
  }

  const SignatureVerifier verifier_ = VectorVerifier();
  const std::string header_ = absl::StrCat("t=", kT, ",v1=", kVectorV1);
  const absl::Time signed_at_ = absl::FromUnixSeconds(kT);
};

TEST_F(ToleranceTest, PastJustInsidePasses) {
  EXPECT_TRUE(VerifyAt(signed_at_ + kTolerance).ok());
  EXPECT_TRUE(VerifyAt(signed_at_ + kTolerance - absl::Seconds(1)).ok());
}

TEST_F(ToleranceTest, PastJustOutsideFails) {
  const std::string detail = ExpectRejected(VerifyAt(signed_at_ + kTolerance + absl::Seconds(1)),
                                            RejectReason::kTimestampOutOfTolerance);
  EXPECT_EQ(detail, "timestamp 1492774577 is 301 s old; tolerance 300 s");
  const std::string detail_ms =
      ExpectRejected(VerifyAt(signed_at_ + kTolerance + absl::Milliseconds(1)),
                     RejectReason::kTimestampOutOfTolerance);
  EXPECT_THAT(detail_ms, HasSubstr("300.001 s old"));
}

TEST_F(ToleranceTest, FutureJustInsidePasses) {
  EXPECT_TRUE(VerifyAt(signed_at_ - kTolerance).ok());
  EXPECT_TRUE(VerifyAt(signed_at_ - kTolerance + absl::Seconds(1)).ok());
}

TEST_F(ToleranceTest, FutureJustOutsideFails) {
  const std::string detail = ExpectRejected(VerifyAt(signed_at_ - kTolerance - absl::Seconds(1)),
                                            RejectReason::kTimestampOutOfTolerance);
  EXPECT_EQ(detail, "timestamp 1492774577 is 301 s in the future; tolerance 300 s");
  ExpectRejected(VerifyAt(signed_at_ - kTolerance - absl::Milliseconds(1)),
                 RejectReason::kTimestampOutOfTolerance);
}

TEST_F(ToleranceTest, UsesTheConfiguredTolerance) {
  const SignatureVerifier tight =
      MakeVerifier({{"test", std::string(kVectorSecret)}}, absl::Seconds(10));
  EXPECT_TRUE(tight.Verify(header_, kVectorBody, signed_at_ + absl::Seconds(9)).ok());
  ExpectRejected(tight.Verify(header_, kVectorBody, signed_at_ + absl::Seconds(15)),
                 RejectReason::kTimestampOutOfTolerance);
  ExpectRejected(tight.Verify(header_, kVectorBody, signed_at_ - absl::Seconds(15)),
                 RejectReason::kTimestampOutOfTolerance);
}

TEST_F(ToleranceTest, HugeTimestampIsFarInTheFuture) {
  const std::string t = "9223372036854775807";  // INT64_MAX
  const std::string header =
      absl::StrCat("t=", t, ",v1=", V1(kVectorSecret, INT64_MAX, kVectorBody));
  ExpectRejected(verifier_.Verify(header, kVectorBody, signed_at_),
                 RejectReason::kTimestampOutOfTolerance);
}

// --- Details never leak a secret --------------------------------------------

TEST(VerifyTest, RejectionDetailsNeverContainASecret) {
  const std::string secret_a = "whsec_SuperSecretValueA1234567890";
  const std::string secret_b = "whsec_SuperSecretValueB0987654321";
  const SignatureVerifier verifier = MakeVerifier({{"a", secret_a}, {"b", secret_b}});
  const std::string good = MakeStripeSignatureHeader({secret_a}, kT, kVectorBody);
  const std::vector<std::pair<std::optional<std::string>, absl::Time>> cases = {
      {std::nullopt, kNow},
      {"", kNow},
      {"bad_header", kNow},
      {"t=abc,v1=00", kNow},
      {absl::StrCat("t=", kT, ",t=", kT), kNow},
      {absl::StrCat("t=", kT, ",v0=00"), kNow},
      {absl::StrCat("t=", kT, ",v1=", std::string(64, '0')), kNow},
      {good, kNow + absl::Hours(1)},
      {good, kNow - absl::Hours(1)},
  };
  int rejected = 0;
  for (const auto& [header, now] : cases) {
    std::optional<absl::string_view> view;
    if (header.has_value()) view = *header;
    const auto result = verifier.Verify(view, kVectorBody, now);
    ASSERT_FALSE(result.ok());
    ++rejected;
    const std::string& detail = result.rejection->detail;
    EXPECT_THAT(detail, Not(IsEmpty()));
    EXPECT_THAT(detail, Not(HasSubstr("SuperSecret")));
    EXPECT_THAT(detail, Not(HasSubstr(V1(secret_a, kT, kVectorBody))));
    EXPECT_THAT(detail, Not(HasSubstr(V1(secret_b, kT, kVectorBody))));
  }
  EXPECT_EQ(rejected, static_cast<int>(cases.size()));
}

// --- SignatureVerifier::Create ---------------------------------------------

TEST(CreateTest, ZeroToleranceIsAnError) {
  const auto verifier = SignatureVerifier::Create({{"a", "whsec_a"}}, absl::ZeroDuration());
  ASSERT_FALSE(verifier.ok());
  EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(verifier.status().message(), HasSubstr("positive"));
}

TEST(CreateTest, NegativeToleranceIsAnError) {
  const auto verifier = SignatureVerifier::Create({{"a", "whsec_a"}}, absl::Seconds(-300));
  ASSERT_FALSE(verifier.ok());
  EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(verifier.status().message(), HasSubstr("positive"));
}

TEST(CreateTest, InfiniteToleranceIsAnError) {
  const auto verifier = SignatureVerifier::Create({{"a", "whsec_a"}}, absl::InfiniteDuration());
  EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CreateTest, NoSecretsIsAnError) {
  const auto verifier = SignatureVerifier::Create({}, kTolerance);
  EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CreateTest, EmptySecretIsAnError) {
  const auto verifier = SignatureVerifier::Create({{"a", "whsec_a"}, {"b", ""}}, kTolerance);
  EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(verifier.status().message(), HasSubstr("'b'"));
}

TEST(CreateTest, KeepsSecretsAndTolerance) {
  const SignatureVerifier verifier =
      MakeVerifier({{"a", "whsec_a"}, {"b", "whsec_b"}}, absl::Seconds(42));
  ASSERT_THAT(verifier.secrets(), SizeIs(2));
  EXPECT_EQ(verifier.secrets()[1].label, "b");
  EXPECT_EQ(verifier.secrets()[1].secret, "whsec_b");
  EXPECT_EQ(verifier.tolerance(), absl::Seconds(42));
}

// --- ParseWebhookSecrets ---------------------------------------------------

TEST(ParseWebhookSecretsTest, CommaListOfBareSecretsIsLabelledByPosition) {
  std::vector<std::string> warnings;
  const auto secrets = ParseWebhookSecrets("whsec_aaa,whsec_bbb", &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_THAT(*secrets, SizeIs(2));
  EXPECT_EQ((*secrets)[0].label, "secret-1");
  EXPECT_EQ((*secrets)[0].secret, "whsec_aaa");
  EXPECT_EQ((*secrets)[1].label, "secret-2");
  EXPECT_EQ((*secrets)[1].secret, "whsec_bbb");
  EXPECT_THAT(warnings, IsEmpty());
}

TEST(ParseWebhookSecretsTest, CommaListWithLabels) {
  std::vector<std::string> warnings;
  const auto secrets =
      ParseWebhookSecrets("account=whsec_aaa,connect.live=whsec_bbb,whsec_ccc", &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_THAT(*secrets, SizeIs(3));
  EXPECT_EQ((*secrets)[0].label, "account");
  EXPECT_EQ((*secrets)[0].secret, "whsec_aaa");
  EXPECT_EQ((*secrets)[1].label, "connect.live");
  EXPECT_EQ((*secrets)[1].secret, "whsec_bbb");
  EXPECT_EQ((*secrets)[2].label, "secret-3");
  EXPECT_EQ((*secrets)[2].secret, "whsec_ccc");
  EXPECT_THAT(warnings, IsEmpty());
}

TEST(ParseWebhookSecretsTest, FileWithCommentsBlankLinesAndCrlf) {
  std::vector<std::string> warnings;
  const auto secrets = ParseWebhookSecrets(
      "# Sidestream webhook secrets, one per line\r\n"
      "\r\n"
      "account=whsec_aaa\r\n"
      "  # indented comment, with a comma\n"
      "connect_test=whsec_bbb\n"
      "\n",
      &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_THAT(*secrets, SizeIs(2));
  EXPECT_EQ((*secrets)[0].label, "account");
  EXPECT_EQ((*secrets)[0].secret, "whsec_aaa");
  EXPECT_EQ((*secrets)[1].label, "connect_test");
  EXPECT_EQ((*secrets)[1].secret, "whsec_bbb");
  EXPECT_THAT(warnings, IsEmpty());
}

TEST(ParseWebhookSecretsTest, WhitespaceAroundSecretIsTrimmedWithWarning) {
  std::vector<std::string> warnings;
  const auto secrets = ParseWebhookSecrets("prod=whsec_SecretValue123 \n", &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_THAT(*secrets, SizeIs(1));
  EXPECT_EQ((*secrets)[0].secret, "whsec_SecretValue123");
  ASSERT_THAT(warnings, SizeIs(1));
  EXPECT_THAT(warnings[0], HasSubstr("'prod'"));
  EXPECT_THAT(warnings[0], HasSubstr("whitespace"));
  EXPECT_THAT(warnings[0], Not(HasSubstr("SecretValue123")));
}

TEST(ParseWebhookSecretsTest, WhitespaceAroundBareSecretAndLabelIsTrimmed) {
  std::vector<std::string> warnings;
  const auto secrets = ParseWebhookSecrets("\twhsec_SecretValue123\t, live = whsec_xyz", &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_THAT(*secrets, SizeIs(2));
  EXPECT_EQ((*secrets)[0].label, "secret-1");
  EXPECT_EQ((*secrets)[0].secret, "whsec_SecretValue123");
  EXPECT_EQ((*secrets)[1].label, "live");
  EXPECT_EQ((*secrets)[1].secret, "whsec_xyz");
  ASSERT_THAT(warnings, SizeIs(2));
  EXPECT_THAT(warnings[0], HasSubstr("entry 1"));
  EXPECT_THAT(warnings[1], HasSubstr("'live'"));
  for (const std::string& w : warnings) {
    EXPECT_THAT(w, Not(HasSubstr("SecretValue123")));
    EXPECT_THAT(w, Not(HasSubstr("whsec_xyz")));
  }
}

TEST(ParseWebhookSecretsTest, SecretWithoutPrefixIsAcceptedWithWarning) {
  std::vector<std::string> warnings;
  const auto secrets = ParseWebhookSecrets("legacy=sk_notawebhooksecret", &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_EQ((*secrets)[0].secret, "sk_notawebhooksecret");
  ASSERT_THAT(warnings, SizeIs(1));
  EXPECT_THAT(warnings[0], HasSubstr("whsec_"));
  EXPECT_THAT(warnings[0], HasSubstr("'legacy'"));
  EXPECT_THAT(warnings[0], Not(HasSubstr("notawebhooksecret")));
}

TEST(ParseWebhookSecretsTest, EqualsSignInsideSecretIsKept) {
  std::vector<std::string> warnings;
  const auto secrets = ParseWebhookSecrets("whsec_abc=def==\nlive=whsec_x=y", &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  ASSERT_THAT(*secrets, SizeIs(2));
  EXPECT_EQ((*secrets)[0].label, "secret-1");
  EXPECT_EQ((*secrets)[0].secret, "whsec_abc=def==");
  EXPECT_EQ((*secrets)[1].label, "live");
  EXPECT_EQ((*secrets)[1].secret, "whsec_x=y");
}

TEST(ParseWebhookSecretsTest, DuplicateLabelIsAnError) {
  const auto secrets = ParseWebhookSecrets("prod=whsec_SecretOne,prod=whsec_SecretTwo", nullptr);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(secrets.status().message(), HasSubstr("'prod'"));
  EXPECT_THAT(secrets.status().message(), HasSubstr("entries 1 and 2"));
  EXPECT_THAT(secrets.status().message(), Not(HasSubstr("Secret")));
}

TEST(ParseWebhookSecretsTest, ExplicitLabelCollidingWithPositionLabelIsAnError) {
  const auto secrets = ParseWebhookSecrets("secret-2=whsec_aaa,whsec_bbb", nullptr);
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(secrets.status().message(), HasSubstr("'secret-2'"));
}

TEST(ParseWebhookSecretsTest, DuplicateSecretIsAnError) {
  const auto secrets =
      ParseWebhookSecrets("a=whsec_SameSecret\nb=whsec_other\nc= whsec_SameSecret", nullptr);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(secrets.status().message(), HasSubstr("'c' (entry 3)"));
  EXPECT_THAT(secrets.status().message(), HasSubstr("entry 1"));
  EXPECT_THAT(secrets.status().message(), Not(HasSubstr("SameSecret")));
}

TEST(ParseWebhookSecretsTest, InvalidLabelIsAnError) {
  for (absl::string_view text : {"my label=whsec_aaa", "prod!=whsec_aaa", "=whsec_aaa"}) {
    SCOPED_TRACE(text);
    const auto secrets = ParseWebhookSecrets(text, nullptr);
    ASSERT_FALSE(secrets.ok());
    EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(secrets.status().message(), HasSubstr("entry 1"));
    EXPECT_THAT(secrets.status().message(), Not(HasSubstr("aaa")));
  }
}

TEST(ParseWebhookSecretsTest, EmptySecretIsAnError) {
  const auto secrets = ParseWebhookSecrets("a=whsec_aaa\nprod=  \n", nullptr);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(secrets.status().message(), HasSubstr("'prod' (entry 2)"));
}

TEST(ParseWebhookSecretsTest, NoEntryIsAnError) {
  for (absl::string_view text : {"", "   ", ",,", "\n\n", "# only a comment\n  \n"}) {
    SCOPED_TRACE(text);
    const auto secrets = ParseWebhookSecrets(text, nullptr);
    ASSERT_FALSE(secrets.ok());
    EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(secrets.status().message(), "no webhook secret configured");
  }
}

TEST(ParseWebhookSecretsTest, ParsedSecretsVerifyStripeSignatures) {
  std::vector<std::string> warnings;
  auto secrets = ParseWebhookSecrets("old=whsec_test_secret \nnew=whsec_rolled", &warnings);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  const SignatureVerifier verifier = MakeVerifier(*std::move(secrets));
  const auto result = verifier.Verify(absl::StrCat("t=", kT, ",v1=", kVectorV1), kVectorBody, kNow);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.secret->label, "old");
}

}  // namespace
}  // namespace sidestream
