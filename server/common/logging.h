// Sidestream's logging facade.
//
// Debian 12's Abseil has no absl/log, so the server logs through this small
// header. One line per message on stderr: time, level, message. Thread-safe.
// Functions that return an absl::Status do not also log it; the caller that
// decides what to do with the error logs it.
#ifndef SIDESTREAM_SERVER_COMMON_LOGGING_H_
#define SIDESTREAM_SERVER_COMMON_LOGGING_H_

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sidestream {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are dropped. Default kInfo.
void SetMinLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// Writes one line. Prefer the LOG_* macros, which skip formatting when the
// level is disabled.
void LogLine(LogLevel level, absl::string_view message);

}  // namespace sidestream

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

#endif  // SIDESTREAM_SERVER_COMMON_LOGGING_H_
