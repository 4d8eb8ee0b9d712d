// Test certificates generated at test time with the `openssl` command-line
// tool (found in PATH): a CA with a server certificate for 127.0.0.1 and a
// client certificate, valid for two days. Tests that need TLS make one or
// more such sets in their temporary directory; nothing is checked in.
#ifndef SIDESTREAM_TESTS_TESTING_TEST_CERTS_H_
#define SIDESTREAM_TESTS_TESTING_TEST_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace sidestream::testing {

// PEM file paths of one CA and the certificates it signed. The server
// certificate has the subjectAltName IP:127.0.0.1 and extendedKeyUsage
// serverAuth; the client certificate has clientAuth. Subjects are
// "<name> test CA", "<name> server" and "<name> client".
struct Pki {
  std::string ca, server_cert, server_key, client_cert, client_key;
};

// Makes a CA called `name` and its two certificates, as files
// "<dir>/<name>-*.pem" and "<dir>/<name>-*.key" (P-256 keys). NOT_FOUND when
// openssl is not in PATH; INTERNAL with openssl's stderr when it fails.
absl::StatusOr<Pki> MakePki(const std::string& dir, const std::string& name);

// The full path of executable `name` in PATH, or "".
std::string FindInPath(const std::string& name);

}  // namespace sidestream::testing

#endif  // SIDESTREAM_TESTS_TESTING_TEST_CERTS_H_
