// Owns: what the management API answers to a whole request: the rate, the operations endpoints first, then
// /@connections, /@groups, /@broadcast and /@users, checked from the head and carried out (see
// management_routes.h).
#include "management_routes.h"
#include "management_credentials.h"
#include "management_operations.h"

#include "connection_id.h"
#include "event.h"
#include "log.h"
#include "webpubsub_clients.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace wsgw {

namespace {

constexpr size_t kDefaultPageSize = 100;
constexpr size_t kMaxPageSize = 1000;

ManagementResponse noContent() {
    ManagementResponse ok;
    ok.status = 204;
    ok.contentType.clear();
    return ok;
}

ManagementResponse gone(const std::string &id) {
    return awsError(410, "GoneException", "the connection " + id + " is closed or never existed");
}

ManagementResponse clusterError(const std::string &what) {
    return awsError(503, "ServiceUnavailableException",
                    what + ": the node that holds it did not answer, or Redis is unreachable; retry");
}

// POST/GET/DELETE /@connections/{id}. Thread-safe: runs on the network thread for a local connection and
// on the cluster's executor for one that may be on another node.
ManagementResponse connectionRequest(HostContext &host, const std::string &method, const std::string &id, const std::string &body) {
    if (method == "POST") {
        int rc = postToConnection(host, id, body.data(), body.size(), false);
        if (rc == WSGW_OK) return ManagementResponse{};
        if (rc == WSGW_TOO_LARGE) return awsError(413, "PayloadTooLargeException", "the data is over the message limit");
        if (rc == WSGW_GONE) return gone(id);
        return clusterError("the push to " + id + " was not delivered");
    }
    if (method == "GET") {
        ManagementResponse ok;
        if (!describeConnection(host, id, ok.body)) return gone(id);
        return ok;
    }
    int rc = deleteConnection(host, id);
    if (rc == WSGW_OK) return noContent();
    if (rc == WSGW_GONE) return gone(id);
    return clusterError("the close of " + id + " was not done");
}

// The group endpoints (PUT/DELETE /@groups/{group}/connections/{id}, POST/GET /@groups/{group},
// POST /@broadcast); the path and ID are checked already. Thread-safe like connectionRequest.
ManagementResponse groupRequest(HostContext &host, ManagementTarget target, const std::string &method, const std::string &group,
                                const std::string &id, const std::string &body) {
    if (target == ManagementTarget::GroupMember) {
        int rc = method == "PUT" ? addToGroup(host, group, id) : removeFromGroup(host, group, id);
        if (rc == WSGW_OK) return noContent();
        if (rc == WSGW_GONE) return gone(id);
        if (rc == WSGW_TOO_LARGE)
            return awsError(400, "BadRequestException",
                            "the connection " + id + " is in " + std::to_string(GroupRegistry::kMaxGroupsPerConnection) +
                                " groups already: remove it from one first");
        return clusterError("the membership of " + id + " in '" + group + "' was not changed");
    }
    if (method == "GET") {
        std::vector<std::string> members;
        if (host.cluster) {
            if (!host.cluster->groupMembers(group, members)) return clusterError("the members of '" + group + "' are unknown");
        } else {
            members = host.groups.members(group);
        }
        std::sort(members.begin(), members.end());
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        w.StartObject();
        w.Key("group");
        w.String(group);
        w.Key("connections");
        w.StartArray();
        for (const auto &m : members) w.String(m);
        w.EndArray();
        w.EndObject();
        ManagementResponse ok;
        ok.body.assign(buf.GetString(), buf.GetSize());
        return ok;
    }
    // POST /@users/{user}: every connection of an Azure Web PubSub user (docs/webpubsub.md); `group` holds the
    // user.
    if (target == ManagementTarget::User) {
        if (sendToUser(host, group, body.data(), body.size(), false) != WSGW_OK)
            return awsError(413, "PayloadTooLargeException", "the data is over the message limit");
        return ManagementResponse{};
    }
    switch (sendToGroup(host, target == ManagementTarget::Broadcast ? std::string() : group, body.data(), body.size(), false)) {
    case WSGW_OK: return ManagementResponse{};
    case WSGW_TOO_LARGE: return awsError(413, "PayloadTooLargeException", "the data is over the message limit");
    default:
        // Sent to this node's members already: a retry sends it to them again.
        return awsError(503, "ServiceUnavailableException",
                        "the message reached this node's members only: the cluster's Redis is unreachable, so members on other "
                        "nodes did not get it (a retry sends it to this node's members again)");
    }
}

}  // namespace

ManagementRoutes::ManagementRoutes(HostContext &host, const ManagementCredentials &credentials, const OperationsHooks &ops,
                                   int ratePerSecond, Defer defer)
    : host_(host), credentials_(credentials), ops_(ops), defer_(std::move(defer)), rate_(ratePerSecond), tokens_(ratePerSecond) {}

// Single-threaded (network thread): a plain token bucket, refilled from the loop's clock.
bool ManagementRoutes::takeToken(double now) {
    if (rate_ <= 0) return true;
    if (refilledAt_ == 0) refilledAt_ = now;
    tokens_ = std::min<double>(rate_, tokens_ + (now - refilledAt_) * rate_);
    refilledAt_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

ManagementResponse ManagementRoutes::handle(const HttpRequest &req, const std::string &peer, double now) {
    ManagementResponse r =
        takeToken(now) ? route(req)
                       : awsError(429, "LimitExceededException",
                                  "Too Many Requests: over " + std::to_string(rate_) + " management requests per second");
    log::debug("management request", {log::Field("method", req.method), log::Field("path", req.path),
                                      log::Field("status", r.status), log::Field("sourceIp", peer)});
    return r;
}

std::optional<ManagementResponse> ManagementRoutes::refusalBeforeBody(const HttpRequest &req) {
    if (isOperationsPath(req.path)) return std::nullopt;
    return refusalOfHead(req, parseManagementPath(req.path), false);
}

// Everything about a /@connections, /@groups or /@broadcast request that its head decides: the path,
// credentials, the method, the ID and group name, and the size (the body's, or before it has come the
// declared Content-Length). Nothing when the request is to be carried out.
std::optional<ManagementResponse> ManagementRoutes::refusalOfHead(const HttpRequest &req, const ManagementPath &mp, bool bodyKnown) {
    if (mp.target == ManagementTarget::Unknown) {
        if (mp.badEncoding) return awsError(400, "BadRequestException", mp.error);
        std::string why = mp.error.empty() ? "no such resource" : mp.error;
        return awsError(404, "NotFoundException",
                        why + ": the management API serves /@connections/{connectionId}, /@connections, "
                              "/@groups/{group}, /@groups/{group}/connections/{connectionId}, /@broadcast, /@users/{userId}, /@routes, "
                              "/@info, /metrics, /healthz, /readyz and /console");
    }
    std::string reason;
    if (!authorizeManagementRequest(credentials_, req, reason, bodyKnown)) return awsError(403, "ForbiddenException", reason);
    auto methodNotAllowed = [](const std::string &message, const char *allow) {
        ManagementResponse e = awsError(405, "MethodNotAllowedException", message);
        e.headers.emplace_back("Allow", allow);
        return e;
    };
    auto badId = [&mp] {
        return awsError(400, "BadRequestException",
                        "Invalid connectionId: '" + mp.connectionId.substr(0, 64) +
                            "' is not a connection ID this gateway could have issued (22 URL-safe base64 characters)");
    };
    switch (mp.target) {
    case ManagementTarget::ConnectionList:
        if (req.method != "GET") return methodNotAllowed("only GET lists connections", "GET");
        return std::nullopt;
    case ManagementTarget::Connection:
        if (!isWellFormedConnectionId(mp.connectionId)) return badId();
        if (req.method != "POST" && req.method != "GET" && req.method != "DELETE")
            return methodNotAllowed("use POST, GET or DELETE on /@connections/{connectionId}", "POST, GET, DELETE");
        break;
    case ManagementTarget::Group:
    case ManagementTarget::GroupMember:
    case ManagementTarget::Broadcast: {
        const char *allowed = mp.target == ManagementTarget::GroupMember ? "PUT, DELETE"
                              : mp.target == ManagementTarget::Group     ? "POST, GET"
                                                                         : "POST";
        bool methodOk = mp.target == ManagementTarget::GroupMember ? (req.method == "PUT" || req.method == "DELETE")
                        : mp.target == ManagementTarget::Group     ? (req.method == "POST" || req.method == "GET")
                                                                   : req.method == "POST";
        if (!methodOk) return methodNotAllowed("use " + std::string(allowed) + " on " + req.path, allowed);
        if (mp.target != ManagementTarget::Broadcast && !isValidGroupName(mp.group))
            return awsError(400, "BadRequestException", "Invalid group '" + mp.group.substr(0, 64) + "': " + groupNameRule());
        if (mp.target == ManagementTarget::GroupMember && !isWellFormedConnectionId(mp.connectionId)) return badId();
        break;
    }
    case ManagementTarget::User:
        if (req.method != "POST") return methodNotAllowed("use POST on /@users/{userId} to send to the user's connections", "POST");
        break;
    case ManagementTarget::Unknown:
        break;
    }
    size_t size = bodyKnown ? req.body.size() : req.contentLength;
    if (req.method == "POST" && size > host_.maxMessageBytes.load())
        return awsError(413, "PayloadTooLargeException",
                        "the data is " + std::to_string(size) + " bytes; the message limit is " +
                            std::to_string(host_.maxMessageBytes.load()));
    return std::nullopt;
}

ManagementResponse ManagementRoutes::route(const HttpRequest &req) {
    bool handled = false;
    ManagementResponse op = operationsRequest(req, credentials_, ops_, handled);
    if (handled) return op;
    ManagementPath mp = parseManagementPath(req.path);
    if (std::optional<ManagementResponse> refusal = refusalOfHead(req, mp, true)) return std::move(*refusal);
    if (mp.target == ManagementTarget::ConnectionList) return list(req);
    if (mp.target != ManagementTarget::Connection) return groups(req, mp);
    // A connection of this node is answered at once; any other may be on another node of the cluster.
    if (!host_.cluster || isLocal(host_, mp.connectionId)) return connectionRequest(host_, req.method, mp.connectionId, req.body);
    return defer_([&h = host_, method = req.method, id = mp.connectionId, body = req.body] {
        return connectionRequest(h, method, id, body);
    });
}

// The group endpoints, once refusalOfHead has passed the request.
ManagementResponse ManagementRoutes::groups(const HttpRequest &req, const ManagementPath &mp) {
    // On one node everything here is local and quick; in a cluster each may wait on Redis.
    const std::string &group = mp.target == ManagementTarget::User ? mp.user : mp.group;
    if (!host_.cluster) return groupRequest(host_, mp.target, req.method, group, mp.connectionId, req.body);
    return defer_([&h = host_, target = mp.target, method = req.method, group, id = mp.connectionId, body = req.body] {
        return groupRequest(h, target, method, group, id, body);
    });
}

// Beyond AWS: a page of live connections ordered by ID; `cursor` is the last ID of the previous page.
ManagementResponse ManagementRoutes::list(const HttpRequest &req) {
    size_t limit = kDefaultPageSize;
    std::string cursor;
    for (const auto &[k, v] : parseQueryString(req.rawQuery)) {
        if (k == "limit") {
            char *end = nullptr;
            long n = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end || n < 1 || n > static_cast<long>(kMaxPageSize))
                return awsError(400, "BadRequestException", "limit must be a number from 1 to " + std::to_string(kMaxPageSize));
            limit = static_cast<size_t>(n);
        } else if (k == "cursor") {
            cursor = v;
        } else {
            return awsError(400, "BadRequestException", "unknown query parameter '" + k + "': use limit and cursor");
        }
    }
    std::vector<std::shared_ptr<LiveConnection>> page;
    host_.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
        if (c->upgraded.load() && c->info.connectionId > cursor) page.push_back(c);
    });
    bool more = page.size() > limit;
    auto byId = [](const auto &a, const auto &b) { return a->info.connectionId < b->info.connectionId; };
    if (more) {
        std::partial_sort(page.begin(), page.begin() + static_cast<long>(limit), page.end(), byId);
        page.resize(limit);
    } else {
        std::sort(page.begin(), page.end(), byId);
    }
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("items");
    w.StartArray();
    for (const auto &c : page) {
        w.StartObject();
        w.Key("connectionId");
        w.String(c->info.connectionId);
        w.Key("connectedAt");
        w.String(formatIso8601Millis(c->info.connectedAtMs));
        w.Key("identity");
        w.StartObject();
        w.Key("sourceIp");
        w.String(c->info.sourceIp);
        w.Key("userAgent");
        w.String(c->info.userAgent);
        w.EndObject();
        w.Key("lastActiveAt");
        w.String(formatIso8601Millis(c->lastActiveAtMs.load()));
        w.EndObject();
    }
    w.EndArray();
    if (more) {
        w.Key("nextCursor");
        w.String(page.back()->info.connectionId);
    }
    w.EndObject();
    ManagementResponse ok;
    ok.body.assign(buf.GetString(), buf.GetSize());
    return ok;
}

}  // namespace wsgw
