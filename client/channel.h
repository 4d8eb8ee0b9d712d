// How a client reaches Sidestream's gRPC API: the channel (plain text, TLS
// or mutual TLS, from PEM files) and the access token sent with every call.
//
// The token travels as per-call metadata ("authorization: Bearer <token>"),
// added by AccessToken::ApplyTo() to each grpc::ClientContext, rather than
// as grpc::CallCredentials: gRPC refuses call credentials on an insecure
// channel, and a token over plain text is legitimate on loopback (the
// server's default deployment). One mechanism therefore serves both.
//
// Example:
//   ConnectionOptions options;
//   options.target = "dns:///sidestream.internal:50051";
//   options.token_file = "/etc/sidestream/token";
//   options.tls.ca_file = "/etc/sidestream/ca.pem";
//   absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(options);
//   if (!channel.ok()) return channel.status();
//   absl::StatusOr<AccessToken> token = AccessToken::FromFile(options.token_file);
//   if (!token.ok()) return token.status();
//   grpc::ClientContext context;
//   token->ApplyTo(&context);
//   stub->GetEvent(&context, request, &response);
//
// Thread safety: all functions are thread-compatible; an AccessToken may be
// applied from several threads at once.
#ifndef SIDESTREAM_CLIENT_CHANNEL_H_
#define SIDESTREAM_CLIENT_CHANNEL_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include <grpcpp/grpcpp.h>

namespace sidestream {

// TLS for the gRPC channel. TLS is on when any field is set; all empty
// means plain text, which suits a loopback server only.
struct TlsOptions {
  // PEM file of the CA certificates that may sign the server's certificate.
  // Empty: the system's default roots (gRPC's bundled or configured roots).
  std::string ca_file;
  // PEM files of the client certificate (chain, leaf first) and its private
  // key, for a server that requires client certificates (mTLS). Set both or
  // neither.
  std::string cert_file;
  std::string key_file;
  // The name to check the server's certificate against, instead of the
  // target's host: for connecting by IP address or through a tunnel to a
  // server whose certificate names a DNS name. Empty: the target's host.
  std::string server_name;

  bool enabled() const {
    return !ca_file.empty() || !cert_file.empty() || !key_file.empty() || !server_name.empty();
  }
};

struct ConnectionOptions {
  // gRPC target, such as "127.0.0.1:50051" or "dns:///sidestream.internal:50051".
  std::string target;
  // File holding the access token (nothing else but surrounding whitespace).
  // Empty: calls carry no token, as a server without --grpc_tokens_file
  // expects. Tokens are read from files, never taken from a command line
  // where other users could see them.
  std::string token_file;
  TlsOptions tls;
};

// The channel credentials for `tls`: insecure when TLS is off, otherwise SSL
// credentials from the PEM files. INVALID_ARGUMENT for a certificate without
// a key (or the reverse) and for a file that holds no PEM block of the
// expected kind; NOT_FOUND or PERMISSION_DENIED for a file that cannot be
// read. Messages name the file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& tls);

// A channel to `options.target` with the credentials of `options.tls` and
// `args` (plus the server-name override when `tls.server_name` is set).
// Connects lazily, as every gRPC channel does: a server that is down or a
// TLS handshake that fails shows up as UNAVAILABLE on the first call. Errors
// as MakeChannelCredentials(), and INVALID_ARGUMENT for an empty target.
// Does not read the token: see AccessToken.
absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(
    const ConnectionOptions& options, grpc::ChannelArguments args = grpc::ChannelArguments());

// An access token, to be attached to each call.
class AccessToken {
 public:
  // No token: ApplyTo() adds nothing.
  AccessToken() = default;

  // Reads the token from `path`, trimmed of surrounding whitespace. An empty
  // path gives no token. NOT_FOUND or PERMISSION_DENIED when the file cannot
  // be read; INVALID_ARGUMENT when it is empty or holds more than one word
  // or characters that cannot travel in a header. Messages name the file,
  // never the token.
  static absl::StatusOr<AccessToken> FromFile(const std::string& path);

  bool empty() const { return token_.empty(); }

  // Adds "authorization: Bearer <token>" to `context`, unless empty().
  void ApplyTo(grpc::ClientContext* context) const;

 private:
  explicit AccessToken(std::string token) : token_(std::move(token)) {}

  std::string token_;
};

}  // namespace sidestream

#endif  // SIDESTREAM_CLIENT_CHANNEL_H_
