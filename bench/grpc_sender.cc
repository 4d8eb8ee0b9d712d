// The "raw gRPC" baseline: a callback server that streams one pre-serialized
// message (the SubscribeResponse Sidestream would send for a sample event of
// the chosen size) to every stream, a fixed number of times, one write in
// flight per stream, with no per-message work at all: the floor of what
// Sidestream's fan-out does per delivery. Any method name is accepted
// (generic service); each call reads its one request, then streams.
//
// Prints "ready grpc=HOST:PORT" when listening; runs until killed.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/clock.h"
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "bench/bench_process.h"
#include "bench/webhook_requests.h"
#include "server/common/time_proto.h"
#include "server/decode/event_decoder.h"
#include "sidestream/v1/events_service.pb.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "HOST:PORT to listen on (loopback).");
ABSL_FLAG(int, event_size, 3072, "Body size of the sample event whose message is sent.");
ABSL_FLAG(uint64_t, messages_per_stream, 1000, "Messages each stream receives before it ends.");

namespace {

class Stream final : public grpc::ServerGenericBidiReactor {
 public:
  Stream(const grpc::ByteBuffer& message, uint64_t count) : message_(message), left_(count) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
      return;
    }
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (left_ == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    --left_;
    StartWrite(&message_);
  }

  const grpc::ByteBuffer message_;  // shares the slice; never copied
  grpc::ByteBuffer request_;
  uint64_t left_;
};

class RawSender final : public grpc::CallbackGenericService {
 public:
  RawSender(grpc::ByteBuffer message, uint64_t count)
      : message_(std::move(message)), count_(count) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    return new Stream(message_, count_);
  }

 private:
  const grpc::ByteBuffer message_;
  const uint64_t count_;
};

}  // namespace

int main(int argc, char** argv) {
  sidestream::bench::InitBenchProcess(
      argc, argv,
      "The raw gRPC baseline: streams one pre-serialized SubscribeResponse to every\n"
      "stream. Prints \"ready grpc=HOST:PORT\".\n"
      "Usage: sidestream-bench-grpc [--listen=127.0.0.1:0] [--event_size=3072] "
      "[--messages_per_stream=1000]");
  sidestream::bench::WebhookRequestOptions request_options;
  request_options.sizes = {static_cast<size_t>(absl::GetFlag(FLAGS_event_size))};
  request_options.secret = "whsec_bench_unused";
  request_options.host = "unused";
  absl::StatusOr<sidestream::bench::WebhookRequestFactory> factory =
      sidestream::bench::WebhookRequestFactory::Create(request_options);
  if (!factory.ok()) {
    std::cerr << "grpc_sender: " << factory.status() << "\n";
    return 1;
  }
  // Event 4 is a Connect payment_intent.succeeded, a typical event.
  const std::string body = factory->Body(4);
  sidestream::v1::SubscribeResponse response;
  sidestream::v1::Event* event = response.mutable_event();
  if (std::optional<sidestream::Rejection> rejection = sidestream::DecodeStripeEvent(body, event)) {
    std::cerr << "grpc_sender: sample event does not decode: " << rejection->detail << "\n";
    return 1;
  }
  event->set_sequence(1);
  *event->mutable_receive_time() = sidestream::TimestampProto(absl::Now());
  event->set_secret_label("bench");
  const std::string bytes = response.SerializeAsString();
  grpc::Slice slice(bytes);
  RawSender service(grpc::ByteBuffer(&slice, 1), absl::GetFlag(FLAGS_messages_per_stream));

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "grpc_sender: cannot listen on " << absl::GetFlag(FLAGS_listen) << "\n";
    return 1;
  }
  const std::string listen = absl::GetFlag(FLAGS_listen);
  std::cout << "ready grpc=" << listen.substr(0, listen.rfind(':')) << ":" << port
            << " message_bytes=" << bytes.size() << std::endl;
  server->Wait();
  return 0;
}
