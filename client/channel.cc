#include "client/channel.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sidestream {
namespace {

// Reads a whole file. `what` names it in messages ("access token file").
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, absl::string_view what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot read the ", what, " ", path, ": ", std::strerror(error));
    return error == EACCES ? absl::PermissionDeniedError(message) : absl::NotFoundError(message);
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat("error reading the ", what, " ", path));
  return std::move(contents).str();
}

// Reads a PEM file and checks that it holds a block whose label ends with
// `label_suffix` ("CERTIFICATE", "PRIVATE KEY"), so that a wrong file
// fails here with its name rather than in the handshake with an OpenSSL
// code.
absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view what,
                                    absl::string_view label_suffix) {
  absl::StatusOr<std::string> text = ReadWholeFile(path, what);
  if (!text.ok()) return text.status();
  if (!absl::StrContains(*text, absl::StrCat(label_suffix, "-----"))) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " ", path, " holds no PEM ", label_suffix));
  }
  return text;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client certificate needs its key and the reverse: set both the certificate file "
        "and the key file, or neither");
  }
  grpc::SslCredentialsOptions ssl;
  if (!tls.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(tls.ca_file, "TLS CA file", "CERTIFICATE");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!tls.cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        ReadPem(tls.cert_file, "TLS client certificate file", "CERTIFICATE");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(tls.key_file, "TLS client key file", "PRIVATE KEY");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const ConnectionOptions& options,
                                                       grpc::ChannelArguments args) {
  if (options.target.empty()) return absl::InvalidArgumentError("the server target is empty");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  if (!options.tls.server_name.empty()) args.SetSslTargetNameOverride(options.tls.server_name);
  return grpc::CreateCustomChannel(options.target, *credentials, args);
}

absl::StatusOr<AccessToken> AccessToken::FromFile(const std::string& path) {
  if (path.empty()) return AccessToken();
  absl::StatusOr<std::string> text = ReadWholeFile(path, "access token file");
  if (!text.ok()) return text.status();
  const absl::string_view token = absl::StripAsciiWhitespace(*text);
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the access token file ", path, " is empty"));
  }
  for (const unsigned char c : token) {
    // Printable ASCII without spaces: what a metadata value may carry, and
    // what the server accepts as a token.
    if (c <= 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the access token file ", path,
          " must hold only the token (printable characters without spaces), on one line"));
    }
  }
  return AccessToken(std::string(token));
}

void AccessToken::ApplyTo(grpc::ClientContext* context) const {
  if (!token_.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
}

}  // namespace sidestream
