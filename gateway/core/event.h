// The API Gateway-shaped event JSON of docs/event.md (what an AWS Lambda proxy integration receives), the
// GET /@connections description, and the time and query formats they use. Pure: no sockets, no state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgw {

struct ConnectionInfo {  // immutable facts about a connection, captured at $connect
    std::string connectionId;
    int64_t connectedAtMs = 0;
    std::string sourceIp, userAgent;
    std::string domainName = "localhost";  // requestContext.stage and apiId are the same for every connection
    std::vector<std::pair<std::string, std::string>> headers;  // as received; dropped once the upgrade is done
    std::string rawQuery;        // without '?'; "" when the URL had none
    std::string authorizerJson;  // "" or a JSON object, added to every event
    // Who admitted it, when an authorizer did; shared and immutable once the upgrade is accepted, and
    // absent (no memory) on connections of an open API.
    struct Admission {
        std::string apiKeyId;                // requestContext.identity.apiKeyId, when an apiKey authorizer admitted it
        std::string authorizerType, principalId;  // for revocation on reload
        int64_t expiresAt = 0;               // epoch seconds (jwt exp): the connection closes with 1008 then
    };
    std::shared_ptr<const Admission> admission;
};

struct EventFields {
    int type = 0;  // WSGW_CONNECT / WSGW_MESSAGE / WSGW_DISCONNECT
    std::string_view routeKey, requestId, messageId;
    int64_t requestTimeEpochMs = 0;
    std::string_view body;
    bool isBinary = false;
    int disconnectStatusCode = 0;
    std::string_view disconnectReason;
    // Lambda invocations (docs/lambda.md): the management API's loopback TLS endpoint and routes.json's stage,
    // so https://{domainName}/{stage} reaches @connections; empty: the connection's Host and "$default".
    std::string_view domainName, stage;
};

std::string buildEventJson(const ConnectionInfo &c, const EventFields &e);
std::string formatRequestTime(int64_t epochMs);    // "22/Nov/2026:08:40:01 +0000"
std::string formatIso8601Millis(int64_t epochMs);  // "2026-11-22T08:40:00.000Z"
std::string connectionDescriptionJson(const ConnectionInfo &c, int64_t lastActiveAtMs);
// Splits on '&', the first '=' separates name and value, percent-decoding and '+' as space; keeps order
// and duplicates. A malformed escape is kept literally.
std::vector<std::pair<std::string, std::string>> parseQueryString(std::string_view raw);
std::string base64Encode(std::string_view bytes);
// {"name": ["value", ...]}: every value of a repeated name, in order (the connection table's columns).
std::string multiValueJson(const std::vector<std::pair<std::string, std::string>> &pairs);
int64_t nowEpochMs();

}  // namespace wsgw
