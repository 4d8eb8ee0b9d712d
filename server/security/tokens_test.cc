#include "server/security/tokens.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecretA[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kSecretB[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

TokenSet MustParse(absl::string_view text) {
  absl::StatusOr<TokenSet> set = TokenSet::Parse(text, "tokens");
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *std::move(set) : TokenSet();
}

Token ParseOne(absl::string_view fields) {
  TokenSet set = MustParse(absl::StrCat("name=t token=", kSecretA, " ", fields));
  return set.tokens().empty() ? Token() : set.tokens()[0];
}

v1::EventFilter Filter(std::vector<std::string> types, std::vector<std::string> accounts,
                       v1::Livemode livemode = v1::LIVEMODE_UNSPECIFIED,
                       v1::Origin origin = v1::ORIGIN_UNSPECIFIED) {
  v1::EventFilter f;
  for (auto& t : types) f.add_types(t);
  for (auto& a : accounts) f.add_accounts(a);
  f.set_livemode(livemode);
  f.set_origin(origin);
  return f;
}

TEST(TokenSetTest, ParsesEveryField) {
  TokenSet set = MustParse(absl::StrCat(
      "# comment\n\n"
      "name=svc-billing token=",
      kSecretA,
      " admin=false accounts=acct_1,platform types=invoice.*,charge.succeeded livemode=live\n"
      "  name=ops\ttoken=",
      kSecretB, " admin=true  \n"));
  ASSERT_EQ(set.tokens().size(), 2u);
  const Token& billing = set.tokens()[0];
  EXPECT_EQ(billing.name, "svc-billing");
  EXPECT_FALSE(billing.scope.admin);
  EXPECT_FALSE(billing.scope.any_account);
  EXPECT_TRUE(billing.scope.platform);
  EXPECT_THAT(billing.scope.accounts, ::testing::ElementsAre("acct_1"));
  EXPECT_THAT(billing.scope.types, ::testing::ElementsAre("invoice.*", "charge.succeeded"));
  EXPECT_EQ(billing.scope.livemode, v1::LIVEMODE_LIVE);
  const Token& ops = set.tokens()[1];
  EXPECT_TRUE(ops.scope.admin);
  EXPECT_TRUE(ops.scope.any_account);
  EXPECT_TRUE(ops.scope.types.empty());
  EXPECT_EQ(ops.scope.livemode, v1::LIVEMODE_ANY);
}

TEST(TokenSetTest, ErrorsNameTheLineAndNeverTheSecret) {
  const std::string short_secret = "tooshort-secret-value";
  struct Case {
    std::string text;
    std::string expected;
  } cases[] = {
      {absl::StrCat("name=a token=", short_secret), "line 1: token must be 32"},
      {absl::StrCat("\n\nname=a token=", kSecretA, " colour=blue"), "line 3: unknown field"},
      {absl::StrCat("token=", kSecretA), "line 1: missing name"},
      {"name=a admin=true", "line 1: token \"a\": missing token"},
      {absl::StrCat("name=a token=", kSecretA, " name=b"), "appears twice"},
      {absl::StrCat("name=a token=", kSecretA, "\nname=a token=", kSecretB),
       "line 2: name \"a\" is used twice"},
      {absl::StrCat("name=a token=", kSecretA, "\nname=b token=", kSecretA),
       "line 2: token \"b\" has the same secret as \"a\""},
      {absl::StrCat("name=a token=", kSecretA, " admin=yes"), "admin must be true or false"},
      {absl::StrCat("name=a token=", kSecretA, " accounts=bob"), "accounts: \"bob\""},
      {absl::StrCat("name=a token=", kSecretA, " types=Invoice"), "types: \"Invoice\""},
      {absl::StrCat("name=a token=", kSecretA, " livemode=prod"), "livemode must be"},
      {absl::StrCat("name=a token=", kSecretA, " justaword"), "without '='"},
      {"name=bad/name token=x", "name must be"},
      {"# only a comment\n", "no tokens"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TokenSet> set = TokenSet::Parse(c.text, "tokens");
    ASSERT_FALSE(set.ok()) << c.text;
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(set.status().message(), HasSubstr(c.expected)) << c.text;
    EXPECT_THAT(set.status().message(), Not(HasSubstr(kSecretA)));
    EXPECT_THAT(set.status().message(), Not(HasSubstr(short_secret)));
  }
}

TEST(TokenSetTest, FindsByExactSecretOnly) {
  TokenSet set =
      MustParse(absl::StrCat("name=a token=", kSecretA, "\nname=b token=", kSecretB, "\n"));
  ASSERT_NE(set.Find(kSecretA), nullptr);
  EXPECT_EQ(set.Find(kSecretA)->name, "a");
  ASSERT_NE(set.Find(kSecretB), nullptr);
  EXPECT_EQ(set.Find(kSecretB)->name, "b");
  EXPECT_EQ(set.Find(std::string(kSecretA) + "a"), nullptr);
  EXPECT_EQ(set.Find(std::string(kSecretA).substr(1)), nullptr);
  EXPECT_EQ(set.Find(""), nullptr);
}

TEST(AuthorizerTest, OpenAccessWithoutTokens) {
  Authorizer authorizer(nullptr);
  EXPECT_FALSE(authorizer.enabled());
  absl::StatusOr<std::shared_ptr<const Token>> token = authorizer.Authenticate(std::nullopt);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ((*token)->name, "(open)");
  EXPECT_TRUE((*token)->CheckAdmin().ok());
}

TEST(AuthorizerTest, BearerTokenAuthenticates) {
  Authorizer authorizer(
      std::make_shared<TokenSet>(MustParse(absl::StrCat("name=a token=", kSecretA))));
  EXPECT_TRUE(authorizer.enabled());
  for (const std::string& header :
       {absl::StrCat("Bearer ", kSecretA), absl::StrCat("bearer  ", kSecretA)}) {
    absl::StatusOr<std::shared_ptr<const Token>> token = authorizer.Authenticate(header);
    ASSERT_TRUE(token.ok()) << header;
    EXPECT_EQ((*token)->name, "a");
  }
}

TEST(AuthorizerTest, MissingMalformedOrWrongTokenIsUnauthenticated) {
  Authorizer authorizer(
      std::make_shared<TokenSet>(MustParse(absl::StrCat("name=a token=", kSecretA))));
  const std::string wrong = absl::StrCat("Bearer ", kSecretB);
  for (const std::optional<absl::string_view>& header :
       {std::optional<absl::string_view>(), std::optional<absl::string_view>(kSecretA),
        std::optional<absl::string_view>("Basic abc"), std::optional<absl::string_view>("Bearer"),
        std::optional<absl::string_view>(wrong)}) {
    absl::StatusOr<std::shared_ptr<const Token>> token = authorizer.Authenticate(header);
    ASSERT_FALSE(token.ok());
    EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(token.status().message(), Not(HasSubstr(kSecretB)));
  }
}

TEST(AuthorizerTest, TokensReplacedWhileATokenIsHeldStayValid) {
  Authorizer authorizer(
      std::make_shared<TokenSet>(MustParse(absl::StrCat("name=a token=", kSecretA))));
  absl::StatusOr<std::shared_ptr<const Token>> held =
      authorizer.Authenticate(absl::StrCat("Bearer ", kSecretA));
  ASSERT_TRUE(held.ok());
  authorizer.SetTokens(
      std::make_shared<TokenSet>(MustParse(absl::StrCat("name=b token=", kSecretB))));
  EXPECT_EQ((*held)->name, "a");  // still readable: the old set is kept alive
  EXPECT_EQ(authorizer.Authenticate(absl::StrCat("Bearer ", kSecretA)).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(authorizer.Authenticate(absl::StrCat("Bearer ", kSecretB)).ok());
}

TEST(TokenScopeTest, AdminNeedsAdminTrue) {
  EXPECT_TRUE(ParseOne("admin=true").CheckAdmin().ok());
  absl::Status s = ParseOne("").CheckAdmin();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("token \"t\""));
}

TEST(TokenScopeTest, UnrestrictedTokenAllowsEveryFilter) {
  Token t = ParseOne("");
  EXPECT_TRUE(t.CheckFilter(v1::EventFilter()).ok());
  EXPECT_TRUE(t.CheckFilter(Filter({"*"}, {"acct_9"}, v1::LIVEMODE_TEST)).ok());
}

TEST(TokenScopeTest, AccountScope) {
  Token t = ParseOne("accounts=acct_1,acct_2");
  EXPECT_TRUE(t.CheckFilter(Filter({}, {"acct_1"})).ok());
  EXPECT_TRUE(t.CheckFilter(Filter({}, {"acct_1", "acct_2"})).ok());
  absl::Status other = t.CheckFilter(Filter({}, {"acct_1", "acct_3"}));
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("account acct_3 is outside"));
  // Omitting accounts means "all accounts": beyond the scope.
  absl::Status omitted = t.CheckFilter(Filter({}, {}));
  EXPECT_EQ(omitted.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(omitted.message(), HasSubstr("every connected account"));
  EXPECT_THAT(omitted.message(), HasSubstr("token \"t\""));
  // The platform's own events are not in this scope.
  EXPECT_EQ(t.CheckFilter(Filter({}, {}, v1::LIVEMODE_ANY, v1::ORIGIN_PLATFORM)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(t.Covers("charge.succeeded", "acct_2", true));
  EXPECT_FALSE(t.Covers("charge.succeeded", "acct_3", true));
  EXPECT_FALSE(t.Covers("charge.succeeded", "", true));
}

TEST(TokenScopeTest, PlatformScope) {
  Token t = ParseOne("accounts=platform");
  EXPECT_TRUE(t.CheckFilter(Filter({}, {}, v1::LIVEMODE_ANY, v1::ORIGIN_PLATFORM)).ok());
  EXPECT_EQ(t.CheckFilter(Filter({}, {})).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(t.CheckFilter(Filter({}, {"acct_1"})).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(t.Covers("payout.paid", "", false));
  EXPECT_FALSE(t.Covers("payout.paid", "acct_1", false));
}

TEST(TokenScopeTest, TypeScope) {
  Token t = ParseOne("types=invoice.*,charge.succeeded");
  EXPECT_TRUE(t.CheckFilter(Filter({"invoice.paid"}, {})).ok());
  EXPECT_TRUE(t.CheckFilter(Filter({"invoice.*"}, {})).ok());
  EXPECT_TRUE(t.CheckFilter(Filter({"invoice.payment.*", "charge.succeeded"}, {})).ok());
  for (const std::vector<std::string>& types :
       std::vector<std::vector<std::string>>{{},
                                             {"*"},
                                             {"charge.*"},
                                             {"charge.failed"},
                                             {"invoice.paid", "payout.paid"},
                                             {"invoicex.paid"}}) {
    absl::Status s = t.CheckFilter(Filter(types, {}));
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << ::testing::PrintToString(types);
  }
  EXPECT_THAT(t.CheckFilter(Filter({"charge.*"}, {})).message(), HasSubstr("type charge.*"));
  EXPECT_TRUE(t.Covers("invoice.paid", "acct_1", true));
  EXPECT_TRUE(t.Covers("charge.succeeded", "", true));
  EXPECT_FALSE(t.Covers("charge.failed", "", true));
}

TEST(TokenScopeTest, LivemodeScope) {
  Token t = ParseOne("livemode=test");
  EXPECT_TRUE(t.CheckFilter(Filter({}, {}, v1::LIVEMODE_TEST)).ok());
  for (v1::Livemode mode : {v1::LIVEMODE_UNSPECIFIED, v1::LIVEMODE_ANY, v1::LIVEMODE_LIVE}) {
    absl::Status s = t.CheckFilter(Filter({}, {}, mode));
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(s.message(), HasSubstr("LIVEMODE_TEST"));
  }
  EXPECT_TRUE(t.Covers("a.b", "", false));
  EXPECT_FALSE(t.Covers("a.b", "", true));
}

}  // namespace
}  // namespace sidestream
