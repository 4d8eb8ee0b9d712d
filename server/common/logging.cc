#include "server/common/logging.h"

#include <atomic>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "server/common/json_quote.h"

namespace sidestream {
namespace {

std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}

// logfmt values are bare when they hold no space, quote, '=' or control
// character; otherwise quoted with JSON escapes (what logfmt parsers read).
void AppendLogfmtValue(std::string* out, absl::string_view value) {
  bool bare = !value.empty();
  for (unsigned char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
      bare = false;
      break;
    }
  }
  if (bare) {
    out->append(value.data(), value.size());
  } else {
    out->append(JsonQuote(value));
  }
}

}  // namespace

void SetMinLogLevel(LogLevel level) { g_min_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_min_level.load(); }

void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }

std::optional<LogLevel> ParseLogLevel(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "debug") return LogLevel::kDebug;
  if (n == "info") return LogLevel::kInfo;
  if (n == "warning" || n == "warn") return LogLevel::kWarning;
  if (n == "error") return LogLevel::kError;
  return std::nullopt;
}

std::optional<LogFormat> ParseLogFormat(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "json") return LogFormat::kJson;
  if (n == "logfmt") return LogFormat::kLogfmt;
  if (n == "text") return LogFormat::kText;
  return std::nullopt;
}

std::string FormatLogLine(LogFormat format, absl::string_view time, LogLevel level,
                          absl::string_view message, std::initializer_list<LogField> fields) {
  std::string line;
  switch (format) {
    case LogFormat::kJson:
      absl::StrAppend(&line, "{\"time\":\"", time, "\",\"level\":\"", LevelName(level),
                      "\",\"msg\":", JsonQuote(message));
      for (const LogField& f : fields) {
        absl::StrAppend(&line, ",", JsonQuote(f.key), ":", JsonQuote(f.value));
      }
      line += "}";
      break;
    case LogFormat::kLogfmt:
      absl::StrAppend(&line, "time=", time, " level=", LevelName(level), " msg=");
      AppendLogfmtValue(&line, message);
      for (const LogField& f : fields) {
        absl::StrAppend(&line, " ", f.key, "=");
        AppendLogfmtValue(&line, f.value);
      }
      break;
    case LogFormat::kText:
      absl::StrAppend(&line, time, " ", absl::AsciiStrToUpper(LevelName(level)), " ", message);
      for (const LogField& f : fields) {
        absl::StrAppend(&line, " ", f.key, "=");
        AppendLogfmtValue(&line, f.value);
      }
      break;
  }
  line += "\n";
  return line;
}

void LogLine(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields) {
  const std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::string line =
      FormatLogLine(static_cast<LogFormat>(g_format.load()), time, level, message, fields);
  // One fwrite per line: stdio locks the stream, so lines never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace sidestream
