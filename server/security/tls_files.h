// Checks of certificate and key files before a listener uses them, so that a
// bad file is refused at start-up (or on reload) with a message naming it,
// instead of every handshake failing later.
#ifndef SIDESTREAM_SERVER_SECURITY_TLS_FILES_H_
#define SIDESTREAM_SERVER_SECURITY_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sidestream {

// Loads a PEM certificate chain and its private key and checks that they
// belong together. Returns a one-line description of the leaf certificate
// ("subject=CN=..., expires 2026-01-01T00:00:00Z"; no secret material) for
// logs. INVALID_ARGUMENT naming the flags and what is wrong otherwise.
absl::StatusOr<std::string> CheckCertificateAndKey(const std::string& cert_file,
                                                   const std::string& key_file,
                                                   absl::string_view flag_prefix);

// Loads a PEM file of CA certificates (at least one). Returns a description
// ("2 CA certificate(s)").
absl::StatusOr<std::string> CheckCaFile(const std::string& ca_file, absl::string_view flag);

// The whole content of a PEM file, for libraries that take PEM text.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view flag);

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_SECURITY_TLS_FILES_H_
