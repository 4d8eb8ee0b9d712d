#include "client/cli/cli_parsing.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sidestream::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseEventFilterTest, SplitsListsAndMapsEnums) {
  absl::StatusOr<v1::EventFilter> filter =
      ParseEventFilter(" payout.*, ,account.updated", "acct_1,acct_2", "Connect", "live");
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_THAT(filter->types(), ElementsAre("payout.*", "account.updated"));
  EXPECT_THAT(filter->accounts(), ElementsAre("acct_1", "acct_2"));
  EXPECT_EQ(filter->origin(), v1::ORIGIN_CONNECT);
  EXPECT_EQ(filter->livemode(), v1::LIVEMODE_LIVE);
}

TEST(ParseEventFilterTest, DefaultsMatchEverything) {
  absl::StatusOr<v1::EventFilter> filter = ParseEventFilter("", "", "any", "any");
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_TRUE(filter->types().empty());
  EXPECT_TRUE(filter->accounts().empty());
  EXPECT_EQ(filter->origin(), v1::ORIGIN_ANY);
  EXPECT_EQ(filter->livemode(), v1::LIVEMODE_ANY);

  filter = ParseEventFilter("", "", "platform", "test");
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_EQ(filter->origin(), v1::ORIGIN_PLATFORM);
  EXPECT_EQ(filter->livemode(), v1::LIVEMODE_TEST);
}

TEST(ParseEventFilterTest, RejectsUnknownOriginAndMode) {
  EXPECT_EQ(ParseEventFilter("", "", "connected", "any").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status mode = ParseEventFilter("", "", "any", "production").status();
  EXPECT_EQ(mode.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mode.message(), HasSubstr("--mode"));
}

TEST(ParseStartTest, NamedPositionsAndDefault) {
  absl::StatusOr<StartSpec> start = ParseStart("", "", v1::START_POSITION_OLDEST);
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(start->position, v1::START_POSITION_OLDEST);
  EXPECT_FALSE(start->after_sequence.has_value());
  EXPECT_FALSE(start->start_time.has_value());

  start = ParseStart("LATEST", "", v1::START_POSITION_OLDEST);
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(start->position, v1::START_POSITION_LATEST);

  start = ParseStart("oldest", "", v1::START_POSITION_LATEST);
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(start->position, v1::START_POSITION_OLDEST);
}

TEST(ParseStartTest, SequenceWithEpoch) {
  absl::StatusOr<StartSpec> start = ParseStart("1234", "epoch-a", v1::START_POSITION_LATEST);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->after_sequence, 1234u);
  EXPECT_EQ(start->log_epoch, "epoch-a");
  EXPECT_FALSE(start->start_time.has_value());

  start = ParseStart("0", "", v1::START_POSITION_LATEST);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->after_sequence, 0u);
}

TEST(ParseStartTest, Rfc3339Time) {
  absl::StatusOr<StartSpec> start =
      ParseStart("2024-06-20T12:00:00.5+02:00", "", v1::START_POSITION_LATEST);
  ASSERT_TRUE(start.ok()) << start.status();
  ASSERT_TRUE(start->start_time.has_value());
  EXPECT_EQ(*start->start_time, absl::FromUnixSeconds(1718877600) + absl::Milliseconds(500));
  EXPECT_FALSE(start->after_sequence.has_value());
}

TEST(ParseStartTest, RejectsJunkAndMisplacedEpoch) {
  for (absl::string_view bad : {"-5", "12abc", "yesterday", "2024-06-20"}) {
    EXPECT_EQ(ParseStart(bad, "", v1::START_POSITION_LATEST).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  absl::Status epoch = ParseStart("oldest", "epoch-a", v1::START_POSITION_LATEST).status();
  EXPECT_EQ(epoch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(epoch.message(), HasSubstr("--epoch"));
}

TEST(ApplyStartTest, SetsTheMatchingOneofField) {
  v1::ListEventsRequest request;
  ApplyStart(*ParseStart("77", "", v1::START_POSITION_OLDEST), &request);
  EXPECT_EQ(request.start_case(), v1::ListEventsRequest::kAfterSequence);
  EXPECT_EQ(request.after_sequence(), 77u);

  request.Clear();
  ApplyStart(*ParseStart("2024-06-20T10:00:00.25Z", "", v1::START_POSITION_OLDEST), &request);
  EXPECT_EQ(request.start_case(), v1::ListEventsRequest::kStartTime);
  EXPECT_EQ(request.start_time().seconds(), 1718877600);
  EXPECT_EQ(request.start_time().nanos(), 250000000);

  request.Clear();
  ApplyStart(*ParseStart("", "", v1::START_POSITION_OLDEST), &request);
  EXPECT_EQ(request.start_case(), v1::ListEventsRequest::kPosition);
  EXPECT_EQ(request.position(), v1::START_POSITION_OLDEST);
}

TEST(SelectSigningSecretTest, FirstEntryOrByLabel) {
  const absl::string_view text = "# secrets\nplatform-test=whsec_aaa\nconnect-test=whsec_bbb\n";
  std::vector<std::string> warnings;
  absl::StatusOr<std::string> secret = SelectSigningSecret(text, "file", "", &warnings);
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(*secret, "whsec_aaa");
  secret = SelectSigningSecret(text, "file", "connect-test", &warnings);
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(*secret, "whsec_bbb");
  EXPECT_TRUE(warnings.empty());
}

TEST(SelectSigningSecretTest, CommaListFromTheEnvironment) {
  std::vector<std::string> warnings;
  absl::StatusOr<std::string> secret =
      SelectSigningSecret("whsec_first, whsec_second", "SIDESTREAM_WEBHOOK_SECRETS", "", &warnings);
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(*secret, "whsec_first");
}

TEST(SelectSigningSecretTest, UnknownLabelListsTheLabelsButNoSecret) {
  absl::Status status =
      SelectSigningSecret("a=whsec_aaa\nb=whsec_bbb", "file", "c", nullptr).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("a, b"));
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr("whsec_")));
}

TEST(SelectSigningSecretTest, EmptyTextIsAnError) {
  EXPECT_EQ(SelectSigningSecret("\n# nothing\n", "file", "", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(IdentifyEventTest, ReadsIdAndType) {
  EventIdentity event =
      IdentifyEvent(R"({"id": "evt_1", "object": "event", "type": "payout.failed"})");
  EXPECT_EQ(event.id, "evt_1");
  EXPECT_EQ(event.type, "payout.failed");
}

TEST(IdentifyEventTest, UnreadableBodyGivesQuestionMarks) {
  EventIdentity event = IdentifyEvent("not json");
  EXPECT_EQ(event.id, "?");
  EXPECT_EQ(event.type, "?");
  event = IdentifyEvent(R"({"id": 5})");
  EXPECT_EQ(event.id, "?");
}

TEST(DescribeErrorTest, OneLineWithCodeAndServer) {
  std::string unavailable = DescribeError(
      absl::UnavailableError("failed to connect\nto all addresses"), "127.0.0.1:50051");
  EXPECT_THAT(unavailable, HasSubstr("cannot reach Sidestream at 127.0.0.1:50051"));
  EXPECT_THAT(unavailable, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(unavailable.find('\n'), std::string::npos);

  EXPECT_EQ(DescribeError(absl::NotFoundError("no event evt_9"), "x"),
            "no event evt_9 (NOT_FOUND)");
  EXPECT_THAT(DescribeError(absl::DeadlineExceededError("late"), "x"), HasSubstr("--timeout"));
}

TEST(DescribeErrorTest, AuthErrorsSayWhichFlagToPass) {
  const absl::Status missing = absl::UnauthenticatedError(
      "missing access token: send the metadata \"authorization: Bearer <token>\"");
  std::string line = DescribeError(missing, "h:1");
  EXPECT_THAT(line, HasSubstr("requires an access token: pass --token_file"));
  EXPECT_THAT(line, HasSubstr("missing access token"));
  EXPECT_THAT(line, HasSubstr("UNAUTHENTICATED"));

  line = DescribeError(absl::UnauthenticatedError("the access token is not valid"), "h:1",
                       {.token = true});
  EXPECT_THAT(line, HasSubstr("did not accept the token in --token_file"));
  EXPECT_THAT(line, HasSubstr("not valid"));

  line = DescribeError(absl::PermissionDeniedError("token \"svc\" may not call the Admin service"),
                       "h:1", {.token = true});
  EXPECT_THAT(line, HasSubstr("token \"svc\" may not call the Admin service"));
  EXPECT_THAT(line, HasSubstr("PERMISSION_DENIED"));
}

TEST(DescribeErrorTest, TlsHints) {
  const absl::Status handshake =
      absl::UnavailableError("failed to connect; Ssl handshake failed: CERTIFICATE_VERIFY_FAILED");
  EXPECT_THAT(DescribeError(handshake, "h:1", {.tls = true}),
              HasSubstr("TLS handshake with Sidestream at h:1 failed"));
  EXPECT_THAT(DescribeError(absl::UnavailableError("Socket closed"), "h:1"),
              HasSubstr("if the server uses TLS, pass --tls_ca_file"));
  EXPECT_THAT(DescribeError(absl::UnavailableError("Socket closed"), "h:1", {.tls = true}),
              HasSubstr("pass --tls_cert_file and --tls_key_file"));
  // A server that is down is not a TLS problem.
  EXPECT_THAT(DescribeError(absl::UnavailableError("Connection refused"), "h:1"),
              ::testing::Not(HasSubstr("TLS")));
}

TEST(ExitCodeForTest, UsageFailureOrOk) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("bad filter")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::OutOfRangeError("too old")), kExitFailure);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("down")), kExitFailure);
}

}  // namespace
}  // namespace sidestream::cli
