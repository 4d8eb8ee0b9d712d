#include "server/ops/admin_http.h"

#include "absl/strings/str_cat.h"

#include "server/common/metrics.h"

namespace sidestream {
namespace {

constexpr absl::string_view kTextPlain = "text/plain; charset=utf-8";

HttpServerResponse Text(int status, std::string body, absl::string_view content_type = kTextPlain) {
  HttpServerResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers.emplace_back("Content-Type", std::string(content_type));
  response.headers.emplace_back("Cache-Control", "no-store");
  return response;
}

}  // namespace

HttpServerResponse AdminHttpHandler::Refuse(RejectReason reason, absl::string_view detail) {
  return Text(RejectReasonHttpStatus(reason), absl::StrCat(detail, "\n"));
}

void AdminHttpHandler::Handle(HttpServerRequest request, HttpRespond respond) {
  absl::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  const bool head = request.method == "HEAD";
  auto answer = [&](HttpServerResponse response) {
    if (head) response.body.clear();
    std::move(respond)(std::move(response));
  };
  if (path != "/healthz" && path != "/readyz" && path != "/metrics") {
    return answer(
        Text(404, "not found; the admin listener serves /healthz, /readyz and /metrics\n"));
  }
  if (request.method != "GET" && !head) {
    HttpServerResponse response = Text(405, "use GET\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
    return answer(std::move(response));
  }
  if (path == "/healthz") return answer(Text(200, "ok\n"));
  if (path == "/readyz") {
    const Readiness readiness = sources_.readiness ? sources_.readiness() : Readiness{};
    if (readiness.ready) return answer(Text(200, "ready\n"));
    return answer(Text(503, absl::StrCat("not ready: ", readiness.reason, "\n")));
  }
  if (metrics_auth_ && !metrics_auth_(request.authorization)) {
    HttpServerResponse response =
        Text(401, "/metrics needs \"Authorization: Bearer <token>\" with a valid access token\n");
    response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sidestream\"");
    return answer(std::move(response));
  }
  answer(Text(200, RenderPrometheus(CollectStats(sources_)), kPrometheusContentType));
}

}  // namespace sidestream
