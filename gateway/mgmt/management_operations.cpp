// Owns: the operations endpoints /healthz, /readyz, /console, /metrics, /@routes and /@info (see
// management_operations.h) and the console page's text.
#include "management_operations.h"
#include "management_credentials.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <vector>

namespace wsgw {

extern const char kConsoleHtml[];
extern const std::size_t kConsoleHtmlSize;

const std::string &consoleHtml() {
    static const std::string html(kConsoleHtml, kConsoleHtmlSize);
    return html;
}

ManagementResponse operationsRequest(const HttpRequest &req, const ManagementCredentials &credentials, const OperationsHooks &ops,
                                     bool &handled) {
    handled = true;
    const std::string &path = req.path;
    bool get = req.method == "GET";
    ManagementResponse r;
    // The probes and the console need no credentials, so neither does being told their method.
    if (!get && (path == "/healthz" || path == "/readyz" || path == "/console" || path == "/console/")) {
        ManagementResponse e = awsError(405, "MethodNotAllowedException", path + " answers GET only");
        e.headers.emplace_back("Allow", "GET");
        return e;
    }
    if (path == "/healthz" && get) {
        r.body = R"({"status":"alive"})";
        return r;
    }
    if (path == "/readyz" && get) {
        std::vector<std::string> problems = ops.readinessProblems ? ops.readinessProblems() : std::vector<std::string>{};
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        w.StartObject();
        w.Key("status");
        w.String(problems.empty() ? "ready" : "not ready");
        w.Key("problems");
        w.StartArray();
        for (const auto &p : problems) w.String(p);
        w.EndArray();
        w.EndObject();
        r.status = problems.empty() ? 200 : 503;
        r.body.assign(buf.GetString(), buf.GetSize());
        return r;
    }
    if ((path == "/console" || path == "/console/") && get) {
        r.contentType = "text/html; charset=utf-8";
        r.body = consoleHtml();
        r.headers.emplace_back("Cache-Control", "no-store");
        return r;
    }
    bool protectedPath = path == "/metrics" || path == "/@routes" || path == "/@info";
    if (!protectedPath) {
        handled = false;
        return r;
    }
    std::string reason;
    if (!authorizeManagementRequest(credentials, req, reason)) return awsError(403, "ForbiddenException", reason);
    if (!get) {
        ManagementResponse e = awsError(405, "MethodNotAllowedException", path + " answers GET only");
        e.headers.emplace_back("Allow", "GET");
        return e;
    }
    if (path == "/metrics") {
        r.contentType = "text/plain; version=0.0.4; charset=utf-8";
        r.body = ops.metrics ? ops.metrics() : std::string();
    } else if (path == "/@routes") {
        r.body = ops.routesJson ? ops.routesJson() : "{}";
    } else {
        r.body = ops.infoJson ? ops.infoJson() : "{}";
    }
    return r;
}

bool isOperationsPath(const std::string &path) {
    return path == "/healthz" || path == "/readyz" || path == "/console" || path == "/console/" || path == "/metrics" ||
           path == "/@routes" || path == "/@info";
}

}  // namespace wsgw
