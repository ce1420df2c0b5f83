// Azure Web PubSub's data-plane REST API (docs/webpubsub.md) as a pure router: a request's method, target
// (path and query as sent), Content-Type and body become one operation with its decoded parameters and the
// status the server SDK (@azure/web-pubsub 1.2, api-version 2024-12-01) expects on success, or an error
// with the status, Azure's error code and a message saying what to send instead. The caller (the public
// listener) checks the bearer token first (webpubsub_token.h), then the hub, then performs the operation.
// Path parameters are percent-decoded per segment, so "/groups/a%2Fb" names the group "a/b".
#pragma once

#include "webpubsub_permissions.h"
#include "webpubsub_protocol.h"

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace wsgw {

enum class WpsRestOp {
    Health,                          // HEAD /api/health                                     200
    SendToAll,                       // POST /api/hubs/{hub}/:send                           202
    CloseAllConnections,             // POST /api/hubs/{hub}/:closeConnections               204
    GenerateToken,                   // POST /api/hubs/{hub}/:generateToken                  200 {"token":..}
    CloseConnection,                 // DELETE /api/hubs/{hub}/connections/{id}              204
    ConnectionExists,                // HEAD /api/hubs/{hub}/connections/{id}                200 / 404
    SendToConnection,                // POST /api/hubs/{hub}/connections/{id}/:send          202
    RemoveConnectionFromAllGroups,   // DELETE /api/hubs/{hub}/connections/{id}/groups       204
    GroupExists,                     // HEAD /api/hubs/{hub}/groups/{group}                  200 / 404
    CloseGroupConnections,           // POST /api/hubs/{hub}/groups/{group}/:closeConnections 204
    SendToGroup,                     // POST /api/hubs/{hub}/groups/{group}/:send            202
    ListConnectionsInGroup,          // GET /api/hubs/{hub}/groups/{group}/connections       200
    AddConnectionToGroup,            // PUT /api/hubs/{hub}/groups/{group}/connections/{id}  200 / 404
    RemoveConnectionFromGroup,       // DELETE (same path)                                   204
    GrantPermission,                 // PUT /api/hubs/{hub}/permissions/{p}/connections/{id} 200
    RevokePermission,                // DELETE (same path)                                   204
    CheckPermission,                 // HEAD (same path)                                     200 / 404
    UserExists,                      // HEAD /api/hubs/{hub}/users/{user}                    200 / 404
    CloseUserConnections,            // POST /api/hubs/{hub}/users/{user}/:closeConnections  204
    SendToUser,                      // POST /api/hubs/{hub}/users/{user}/:send              202
    RemoveUserFromAllGroups,         // DELETE /api/hubs/{hub}/users/{user}/groups           204
    AddUserToGroup,                  // PUT /api/hubs/{hub}/users/{user}/groups/{group}      200
    RemoveUserFromGroup,             // DELETE (same path)                                   204
};

std::string_view wpsRestOpName(WpsRestOp op);

struct WpsRestRequest {
    std::string_view method;       // "POST", ...
    std::string_view target;       // "/api/hubs/chat/:send?api-version=2024-12-01", as on the request line
    std::string_view contentType;  // "" when absent
    std::string_view body;
};

struct WpsRestOperation {
    WpsRestOp op = WpsRestOp::Health;
    int successStatus = 200;
    std::string hub, group, userId, connectionId;
    std::optional<WpsPermission> permission;  // grant/revoke/check
    std::string targetName;                   // grant/revoke/check: the group ("" = every group)
    std::vector<std::string> excluded;        // sends and closes: connection IDs left out
    std::string reason;                       // closes: the reason given to the client
    std::optional<WpsData> data;              // sends: the body as its Content-Type says
    // generateToken
    std::vector<std::string> roles, groups;
    int minutesToExpire = 60;
    // listConnectionsInGroup
    int maxPageSize = 0;  // 0: no paging asked for
    int top = 0;          // 0: all
    std::string continuationToken;
};

struct WpsRestError {
    int status = 400;
    std::string code;     // Azure's error code, e.g. "BadRequest", "NotFound", "MethodNotAllowed"
    std::string message;  // what is wrong and what to send instead
    std::string allow;    // 405: the methods the path takes, for the Allow header
};

// True for paths this router answers (/api/hubs/... and /api/health); others are not Web PubSub's.
bool isWpsRestPath(std::string_view target);

std::variant<WpsRestOperation, WpsRestError> routeWpsRest(const WpsRestRequest &request);

// {"code":"...","message":"..."}: Azure's ErrorDetail, which the SDK's RestError reads.
std::string wpsRestErrorBody(const WpsRestError &error);

}  // namespace wsgw
