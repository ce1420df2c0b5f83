// Owns: what the management API answers to a whole request. The request rate first (a token bucket:
// 429 LimitExceededException over ratePerSecond), then the operations endpoints (management_operations.h),
// then everything a /@connections, /@groups, /@broadcast or /@users request's head decides (the path,
// credentials, the method, the ID and group name, the size), and carrying it out through the host API's
// calls: at once for a connection of this node, on the cluster's executor for one that may be on another
// node or for a group in a cluster. Also the page of live connections GET /@connections lists.
#pragma once

#include "management_api.h"
#include "management_response.h"

#include "http_request.h"
#include "management_path.h"

#include <functional>
#include <optional>
#include <string>

namespace wsgw {

class ManagementRoutes {
public:
    // Runs `work` on the cluster's executor and answers the request being handled when it is done; returns
    // the ManagementResponse that says so (deferred). The server gives it (ManagementServer::defer).
    using Defer = std::function<ManagementResponse(std::function<ManagementResponse()> work)>;

    // `credentials` and `ops` are read at each request, so they must outlive this (ManagementApi's Impl holds
    // them beside it).
    ManagementRoutes(HostContext &host, const ManagementCredentials &credentials, const OperationsHooks &ops, int ratePerSecond,
                     Defer defer);

    // The answer to a whole request; `now` is the loop's clock (for the token bucket). Network thread only.
    ManagementResponse handle(const HttpRequest &req, const std::string &peer, double now);
    // For Expect: 100-continue: the answer a request gets from its head alone, or nothing when its body is
    // wanted. The operations endpoints take no body that matters, so they always get 100.
    std::optional<ManagementResponse> refusalBeforeBody(const HttpRequest &req);

private:
    bool takeToken(double now);
    std::optional<ManagementResponse> refusalOfHead(const HttpRequest &req, const ManagementPath &mp, bool bodyKnown);
    ManagementResponse route(const HttpRequest &req);
    ManagementResponse groups(const HttpRequest &req, const ManagementPath &mp);
    ManagementResponse list(const HttpRequest &req);

    HostContext &host_;
    const ManagementCredentials &credentials_;
    const OperationsHooks &ops_;
    Defer defer_;
    int rate_ = 0;
    double tokens_ = 0;
    double refilledAt_ = 0;
};

}  // namespace wsgw
