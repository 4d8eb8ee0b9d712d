#include "client/channel.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <sys/stat.h>

namespace sidestream {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/channel_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::string dir_;
};

constexpr char kToken[] = "tok-0123456789abcdef0123456789abcdef";

TEST_F(ChannelTest, TokenIsTrimmedOfSurroundingWhitespace) {
  absl::StatusOr<AccessToken> token =
      AccessToken::FromFile(Write("token", std::string("  ") + kToken + "\n\n"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_FALSE(token->empty());
}

TEST_F(ChannelTest, EmptyPathMeansNoToken) {
  absl::StatusOr<AccessToken> token = AccessToken::FromFile("");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(token->empty());
}

TEST_F(ChannelTest, TokenFileErrorsNameTheFileButNotTheToken) {
  const std::string missing = dir_ + "/missing";
  absl::StatusOr<AccessToken> token = AccessToken::FromFile(missing);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(token.status().message(), HasSubstr(missing));

  token = AccessToken::FromFile(Write("blank", " \n"));
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(token.status().message(), HasSubstr("is empty"));

  token = AccessToken::FromFile(Write("two", std::string(kToken) + "\nsecond-line\n"));
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(token.status().message(), Not(HasSubstr(kToken)));

  token = AccessToken::FromFile(Write("ctl", std::string(kToken) + "\x01"));
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ChannelTest, PlainTextWithoutTlsOptions) {
  ConnectionOptions options;
  options.target = "127.0.0.1:1";
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  options.target = "";
  EXPECT_EQ(Connect(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ChannelTest, TlsFilesAreCheckedBeforeConnecting) {
  TlsOptions tls;
  tls.ca_file = dir_ + "/missing-ca.pem";
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = MakeChannelCredentials(tls);
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(creds.status().message(), HasSubstr("TLS CA file"));

  tls.ca_file = Write("not-pem", "hello");
  creds = MakeChannelCredentials(tls);
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(creds.status().message(), HasSubstr("holds no PEM CERTIFICATE"));

  tls.ca_file = Write("ca.pem", "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n");
  tls.cert_file = tls.ca_file;
  creds = MakeChannelCredentials(tls);
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(creds.status().message(), HasSubstr("needs its key"));

  // Only the server name: TLS with the default roots.
  TlsOptions by_name;
  by_name.server_name = "sidestream.internal";
  EXPECT_TRUE(by_name.enabled());
  EXPECT_TRUE(MakeChannelCredentials(by_name).ok());
}

}  // namespace
}  // namespace sidestream
