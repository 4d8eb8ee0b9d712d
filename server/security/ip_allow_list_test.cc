#include "server/security/ip_allow_list.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sidestream {
namespace {

using ::testing::HasSubstr;

CidrList MustParse(absl::string_view text) {
  absl::StatusOr<CidrList> list = CidrList::Parse(text, "allow");
  EXPECT_TRUE(list.ok()) << list.status();
  return list.ok() ? *std::move(list) : CidrList();
}

IpAddress Ip(absl::string_view text) {
  std::optional<IpAddress> ip = IpAddress::Parse(text);
  EXPECT_TRUE(ip.has_value()) << text;
  return ip.value_or(IpAddress());
}

TEST(IpAddressTest, ParsesPeersAndMapsIpv4) {
  EXPECT_EQ(IpAddress::ParsePeer("1.2.3.4:5678")->ToString(), "1.2.3.4");
  EXPECT_EQ(IpAddress::ParsePeer("[2001:db8::1]:80")->ToString(), "2001:db8::1");
  EXPECT_EQ(Ip("::ffff:10.0.0.1").ToString(), "10.0.0.1");
  EXPECT_FALSE(IpAddress::Parse("example.com").has_value());
  EXPECT_FALSE(IpAddress::ParsePeer("unknown").has_value());
}

TEST(CidrListTest, MatchesAddressesAndNetworks) {
  CidrList list = MustParse("# Stripe\n3.18.12.63\n\n10.0.0.0/8\n  2001:db8::/32  \n");
  EXPECT_EQ(list.size(), 3u);
  EXPECT_TRUE(list.Contains(Ip("3.18.12.63")));
  EXPECT_FALSE(list.Contains(Ip("3.18.12.64")));
  EXPECT_TRUE(list.Contains(Ip("10.255.1.2")));
  EXPECT_TRUE(list.Contains(Ip("::ffff:10.1.1.1")));
  EXPECT_FALSE(list.Contains(Ip("11.0.0.1")));
  EXPECT_TRUE(list.Contains(Ip("2001:db8:ffff::1")));
  EXPECT_FALSE(list.Contains(Ip("2001:db9::1")));
}

TEST(CidrListTest, ErrorsNameTheLine) {
  for (const auto& [text, expected] : std::vector<std::pair<std::string, std::string>>{
           {"1.2.3.4\nbogus", "line 2: \"bogus\" is not an IP address"},
           {"10.0.0.0/33", "prefix length above 32"},
           {"10.0.0.1/8", "bits set below its /8"},
           {"10.0.0.0/", "bad prefix length"},
           {"10.0.0.0/+8", "bad prefix length"},
           {"2001:db8::/129", "above 128"}}) {
    absl::StatusOr<CidrList> list = CidrList::Parse(text, "allow");
    ASSERT_FALSE(list.ok()) << text;
    EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(list.status().message(), HasSubstr(expected));
  }
}

TEST(CidrListTest, CommaList) {
  absl::StatusOr<CidrList> list = CidrList::ParseCommaList("10.0.0.0/8, 127.0.0.1", "--x");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), 2u);
  EXPECT_FALSE(CidrList::ParseCommaList("10.0.0.0/8,nope", "--x").ok());
}

WebhookSourcePolicy Policy(absl::string_view allowed, absl::string_view trusted,
                           std::string header) {
  WebhookSourcePolicy policy;
  policy.allowed = MustParse(allowed);
  policy.trusted_proxies = MustParse(trusted);
  policy.proxy_header = std::move(header);
  return policy;
}

TEST(WebhookSourcePolicyTest, WithoutProxyHeaderThePeerIsTheClient) {
  WebhookSourcePolicy policy = Policy("3.18.12.63", "", "");
  EXPECT_TRUE(policy.Check("3.18.12.63:4000", std::nullopt).ok());
  // A header is ignored when no proxy header is configured.
  absl::Status s = policy.Check("10.0.0.5:4000", "3.18.12.63");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("10.0.0.5"));
}

TEST(WebhookSourcePolicyTest, HeaderBelievedOnlyFromTrustedProxies) {
  WebhookSourcePolicy policy = Policy("3.18.12.63", "10.0.0.0/8", "x-forwarded-for");
  // From a trusted proxy: the right-most untrusted entry is the client.
  EXPECT_TRUE(policy.Check("10.0.0.5:4000", "3.18.12.63").ok());
  EXPECT_TRUE(policy.Check("10.0.0.5:4000", "6.6.6.6, 3.18.12.63, 10.1.1.1").ok());
  // A forged entry left of the real client does not help.
  EXPECT_EQ(policy.Check("10.0.0.5:4000", "3.18.12.63, 6.6.6.6").code(),
            absl::StatusCode::kPermissionDenied);
  // From an untrusted peer the header is ignored.
  EXPECT_EQ(policy.Check("6.6.6.6:4000", "3.18.12.63").code(), absl::StatusCode::kPermissionDenied);
  // A trusted proxy without a usable header is refused.
  EXPECT_EQ(policy.Check("10.0.0.5:4000", std::nullopt).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(policy.Check("10.0.0.5:4000", "garbage").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(policy.Check("10.0.0.5:4000", "10.0.0.7").code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace sidestream
