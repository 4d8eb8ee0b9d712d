#include "server/security/config_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include <sys/stat.h>

namespace sidestream {

absl::StatusOr<std::string> ReadConfigFile(const std::string& path, absl::string_view what) {
  constexpr off_t kMaxBytes = 16 << 20;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::string msg = absl::StrCat("cannot read ", what, " ", path, ": ", std::strerror(err));
    return err == EACCES ? absl::PermissionDeniedError(msg) : absl::NotFoundError(msg);
  }
  if (!S_ISREG(st.st_mode) || st.st_size > kMaxBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", what, " ", path, ": not a regular file of at most 16 MiB"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    std::string msg = absl::StrCat("cannot read ", what, " ", path, ": ", std::strerror(err));
    return err == EACCES ? absl::PermissionDeniedError(msg) : absl::NotFoundError(msg);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", what, " ", path, ": I/O error"));
  }
  return ss.str();
}

}  // namespace sidestream
