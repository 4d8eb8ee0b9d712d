// Sidestream's logging facade.
//
// Debian 12's Abseil has no absl/log, so the server logs through this small
// header. One line per message on stderr, in one of three formats:
//
//   json    {"time":"2026-11-26T22:10:00.123Z","level":"info","msg":"webhook
//   stored","event_id":"evt_1"} logfmt  time=2026-11-26T22:10:00.123Z level=info msg="webhook
//   stored" event_id=evt_1 text    2026-11-26T22:10:00.123Z INFO webhook stored event_id=evt_1
//
// A message is a short constant sentence; what varies goes into fields
// (event_id, type, account, reason, peer, ...), so that log pipelines can
// filter on them. Secrets and payloads are never logged: fields carry ids,
// labels and short reasons only. Thread-safe; lines never interleave.
//
// Functions that return an absl::Status do not also log it; the caller that
// decides what to do with the error logs it.
#ifndef SIDESTREAM_SERVER_COMMON_LOGGING_H_
#define SIDESTREAM_SERVER_COMMON_LOGGING_H_

#include <initializer_list>
#include <optional>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sidestream {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kJson, kLogfmt, kText };

// Messages below `level` are dropped. Default kInfo.
void SetMinLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Default kText until main() applies --log_format (whose default is json).
void SetLogFormat(LogFormat format);

// "debug", "info", "warning" (or "warn"), "error"; case-insensitive.
std::optional<LogLevel> ParseLogLevel(absl::string_view name);
// "json", "logfmt", "text"; case-insensitive.
std::optional<LogFormat> ParseLogFormat(absl::string_view name);

// One key=value pair of a log line. The value is copied, so any StrCat-able
// argument works: {"sequence", 42}, {"peer", peer}.
struct LogField {
  LogField(absl::string_view k, const absl::AlphaNum& v) : key(k), value(v.Piece()) {}
  // Exactly bool (a template, so that integers never convert to it).
  template <typename T, typename = std::enable_if_t<std::is_same_v<T, bool>>>
  LogField(absl::string_view k, T v) : key(k), value(v ? "true" : "false") {}
  absl::string_view key;  // a constant identifier: [a-z_]+
  std::string value;
};

// Formats one line (without writing it); `time` is already formatted.
std::string FormatLogLine(LogFormat format, absl::string_view time, LogLevel level,
                          absl::string_view message, std::initializer_list<LogField> fields);

// Writes one line. Prefer the LOG_* macros, which skip formatting when the
// level is disabled.
void LogLine(LogLevel level, absl::string_view message,
             std::initializer_list<LogField> fields = {});

}  // namespace sidestream

// LOG_INFO("text ", value, " more"): a message built with StrCat, no fields.
#define SIDESTREAM_LOG(level, ...)                               \
  do {                                                           \
    if (::sidestream::LogEnabled(level)) {                       \
      ::sidestream::LogLine(level, ::absl::StrCat(__VA_ARGS__)); \
    }                                                            \
  } while (0)
#define LOG_DEBUG(...) SIDESTREAM_LOG(::sidestream::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) SIDESTREAM_LOG(::sidestream::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARNING(...) SIDESTREAM_LOG(::sidestream::LogLevel::kWarning, __VA_ARGS__)
#define LOG_ERROR(...) SIDESTREAM_LOG(::sidestream::LogLevel::kError, __VA_ARGS__)

// LOG_FIELDS(kInfo, "webhook stored", {"event_id", id}, {"sequence", seq}):
// a constant message and structured fields.
#define LOG_FIELDS(level, message, ...)                                             \
  do {                                                                              \
    if (::sidestream::LogEnabled(::sidestream::LogLevel::level)) {                  \
      ::sidestream::LogLine(::sidestream::LogLevel::level, message, {__VA_ARGS__}); \
    }                                                                               \
  } while (0)

#endif  // SIDESTREAM_SERVER_COMMON_LOGGING_H_
