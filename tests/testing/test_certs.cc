#include "tests/testing/test_certs.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

constexpr char kOpensslConfig[] = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
)";

absl::Status Openssl(const std::vector<std::string>& args) {
  static const std::string openssl = FindInPath("openssl");
  if (openssl.empty()) return absl::NotFoundError("openssl not found in PATH (scripts/setup)");
  std::vector<std::string> argv = {openssl};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv, {}, absl::Seconds(60));
  if (r.code != 0) {
    return absl::InternalError(absl::StrCat("openssl ", args[0], " failed: ", r.stderr_text));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<Pki> MakePki(const std::string& dir, const std::string& name) {
  const std::string config = absl::StrCat(dir, "/openssl.cnf");
  {
    std::ofstream out(config);
    out << kOpensslConfig;
  }
  Pki pki;
  const std::string p = absl::StrCat(dir, "/", name);
  pki.ca = p + "-ca.pem";
  const std::string ca_key = p + "-ca.key";
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                       "-nodes"};
  std::vector<std::string> args = {
      "req",  "-x509", "-config", config,  "-extensions", "ca_ext", "-keyout",
      ca_key, "-out",  pki.ca,    "-days", "2",           "-subj",  "/CN=" + name + " test CA"};
  args.insert(args.end(), ec.begin(), ec.end());
  if (absl::Status s = Openssl(args); !s.ok()) return s;
  int serial = 1;
  for (auto [kind, cert, key] : {std::tuple{"server", &pki.server_cert, &pki.server_key},
                                 std::tuple{"client", &pki.client_cert, &pki.client_key}}) {
    *cert = absl::StrCat(p, "-", kind, ".pem");
    *key = absl::StrCat(p, "-", kind, ".key");
    const std::string csr = absl::StrCat(p, "-", kind, ".csr");
    args = {"req", "-new", "-config", config,  "-keyout",
            *key,  "-out", csr,       "-subj", absl::StrCat("/CN=", name, " ", kind)};
    args.insert(args.end(), ec.begin(), ec.end());
    if (absl::Status s = Openssl(args); !s.ok()) return s;
    if (absl::Status s =
            Openssl({"x509", "-req", "-in", csr, "-CA", pki.ca, "-CAkey", ca_key, "-set_serial",
                     absl::StrCat(++serial), "-days", "2", "-extfile", config, "-extensions",
                     absl::StrCat(kind, "_ext"), "-out", *cert});
        !s.ok()) {
      return s;
    }
  }
  return pki;
}

}  // namespace sidestream::testing
