// Azure Web PubSub's data-plane REST API as a pure router (see the header).
#include "webpubsub_rest.h"

#include "log.h"
#include "text.h"

#include <rapidjson/document.h>

#include <charconv>

namespace wsgw {

namespace {

struct Query {
    std::vector<std::pair<std::string, std::string>> items;
    const std::string *first(std::string_view name) const {
        for (const auto &kv : items)
            if (kv.first == name) return &kv.second;
        return nullptr;
    }
    std::vector<std::string> all(std::string_view name) const {
        std::vector<std::string> out;
        for (const auto &kv : items)
            if (kv.first == name) out.push_back(kv.second);
        return out;
    }
};

// Percent-decodes a hub, path segment or query item as Azure does: %00 is a NUL like any other byte, and
// '+' is a space in the query only. False on a malformed escape.
bool wpsRestDecode(std::string_view in, std::string &out, bool plusIsSpace) {
    bool ok;
    out = percentDecode(in, &ok, {.plusIsSpace = plusIsSpace, .allowNul = true});
    return ok;
}

WpsRestError badRequest(std::string message) { return {400, "BadRequest", std::move(message), ""}; }

bool parseQuery(std::string_view q, Query &out, std::string &problem) {
    while (!q.empty()) {
        size_t amp = q.find('&');
        std::string_view item = q.substr(0, amp);
        if (!item.empty()) {
            size_t eq = item.find('=');
            std::string name, value;
            if (!wpsRestDecode(item.substr(0, eq), name, true) ||
                (eq != std::string_view::npos && !wpsRestDecode(item.substr(eq + 1), value, true))) {
                problem = "the query has a bad percent-escape in '" + std::string(item.substr(0, 60)) + "'";
                return false;
            }
            out.items.emplace_back(std::move(name), std::move(value));
        }
        if (amp == std::string_view::npos) break;
        q.remove_prefix(amp + 1);
    }
    return true;
}

bool parsePositiveInt(const std::string &text, int &out) {
    int v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || v < 1) return false;
    out = v;
    return true;
}

// A path template's shape: literal segments, and '{}' for a parameter.
struct Shape {
    std::vector<std::string_view> parts;  // after "/api/hubs/{hub}"
    // method -> operation
    std::vector<std::pair<std::string_view, WpsRestOp>> methods;
};

const std::vector<Shape> &shapes() {
    static const std::vector<Shape> all = {
        {{":send"}, {{"POST", WpsRestOp::SendToAll}}},
        {{":closeConnections"}, {{"POST", WpsRestOp::CloseAllConnections}}},
        {{":generateToken"}, {{"POST", WpsRestOp::GenerateToken}}},
        {{"connections", "{}"}, {{"DELETE", WpsRestOp::CloseConnection}, {"HEAD", WpsRestOp::ConnectionExists}}},
        {{"connections", "{}", ":send"}, {{"POST", WpsRestOp::SendToConnection}}},
        {{"connections", "{}", "groups"}, {{"DELETE", WpsRestOp::RemoveConnectionFromAllGroups}}},
        {{"groups", "{}"}, {{"HEAD", WpsRestOp::GroupExists}}},
        {{"groups", "{}", ":closeConnections"}, {{"POST", WpsRestOp::CloseGroupConnections}}},
        {{"groups", "{}", ":send"}, {{"POST", WpsRestOp::SendToGroup}}},
        {{"groups", "{}", "connections"}, {{"GET", WpsRestOp::ListConnectionsInGroup}}},
        {{"groups", "{}", "connections", "{}"},
         {{"PUT", WpsRestOp::AddConnectionToGroup}, {"DELETE", WpsRestOp::RemoveConnectionFromGroup}}},
        {{"permissions", "{}", "connections", "{}"},
         {{"PUT", WpsRestOp::GrantPermission}, {"DELETE", WpsRestOp::RevokePermission}, {"HEAD", WpsRestOp::CheckPermission}}},
        {{"users", "{}"}, {{"HEAD", WpsRestOp::UserExists}}},
        {{"users", "{}", ":closeConnections"}, {{"POST", WpsRestOp::CloseUserConnections}}},
        {{"users", "{}", ":send"}, {{"POST", WpsRestOp::SendToUser}}},
        {{"users", "{}", "groups"}, {{"DELETE", WpsRestOp::RemoveUserFromAllGroups}}},
        {{"users", "{}", "groups", "{}"}, {{"PUT", WpsRestOp::AddUserToGroup}, {"DELETE", WpsRestOp::RemoveUserFromGroup}}},
    };
    return all;
}

int successStatusOf(WpsRestOp op) {
    switch (op) {
    case WpsRestOp::SendToAll:
    case WpsRestOp::SendToConnection:
    case WpsRestOp::SendToGroup:
    case WpsRestOp::SendToUser: return 202;
    case WpsRestOp::CloseAllConnections:
    case WpsRestOp::CloseConnection:
    case WpsRestOp::RemoveConnectionFromAllGroups:
    case WpsRestOp::CloseGroupConnections:
    case WpsRestOp::RemoveConnectionFromGroup:
    case WpsRestOp::RevokePermission:
    case WpsRestOp::CloseUserConnections:
    case WpsRestOp::RemoveUserFromAllGroups:
    case WpsRestOp::RemoveUserFromGroup: return 204;
    default: return 200;
    }
}

bool isSend(WpsRestOp op) {
    return op == WpsRestOp::SendToAll || op == WpsRestOp::SendToConnection || op == WpsRestOp::SendToGroup ||
           op == WpsRestOp::SendToUser;
}

}  // namespace

std::string_view wpsRestOpName(WpsRestOp op) {
    switch (op) {
    case WpsRestOp::Health: return "health";
    case WpsRestOp::SendToAll: return "sendToAll";
    case WpsRestOp::CloseAllConnections: return "closeAllConnections";
    case WpsRestOp::GenerateToken: return "generateToken";
    case WpsRestOp::CloseConnection: return "closeConnection";
    case WpsRestOp::ConnectionExists: return "connectionExists";
    case WpsRestOp::SendToConnection: return "sendToConnection";
    case WpsRestOp::RemoveConnectionFromAllGroups: return "removeConnectionFromAllGroups";
    case WpsRestOp::GroupExists: return "groupExists";
    case WpsRestOp::CloseGroupConnections: return "closeGroupConnections";
    case WpsRestOp::SendToGroup: return "sendToGroup";
    case WpsRestOp::ListConnectionsInGroup: return "listConnectionsInGroup";
    case WpsRestOp::AddConnectionToGroup: return "addConnectionToGroup";
    case WpsRestOp::RemoveConnectionFromGroup: return "removeConnectionFromGroup";
    case WpsRestOp::GrantPermission: return "grantPermission";
    case WpsRestOp::RevokePermission: return "revokePermission";
    case WpsRestOp::CheckPermission: return "checkPermission";
    case WpsRestOp::UserExists: return "userExists";
    case WpsRestOp::CloseUserConnections: return "closeUserConnections";
    case WpsRestOp::SendToUser: return "sendToUser";
    case WpsRestOp::RemoveUserFromAllGroups: return "removeUserFromAllGroups";
    case WpsRestOp::AddUserToGroup: return "addUserToGroup";
    case WpsRestOp::RemoveUserFromGroup: return "removeUserFromGroup";
    }
    return "unknown";
}

bool isWpsRestPath(std::string_view target) {
    std::string_view path = target.substr(0, target.find('?'));
    return path.rfind("/api/hubs/", 0) == 0 || path == "/api/health";
}

namespace {

// The path after /api/hubs/ split at its slashes: the hub, then the operation's parts.
std::vector<std::string_view> restPathSegments(std::string_view rest) {
    std::vector<std::string_view> segments;
    while (true) {
        size_t slash = rest.find('/');
        segments.push_back(rest.substr(0, slash));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    return segments;
}

// The shape `parts` have, with its {} segments decoded into *params; nullptr when none matches, or with
// *error set when a segment has a bad percent-escape.
const Shape *matchRestShape(const std::vector<std::string_view> &parts, std::vector<std::string> *params,
                            std::optional<WpsRestError> *error) {
    for (const Shape &s : shapes()) {
        if (s.parts.size() != parts.size()) continue;
        bool ok = true;
        std::vector<std::string> values;
        for (size_t i = 0; i < parts.size() && ok; ++i) {
            if (s.parts[i] == "{}") {
                std::string v;
                if (parts[i].empty()) {
                    ok = false;
                } else if (!wpsRestDecode(parts[i], v, false)) {
                    *error = badRequest("path segment '" + std::string(parts[i].substr(0, 60)) + "' has a bad percent-escape");
                    return nullptr;
                }
                values.push_back(std::move(v));
            } else {
                ok = parts[i] == s.parts[i];
            }
        }
        if (ok) {
            *params = std::move(values);
            return &s;
        }
    }
    return nullptr;
}

// The operation the request's method names on the matched shape, or 405 with the methods it takes.
std::optional<WpsRestError> chooseRestMethod(const Shape &shape, std::string_view method, WpsRestOperation &op) {
    std::string allow;
    bool methodFound = false;
    for (const auto &[name, opKind] : shape.methods) {
        allow += (allow.empty() ? "" : ", ") + std::string(name);
        if (name == method) {
            op.op = opKind;
            methodFound = true;
        }
    }
    if (!methodFound)
        return WpsRestError{405, "MethodNotAllowed", std::string(method.substr(0, 16)) + " is not an operation on this path: use " + allow,
                            allow};
    return std::nullopt;
}

// The path parameters into `op`, by the shape's first part.
std::optional<WpsRestError> takeRestPathParameters(const Shape &shape, const std::vector<std::string> &params, const Query &query,
                                                   WpsRestOperation &op) {
    std::string_view kind = shape.parts[0];
    if (kind == "connections") op.connectionId = params[0];
    if (kind == "groups") {
        op.group = params[0];
        if (params.size() > 1) op.connectionId = params[1];
    }
    if (kind == "users") {
        op.userId = params[0];
        if (params.size() > 1) op.group = params[1];
    }
    if (kind == "permissions") {
        op.permission = wpsPermissionOf(params[0]);
        if (!op.permission) return badRequest("unknown permission '" + params[0].substr(0, 40) + "': use joinLeaveGroup or sendToGroup");
        op.connectionId = params[1];
        if (const std::string *t = query.first("targetName")) op.targetName = *t;
    }
    return std::nullopt;
}

// A send's body, as its Content-Type says.
std::optional<WpsRestError> takeRestSendBody(const WpsRestRequest &request, WpsRestOperation &op) {
    if (request.contentType.empty()) return badRequest("Content-Type is missing: application/json, text/plain or application/octet-stream");
    op.data = wpsDataFromContentType(request.contentType, request.body);
    if (!op.data)
        return badRequest(std::string("the body is not ") +
                          (request.contentType.find("json") != std::string_view::npos ? "valid JSON" : "valid UTF-8 text") +
                          " but its Content-Type says so: fix the body or send it as application/octet-stream");
    return std::nullopt;
}

// The query parameters every operation reads, then those of generateToken and listConnectionsInGroup.
std::optional<WpsRestError> takeRestQuery(const Query &query, WpsRestOperation &op) {
    // The server SDK always sends api-version; Azure refuses a request without it, and so do we.
    const std::string *apiVersion = query.first("api-version");
    if (!apiVersion || apiVersion->empty())
        return badRequest("the query parameter api-version is missing (the server SDK sends api-version=2024-12-01)");
    op.excluded = query.all("excluded");
    if (const std::string *r = query.first("reason")) op.reason = *r;
    if (query.first("filter"))
        return badRequest("the OData \"filter\" parameter is not supported by this gateway: send to a group, a user or a "
                          "connection instead, or leave connections out with \"excluded\"");
    return std::nullopt;
}

std::optional<WpsRestError> takeRestOperationQuery(const Query &query, WpsRestOperation &op) {
    if (op.op == WpsRestOp::GenerateToken) {
        if (const std::string *u = query.first("userId")) op.userId = *u;
        op.roles = query.all("role");
        op.groups = query.all("group");
        if (const std::string *m = query.first("minutesToExpire"); m && !parsePositiveInt(*m, op.minutesToExpire))
            return badRequest("minutesToExpire must be a whole number of minutes, 1 or more");
        if (const std::string *t = query.first("clientType"); t && *t != "Default" && *t != "default")
            return badRequest("clientType '" + t->substr(0, 40) + "' is not served here: only Default (WebSocket) clients");
    }
    if (op.op == WpsRestOp::ListConnectionsInGroup) {
        if (const std::string *m = query.first("maxpagesize"); m && !parsePositiveInt(*m, op.maxPageSize))
            return badRequest("maxpagesize must be a whole number, 1 or more");
        if (const std::string *t = query.first("top"); t && !parsePositiveInt(*t, op.top))
            return badRequest("top must be a whole number, 1 or more");
        if (const std::string *c = query.first("continuationToken")) op.continuationToken = *c;
    }
    return std::nullopt;
}

}  // namespace

std::variant<WpsRestOperation, WpsRestError> routeWpsRest(const WpsRestRequest &request) {
    size_t qmark = request.target.find('?');
    std::string_view path = request.target.substr(0, qmark);
    std::string_view rawQuery = qmark == std::string_view::npos ? std::string_view() : request.target.substr(qmark + 1);
    Query query;
    std::string problem;
    if (!parseQuery(rawQuery, query, problem)) return badRequest(problem);

    WpsRestOperation op;
    if (path == "/api/health") {
        if (request.method != "HEAD" && request.method != "GET")
            return WpsRestError{405, "MethodNotAllowed", "/api/health answers HEAD (and GET)", "HEAD, GET"};
        op.op = WpsRestOp::Health;
        op.successStatus = 200;
        return op;
    }
    constexpr std::string_view prefix = "/api/hubs/";
    if (path.rfind(prefix, 0) != 0)
        return WpsRestError{404, "NotFound", "not a Web PubSub REST path: they start with /api/hubs/{hub}/", ""};
    std::vector<std::string_view> segments = restPathSegments(path.substr(prefix.size()));
    if (segments.empty() || segments[0].empty())
        return WpsRestError{404, "NotFound", "the hub is missing: /api/hubs/{hub}/...", ""};
    if (!wpsRestDecode(segments[0], op.hub, false)) return badRequest("the hub name has a bad percent-escape");
    std::vector<std::string_view> parts(segments.begin() + 1, segments.end());

    std::vector<std::string> params;
    std::optional<WpsRestError> error;
    const Shape *matched = matchRestShape(parts, &params, &error);
    if (error) return std::move(*error);
    if (!matched)
        return WpsRestError{404, "NotFound",
                            "no Web PubSub operation at '" + std::string(path.substr(0, 200)) +
                                "': see the data-plane REST reference (for example POST /api/hubs/{hub}/:send)",
                            ""};
    if ((error = chooseRestMethod(*matched, request.method, op))) return std::move(*error);
    op.successStatus = successStatusOf(op.op);
    if ((error = takeRestPathParameters(*matched, params, query, op))) return std::move(*error);
    if ((error = takeRestQuery(query, op))) return std::move(*error);
    if (isSend(op.op) && (error = takeRestSendBody(request, op))) return std::move(*error);
    if ((error = takeRestOperationQuery(query, op))) return std::move(*error);
    return op;
}

std::string wpsRestErrorBody(const WpsRestError &error) {
    std::string out = "{\"code\":";
    log::appendJsonString(out, error.code);
    out += ",\"message\":";
    log::appendJsonString(out, error.message);
    out += '}';
    return out;
}

}  // namespace wsgw
