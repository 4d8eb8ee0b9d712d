// What grpcurl does, proven with a small C++ client: list the services by
// reflection, fetch each service's file descriptor by symbol, and check
// health, against the real server binary.
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>

#include "tests/testing/server_process.h"

namespace sidestream::testing {
namespace {

namespace refl = grpc::reflection::v1alpha;
using ::testing::IsSupersetOf;

TEST(E2eReflectionTest, ListDescribeAndHealthWorkWithoutProtoFiles) {
  ServerProcessOptions options;
  options.data_dir = MakeTempDir("refl");
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->grpc_address(), grpc::InsecureChannelCredentials());

  auto reflection = refl::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = reflection->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest list;
  list.set_list_services("*");
  ASSERT_TRUE(stream->Write(list));
  refl::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> services;
  for (const auto& s : response.list_services_response().service()) services.push_back(s.name());
  EXPECT_THAT(services,
              IsSupersetOf({"sidestream.v1.Events", "sidestream.v1.Admin", "grpc.health.v1.Health",
                            "grpc.reflection.v1alpha.ServerReflection"}));

  // `grpcurl describe` of every listed service: its file (and imports) come
  // back and declare the service with its methods.
  for (const std::string& service : services) {
    refl::ServerReflectionRequest by_symbol;
    by_symbol.set_file_containing_symbol(service);
    ASSERT_TRUE(stream->Write(by_symbol));
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_TRUE(response.has_file_descriptor_response())
        << service << ": " << response.error_response().error_message();
    bool found = false;
    for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      for (const auto& s : file.service()) {
        if (file.package() + "." + s.name() == service) {
          found = true;
          EXPECT_GT(s.method_size(), 0) << service;
        }
      }
    }
    EXPECT_TRUE(found) << service;
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  auto health = grpc::health::v1::Health::NewStub(channel);
  for (const char* name : {"", "sidestream.v1.Events", "sidestream.v1.Admin"}) {
    grpc::ClientContext hctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&hctx, req, &resp).ok()) << name;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << name;
  }
}

}  // namespace
}  // namespace sidestream::testing
