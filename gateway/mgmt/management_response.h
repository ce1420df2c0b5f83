// Owns: the answer the management API gives a request (ManagementResponse: status, body, content type, extra
// headers, or "answered later" for one that waits on the cluster) and its error answers in AWS's shape
// (awsError: a JSON {"message"} body and the x-amzn-ErrorType header that AWS SDKs name the error from).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgw {

struct ManagementResponse {
    int status = 200;
    std::string body;
    std::string contentType = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
    bool deferred = false;  // answered later, from the cluster's executor (see ManagementServer::defer())
};

// AWS SDKs name the error from x-amzn-ErrorType, so every error carries one.
ManagementResponse awsError(int status, const char *errorType, std::string_view message);

}  // namespace wsgw
