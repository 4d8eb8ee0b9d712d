// Access tokens for the gRPC API (and the admin listener's /metrics): who may
// call, and which events each caller may see.
//
// Tokens come from a file (--grpc_tokens_file), never from argv. One token per
// line, fields separated by spaces or tabs; '#' starts a comment line:
//
//   name=svc-billing token=<32+ chars> admin=false accounts=acct_1,acct_2
//     types=invoice.*,charge.succeeded livemode=live     (all on one line)
//
//   name      required; [A-Za-z0-9_.-], 1 to 64 chars, unique in the file.
//   token     required; 32 to 512 printable ASCII characters without spaces,
//             unique in the file. Only its SHA-256 digest is kept in memory.
//   admin     true|false (default false): may call the Admin service.
//   accounts  comma list of connected accounts ("acct_...") the token may
//             see, plus the word "platform" for the platform's own events.
//             Omitted or empty: every account and the platform.
//   types     comma list of event types: exact ("charge.succeeded"), a prefix
//             ("invoice.*") or "*". Omitted or empty: every type.
//   livemode  live|test|any (default any).
//
// Callers send "authorization: Bearer <token>" (gRPC metadata or HTTP
// header). A presented token is hashed and compared with every configured
// digest in constant time (CRYPTO_memcmp), so neither the comparison nor the
// loop reveals how much of a guess was right.
#ifndef SIDESTREAM_SERVER_SECURITY_TOKENS_H_
#define SIDESTREAM_SERVER_SECURITY_TOKENS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

#include "sidestream/v1/event.pb.h"

namespace sidestream {

inline constexpr size_t kMinTokenLength = 32;
inline constexpr size_t kMaxTokenLength = 512;

// What a token may see and do. The default scope allows every event but not
// Admin.
struct TokenScope {
  bool admin = false;
  // True: every connected account (and `accounts` is empty).
  bool any_account = true;
  // The connected accounts allowed when `any_account` is false.
  std::vector<std::string> accounts;
  // The platform's own events (no account) are allowed.
  bool platform = true;
  // Entries "a.b" (exact) or "a.*" (prefix). Empty: every type.
  std::vector<std::string> types;
  v1::Livemode livemode = v1::LIVEMODE_ANY;
};

// A configured token: its name (for logs and messages) and scope. The
// secret itself is kept only as a digest.
struct Token {
  std::string name;
  std::array<uint8_t, 32> digest{};
  TokenScope scope;

  // True when the event (type, account, livemode) is inside the scope.
  bool Covers(absl::string_view type, absl::string_view account, bool livemode) const;

  // OK when every event `filter` can match is inside the scope;
  // PERMISSION_DENIED naming the token and the part that exceeds it
  // otherwise. A filter that leaves a dimension open (no accounts, no types,
  // livemode any) while the scope restricts it exceeds the scope. The filter
  // is assumed valid (EventFilter::Create accepted it).
  absl::Status CheckFilter(const v1::EventFilter& filter) const;

  // OK for admin tokens; PERMISSION_DENIED naming the token otherwise.
  absl::Status CheckAdmin() const;
};

// An immutable set of tokens, as loaded from one file.
class TokenSet {
 public:
  // Parses the file format above. INVALID_ARGUMENT naming `source` and the
  // line (never the token's value) for the first bad line: unknown or
  // repeated field, missing name or token, short token, duplicate name or
  // token, bad account, type or livemode. An empty set (only comments) is
  // INVALID_ARGUMENT too: it would lock every caller out.
  static absl::StatusOr<TokenSet> Parse(absl::string_view text, absl::string_view source);
  // Reads and parses `path`. NOT_FOUND / PERMISSION_DENIED when unreadable.
  static absl::StatusOr<TokenSet> Load(const std::string& path);

  // The token whose secret is `secret`, or null. Constant time in the
  // secret's content (it depends only on the number of tokens).
  const Token* Find(absl::string_view secret) const;

  const std::vector<Token>& tokens() const { return tokens_; }

 private:
  std::vector<Token> tokens_;
};

// Decides who is calling. Thread-safe; the token set can be replaced while
// calls are in flight (each call keeps the set it authenticated against).
class Authorizer {
 public:
  // `tokens` null: open access (no token file): every caller is Open().
  explicit Authorizer(std::shared_ptr<const TokenSet> tokens) : tokens_(std::move(tokens)) {}

  // The token for an "Authorization: Bearer <token>" value (scheme
  // case-insensitive). With open access: Open(), whatever was sent.
  // UNAUTHENTICATED (without echoing the value) when the header is missing,
  // malformed or names no configured token.
  absl::StatusOr<std::shared_ptr<const Token>> Authenticate(
      std::optional<absl::string_view> authorization) const;

  // Replaces the token set (null: open access). Calls already authenticated
  // keep the token they got.
  void SetTokens(std::shared_ptr<const TokenSet> tokens);

  // False with open access.
  bool enabled() const;

  // The principal of open access: named "(open)", admin, unrestricted.
  static std::shared_ptr<const Token> Open();

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenSet> tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sidestream

#endif  // SIDESTREAM_SERVER_SECURITY_TOKENS_H_
