#include "server/security/tokens.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "server/common/stripe_ids.h"
#include "server/security/config_file.h"

namespace sidestream {
namespace {

std::array<uint8_t, 32> Digest(absl::string_view secret) {
  std::array<uint8_t, 32> digest;
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest.data());
  return digest;
}

bool IsTokenName(absl::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

// An exact type is covered by the same type or a prefix of it; a prefix
// ("a.b." with the trailing dot) by a shorter or equal prefix only.
bool TypeCovered(const std::vector<std::string>& scope, absl::string_view type, bool is_prefix) {
  for (absl::string_view entry : scope) {
    if (absl::ConsumeSuffix(&entry, "*")) {
      if (absl::StartsWith(type, entry)) return true;  // entry keeps its '.'
    } else if (!is_prefix && entry == type) {
      return true;
    }
  }
  return false;
}

std::string DescribeAccounts(const TokenScope& scope) {
  std::string out =
      scope.accounts.empty() ? "no connected account" : absl::StrJoin(scope.accounts, ", ");
  absl::StrAppend(
      &out, scope.platform ? " and the platform's own events" : " (not the platform's own events)");
  return out;
}

absl::string_view LivemodeWord(v1::Livemode mode) {
  switch (mode) {
    case v1::LIVEMODE_LIVE:
      return "live";
    case v1::LIVEMODE_TEST:
      return "test";
    default:
      return "any";
  }
}

}  // namespace

bool Token::Covers(absl::string_view type, absl::string_view account, bool livemode) const {
  if (scope.livemode == v1::LIVEMODE_LIVE && !livemode) return false;
  if (scope.livemode == v1::LIVEMODE_TEST && livemode) return false;
  if (account.empty()) {
    if (!scope.platform) return false;
  } else if (!scope.any_account && std::find(scope.accounts.begin(), scope.accounts.end(),
                                             account) == scope.accounts.end()) {
    return false;
  }
  return scope.types.empty() || TypeCovered(scope.types, type, /*is_prefix=*/false);
}

absl::Status Token::CheckFilter(const v1::EventFilter& filter) const {
  auto denied = [&](absl::string_view what) {
    return absl::PermissionDeniedError(
        absl::StrCat("token \"", name, "\" may not subscribe with this filter: ", what));
  };
  if (scope.livemode != v1::LIVEMODE_ANY && filter.livemode() != scope.livemode) {
    return denied(absl::StrCat("its scope is livemode ", LivemodeWord(scope.livemode),
                               "; set filter.livemode to LIVEMODE_",
                               absl::AsciiStrToUpper(LivemodeWord(scope.livemode))));
  }
  const v1::Origin origin =
      filter.origin() == v1::ORIGIN_UNSPECIFIED ? v1::ORIGIN_ANY : filter.origin();
  if (filter.accounts().empty()) {
    const bool wants_connect = origin != v1::ORIGIN_PLATFORM;
    const bool wants_platform = origin != v1::ORIGIN_CONNECT;
    if (wants_connect && !scope.any_account) {
      return denied(absl::StrCat("the filter selects every connected account; the token may see ",
                                 DescribeAccounts(scope), ": list them in filter.accounts"));
    }
    if (wants_platform && !scope.platform) {
      return denied(
          absl::StrCat("the filter selects the platform's own events; the token may "
                       "see ",
                       DescribeAccounts(scope),
                       ": list accounts in filter.accounts or set filter.origin to "
                       "ORIGIN_CONNECT"));
    }
  } else if (!scope.any_account) {
    for (const std::string& account : filter.accounts()) {
      if (std::find(scope.accounts.begin(), scope.accounts.end(), account) ==
          scope.accounts.end()) {
        return denied(absl::StrCat("account ", account, " is outside its scope (",
                                   DescribeAccounts(scope), ")"));
      }
    }
  }
  if (!scope.types.empty()) {
    const auto& types = filter.types();
    if (types.empty() || std::find(types.begin(), types.end(), "*") != types.end()) {
      return denied(absl::StrCat("the filter selects every event type; the token may see types ",
                                 absl::StrJoin(scope.types, ", "), ": list them in filter.types"));
    }
    for (absl::string_view type : types) {
      const bool is_prefix = absl::ConsumeSuffix(&type, "*");  // keeps the '.'
      if (!TypeCovered(scope.types, type, is_prefix)) {
        return denied(absl::StrCat("type ", type, is_prefix ? "*" : "", " is outside its scope (",
                                   absl::StrJoin(scope.types, ", "), ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Token::CheckAdmin() const {
  if (scope.admin) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("token \"", name, "\" may not call the Admin service (it needs admin=true)"));
}

absl::StatusOr<TokenSet> TokenSet::Parse(absl::string_view text, absl::string_view source) {
  TokenSet set;
  absl::flat_hash_set<std::string> names;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(source, " line ", line_number, ": ", why));
    };
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    Token token;
    bool has_token = false;
    absl::flat_hash_set<std::string> seen;
    for (absl::string_view field :
         absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      const size_t eq = field.find('=');
      if (eq == absl::string_view::npos) {
        return bad(
            absl::StrCat("expected key=value fields (name=, token=, admin=, accounts=, "
                         "types=, livemode=); got a field without '='"));
      }
      const absl::string_view key = field.substr(0, eq);
      const absl::string_view value = field.substr(eq + 1);
      if (!seen.insert(std::string(key)).second) {
        return bad(absl::StrCat("field \"", key, "\" appears twice"));
      }
      if (key == "name") {
        if (!IsTokenName(value)) {
          return bad("name must be 1 to 64 of [A-Za-z0-9_.-]");
        }
        token.name = std::string(value);
      } else if (key == "token") {
        if (value.size() < kMinTokenLength || value.size() > kMaxTokenLength) {
          return bad(absl::StrCat("token must be ", kMinTokenLength, " to ", kMaxTokenLength,
                                  " characters (got ", value.size(),
                                  "); generate one with e.g. `openssl rand -hex 32`"));
        }
        if (!std::all_of(value.begin(), value.end(), [](char c) { return c > ' ' && c < 0x7f; })) {
          return bad("token must be printable ASCII without spaces");
        }
        token.digest = Digest(value);
        has_token = true;
      } else if (key == "admin") {
        if (value == "true") {
          token.scope.admin = true;
        } else if (value == "false") {
          token.scope.admin = false;
        } else {
          return bad("admin must be true or false");
        }
      } else if (key == "accounts") {
        if (value.empty()) continue;
        token.scope.any_account = false;
        token.scope.platform = false;
        for (absl::string_view account : absl::StrSplit(value, ',')) {
          if (account == "platform") {
            token.scope.platform = true;
          } else if (IsAccountId(account)) {
            token.scope.accounts.emplace_back(account);
          } else {
            return bad(absl::StrCat("accounts: \"", account,
                                    "\" is neither a connected account id (acct_...) nor "
                                    "\"platform\""));
          }
        }
      } else if (key == "types") {
        if (value.empty()) continue;
        std::vector<std::string> types;
        bool all = false;
        for (absl::string_view type : absl::StrSplit(value, ',')) {
          absl::string_view base = type;
          if (type == "*") {
            all = true;
          } else if (absl::ConsumeSuffix(&base, ".*") ? IsEventType(base) : IsEventType(type)) {
            types.emplace_back(type);
          } else {
            return bad(absl::StrCat("types: \"", type,
                                    "\" is not an event type (charge.succeeded), a prefix "
                                    "(invoice.*) or *"));
          }
        }
        if (!all) token.scope.types = std::move(types);
      } else if (key == "livemode") {
        if (value == "live") {
          token.scope.livemode = v1::LIVEMODE_LIVE;
        } else if (value == "test") {
          token.scope.livemode = v1::LIVEMODE_TEST;
        } else if (value == "any") {
          token.scope.livemode = v1::LIVEMODE_ANY;
        } else {
          return bad("livemode must be live, test or any");
        }
      } else {
        return bad(absl::StrCat("unknown field \"", key,
                                "\" (known: name, token, admin, accounts, types, livemode)"));
      }
    }
    if (token.name.empty()) return bad("missing name=");
    if (!has_token) return bad(absl::StrCat("token \"", token.name, "\": missing token="));
    if (!names.insert(token.name).second) {
      return bad(absl::StrCat("name \"", token.name, "\" is used twice"));
    }
    for (const Token& other : set.tokens_) {
      if (other.digest == token.digest) {
        return bad(absl::StrCat("token \"", token.name, "\" has the same secret as \"", other.name,
                                "\"; every token must be different"));
      }
    }
    set.tokens_.push_back(std::move(token));
  }
  if (set.tokens_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": no tokens (every line is empty or a comment); without a token "
                     "nobody could call the API. Remove the flag for open loopback "
                     "access, or add a line: name=NAME token=SECRET"));
  }
  return set;
}

absl::StatusOr<TokenSet> TokenSet::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadConfigFile(path, "--grpc_tokens_file");
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

const Token* TokenSet::Find(absl::string_view secret) const {
  const std::array<uint8_t, 32> digest = Digest(secret);
  const Token* found = nullptr;
  // Every digest is compared, whatever matched: the time does not depend on
  // which token (if any) was presented.
  for (const Token& token : tokens_) {
    if (CRYPTO_memcmp(token.digest.data(), digest.data(), digest.size()) == 0) found = &token;
  }
  return found;
}

absl::StatusOr<std::shared_ptr<const Token>> Authorizer::Authenticate(
    std::optional<absl::string_view> authorization) const {
  std::shared_ptr<const TokenSet> tokens;
  {
    absl::ReaderMutexLock lock(&mu_);
    tokens = tokens_;
  }
  if (tokens == nullptr) return Open();
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "missing access token: send the metadata \"authorization: Bearer <token>\"");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("malformed authorization: expected \"Bearer <token>\"");
  }
  value = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  const Token* token = tokens->Find(value);
  if (token == nullptr) {
    return absl::UnauthenticatedError("the access token is not valid (unknown or revoked)");
  }
  // Shares ownership of the whole set, so the token outlives a reload.
  return std::shared_ptr<const Token>(tokens, token);
}

void Authorizer::SetTokens(std::shared_ptr<const TokenSet> tokens) {
  absl::MutexLock lock(&mu_);
  tokens_ = std::move(tokens);
}

bool Authorizer::enabled() const {
  absl::ReaderMutexLock lock(&mu_);
  return tokens_ != nullptr;
}

std::shared_ptr<const Token> Authorizer::Open() {
  static const auto* const open = [] {
    auto* token = new std::shared_ptr<const Token>(std::make_shared<Token>([] {
      Token t;
      t.name = "(open)";
      t.scope.admin = true;
      return t;
    }()));
    return token;
  }();
  return *open;
}

}  // namespace sidestream
