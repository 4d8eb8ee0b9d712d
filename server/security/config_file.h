// Reading the small text files the server is configured with (tokens,
// allow-lists), with errors that name the file and the flag.
#ifndef SIDESTREAM_SERVER_SECURITY_CONFIG_FILE_H_
#define SIDESTREAM_SERVER_SECURITY_CONFIG_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sidestream {

// The whole content of `path`, a regular file of at most 16 MiB. `what`
// names it in errors ("--grpc_tokens_file"). NOT_FOUND when missing,
// PERMISSION_DENIED when unreadable, FAILED_PRECONDITION when not a regular
// file or too large.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path, absl::string_view what);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_SECURITY_CONFIG_FILE_H_
