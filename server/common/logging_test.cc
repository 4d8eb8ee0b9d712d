#include "server/common/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sidestream {
namespace {

constexpr absl::string_view kTime = "2026-11-26T22:10:00.123Z";

TEST(LogFormatTest, JsonIsOneObjectWithLevelTimeMessageAndFields) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kInfo, "webhook stored",
                          {{"event_id", "evt_1"}, {"sequence", 42}, {"duplicate", false}}),
            "{\"time\":\"2026-11-26T22:10:00.123Z\",\"level\":\"info\",\"msg\":\"webhook "
            "stored\",\"event_id\":\"evt_1\",\"sequence\":\"42\",\"duplicate\":\"false\"}\n");
}

TEST(LogFormatTest, JsonEscapesHostileValues) {
  const std::string line = FormatLogLine(LogFormat::kJson, kTime, LogLevel::kWarning, "refused",
                                         {{"detail", "a\"b\\c\nd\x01\xff"}});
  EXPECT_EQ(line,
            "{\"time\":\"2026-11-26T22:10:00.123Z\",\"level\":\"warning\",\"msg\":\"refused\","
            "\"detail\":\"a\\\"b\\\\c\\nd\\u0001\\u00ff\"}\n");
  // Exactly one line, whatever the value held.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(LogFormatTest, LogfmtQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, kTime, LogLevel::kError, "webhook not stored",
                          {{"event_id", "evt_1"}, {"error", "disk full"}, {"empty", ""}}),
            "time=2026-11-26T22:10:00.123Z level=error msg=\"webhook not stored\" event_id=evt_1 "
            "error=\"disk full\" empty=\"\"\n");
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, kTime, LogLevel::kDebug, "x", {{"k", "a=b"}}),
            "time=2026-11-26T22:10:00.123Z level=debug msg=x k=\"a=b\"\n");
}

TEST(LogFormatTest, TextIsForPeople) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kWarning, "webhook refused",
                          {{"reason", "signature_mismatch"}, {"peer", "127.0.0.1:5"}}),
            "2026-11-26T22:10:00.123Z WARNING webhook refused reason=signature_mismatch "
            "peer=127.0.0.1:5\n");
}

TEST(LogFormatTest, ParsesNamesCaseInsensitively) {
  EXPECT_EQ(ParseLogLevel("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("warn"), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("warning"), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("loud"), std::nullopt);
  EXPECT_EQ(ParseLogFormat("JSON"), LogFormat::kJson);
  EXPECT_EQ(ParseLogFormat("logfmt"), LogFormat::kLogfmt);
  EXPECT_EQ(ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(ParseLogFormat("xml"), std::nullopt);
}

TEST(LogLevelTest, LinesBelowTheLevelAreDisabled) {
  SetMinLogLevel(LogLevel::kWarning);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kWarning));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  SetMinLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace sidestream
