// Azure Web PubSub on this node: client state, wrapped delivery, client requests, users and the REST
// operations (see webpubsub_clients.h and webpubsub_registry.h).
#include "webpubsub_clients.h"

#include "connection_id.h"
#include "digest.h"
#include "log.h"
#include "webpubsub_token.h"

#include <algorithm>

namespace wsgw {

// ---- the registry ----

void WebPubSubClients::add(std::shared_ptr<WpsClientState> state) {
    std::lock_guard lock(mutex_);
    std::string id = state->connectionId;
    if (byId_.insert_or_assign(std::move(id), std::move(state)).second) count_.fetch_add(1, std::memory_order_relaxed);
}

void WebPubSubClients::remove(const std::string &connectionId) {
    std::lock_guard lock(mutex_);
    if (byId_.erase(connectionId)) count_.fetch_sub(1, std::memory_order_relaxed);
}

std::shared_ptr<WpsClientState> WebPubSubClients::find(const std::string &connectionId) const {
    if (empty()) return nullptr;
    std::lock_guard lock(mutex_);
    auto it = byId_.find(connectionId);
    return it == byId_.end() ? nullptr : it->second;
}

void WebPubSubClients::detach(const std::string &connectionId, std::shared_ptr<LiveConnection> live, std::string token,
                              int64_t nowMs, int64_t windowMs) {
    std::lock_guard lock(detachedMutex_);
    window_.detach(connectionId, std::move(token), nowMs, windowMs);
    detached_[connectionId] = std::move(live);
}

std::shared_ptr<LiveConnection> WebPubSubClients::resume(const std::string &connectionId, std::string_view token, int64_t nowMs,
                                                         WpsRecoveryWindow::Resume *why) {
    std::lock_guard lock(detachedMutex_);
    *why = window_.resume(connectionId, token, nowMs);
    if (*why != WpsRecoveryWindow::Resume::Resumed) return nullptr;
    auto it = detached_.find(connectionId);
    if (it == detached_.end()) return nullptr;
    auto live = std::move(it->second);
    detached_.erase(it);
    return live;
}

std::vector<std::shared_ptr<LiveConnection>> WebPubSubClients::expire(int64_t nowMs) {
    std::lock_guard lock(detachedMutex_);
    std::vector<std::shared_ptr<LiveConnection>> out;
    for (const std::string &id : window_.expire(nowMs)) {
        auto it = detached_.find(id);
        if (it == detached_.end()) continue;
        out.push_back(std::move(it->second));
        detached_.erase(it);
    }
    return out;
}

size_t WebPubSubClients::detachedCount() const {
    std::lock_guard lock(detachedMutex_);
    return detached_.size();
}

std::shared_ptr<LiveConnection> WebPubSubClients::detachedConnection(const std::string &connectionId) const {
    std::lock_guard lock(detachedMutex_);
    auto it = detached_.find(connectionId);
    return it == detached_.end() ? nullptr : it->second;
}

// ---- users ----

namespace {
constexpr std::string_view kUserGroupPrefix = "~user.";
constexpr std::string_view kHashedUserGroupPrefix = "~userh.";
}  // namespace

std::string wpsUserGroup(std::string_view userId) {
    std::string encoded = base64UrlEncode(reinterpret_cast<const unsigned char *>(userId.data()), userId.size());
    if (kUserGroupPrefix.size() + encoded.size() <= 128) return std::string(kUserGroupPrefix) + encoded;
    return std::string(kHashedUserGroupPrefix) + sha256Hex(userId);
}

bool isWpsUserGroup(std::string_view group) {
    return group.rfind(kUserGroupPrefix, 0) == 0 || group.rfind(kHashedUserGroupPrefix, 0) == 0;
}

// ---- sending to one client ----

bool wpsSendToClient(HostContext &ctx, WpsClientState &state, std::string message, bool sequenced) {
    if (!sequenced || !state.outbox) return ctx.control->sendFrame(state.connectionId, std::move(message), false);
    // Numbered and queued under the connection's mutex: frames reach the send queue in sequence order (the
    // client drops a number lower than one it has seen, so a reordering would lose a message).
    std::lock_guard lock(state.mutex);
    auto frame = state.outbox->append(message);
    if (!frame) {
        if (state.detached) state.lostWhileDetached = true;  // no socket to close: its recovery is refused
        else ctx.control->closeConnection(state.connectionId, 1008, kSlowConsumerReason);
        return false;
    }
    if (state.detached) return true;  // kept for the client's recovery
    return ctx.control->sendShared(state.connectionId, std::move(frame), false);
}

// ---- delivery ----

size_t wpsDeliverLocal(HostContext &ctx, const std::string &group, std::string_view raw, bool binary, const WpsGroupSend *send) {
    std::shared_ptr<const std::string> rawPayload;  // for plain connections, built on first use
    std::shared_ptr<const std::string> wrapped;     // the protocol message, built on first use
    auto protocolMessage = [&]() -> const std::string & {
        if (!wrapped) {
            if (send && send->fromClient)
                wrapped = std::make_shared<const std::string>(wpsGroupMessage(send->group, send->fromUserId, send->data));
            else if (send)
                wrapped = std::make_shared<const std::string>(wpsServerMessage(send->data));
            else
                wrapped = std::make_shared<const std::string>(wpsServerMessage(wpsDataFromFrame(raw, binary)));
        }
        return *wrapped;
    };
    size_t sent = 0;
    auto deliver = [&](const std::string &id) {
        if (send && (id == send->skipConnection ||
                     std::find(send->excluded.begin(), send->excluded.end(), id) != send->excluded.end()))
            return;
        auto state = ctx.webPubSub.find(id);
        if (state && state->subprotocol != WpsSubprotocol::None) {
            bool ok = state->outbox ? wpsSendToClient(ctx, *state, protocolMessage(), true)
                                    : (protocolMessage(), ctx.control->sendShared(id, wrapped, false));
            if (ok) ++sent;
            return;
        }
        if (!rawPayload) rawPayload = std::make_shared<const std::string>(raw);
        if (ctx.control->sendShared(id, rawPayload, binary)) ++sent;
    };
    if (group.empty()) {
        std::vector<std::string> ids;
        ctx.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
            if (c->upgraded.load(std::memory_order_acquire)) ids.push_back(c->info.connectionId);
        });
        for (const auto &id : ids) deliver(id);
    } else {
        for (const auto &id : ctx.groups.members(group)) deliver(id);
    }
    RouteMetrics::add(ctx.pushMetrics->messagesOut, sent);
    return sent;
}

namespace {

// What other nodes need of a REST call's `excluded`: the IDs that are not this node's connections (nor
// detached clients it keeps), without empty ones. Often none, and then the message to them keeps the form
// that older nodes read.
std::vector<std::string> excludedElsewhere(HostContext &ctx, const std::vector<std::string> &excluded) {
    std::vector<std::string> out;
    for (const auto &id : excluded)
        if (!id.empty() && !ctx.registry->find(id) && !ctx.webPubSub.find(id) && std::find(out.begin(), out.end(), id) == out.end())
            out.push_back(id);
    return out;
}

}  // namespace

int wpsSendToGroup(HostContext &ctx, const WpsGroupSend &send) {
    if (send.data.bytes.size() > ctx.maxMessageBytes.load(std::memory_order_relaxed)) return WSGW_TOO_LARGE;
    if (!send.group.empty() && !isValidGroupName(send.group)) return WSGW_ERROR;
    bool binary = send.data.type == WpsDataType::Binary;
    wpsDeliverLocal(ctx, send.group, send.data.bytes, binary, &send);
    // Other nodes get the bytes with how they render (data type, a client's publish), so that their
    // recipients get what this node's got, and the excluded IDs that may be theirs.
    if (ctx.cluster) {
        WpsRendering rendering{send.data.type, send.fromClient, send.fromClient ? send.fromUserId : std::string()};
        ctx.cluster->publishDeliver(send.group, send.data.bytes, binary, &rendering, excludedElsewhere(ctx, send.excluded));
    }
    return WSGW_OK;
}

size_t wpsDeliverFromCluster(HostContext &ctx, const std::string &group, std::string_view bytes, const WpsRendering &rendering,
                             const std::vector<std::string> &excluded) {
    bool binary = rendering.dataType == WpsDataType::Binary;
    // Plain connections only and nobody left out: the raw data, as any group send.
    if (ctx.webPubSub.empty() && excluded.empty()) return deliverLocal(ctx, group, bytes, binary);
    WpsGroupSend send;
    send.group = group;
    send.data = WpsData{rendering.dataType, std::string(bytes)};
    send.fromClient = rendering.fromGroup;
    send.fromUserId = rendering.fromUserId;
    send.excluded = excluded;
    return wpsDeliverLocal(ctx, group, bytes, binary, &send);
}

namespace {

// A local subprotocol client gets a message from the server; false (and rc unset) when the connection is
// not one here.
bool sendToLocalClient(HostContext &ctx, const std::string &connectionId, const WpsData &data, int &rc) {
    auto state = ctx.webPubSub.find(connectionId);
    if (!state || state->subprotocol == WpsSubprotocol::None) return false;
    rc = WSGW_GONE;
    if (!wpsSendToClient(ctx, *state, wpsServerMessage(data), true)) return true;
    RouteMetrics::add(ctx.pushMetrics->messagesOut);
    rc = WSGW_OK;
    return true;
}

}  // namespace

int wpsPostLocal(HostContext &ctx, const std::string &connectionId, WpsData data) {
    if (int rc; sendToLocalClient(ctx, connectionId, data, rc)) return rc;
    bool binary = data.type == WpsDataType::Binary;
    return postLocal(ctx, connectionId, std::move(data.bytes), binary);
}

int wpsSendToConnection(HostContext &ctx, const std::string &connectionId, const WpsData &data) {
    if (data.bytes.size() > ctx.maxMessageBytes.load(std::memory_order_relaxed)) return WSGW_TOO_LARGE;
    if (int rc; sendToLocalClient(ctx, connectionId, data, rc)) return rc;
    bool binary = data.type == WpsDataType::Binary;
    int rc = postLocal(ctx, connectionId, data.bytes, binary);
    if (rc != WSGW_GONE || !ctx.cluster) return rc;
    // On another node (or nowhere): it renders the message as this node would have (the data type).
    WpsRendering rendering{data.type, false, {}};
    return ctx.cluster->postRemote(connectionId, data.bytes, binary, &rendering);
}

int wpsCloseLocal(HostContext &ctx, const std::string &connectionId, const std::string &reason) {
    if (auto state = ctx.webPubSub.find(connectionId); state && state->subprotocol != WpsSubprotocol::None)
        wpsSendToClient(ctx, *state, wpsDisconnectedMessage(reason.empty() ? "closed by the server" : reason), false);
    if (!ctx.registry->find(connectionId)) return WSGW_GONE;
    ctx.control->closeConnection(connectionId, 1000, reason.substr(0, 120));
    return WSGW_OK;
}

void wpsCloseAllLocal(HostContext &ctx, const std::vector<std::string> &excluded, const std::string &reason) {
    std::vector<std::string> ids;
    ctx.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
        if (c->upgraded.load(std::memory_order_acquire)) ids.push_back(c->info.connectionId);
    });
    for (const auto &id : ids)
        if (std::find(excluded.begin(), excluded.end(), id) == excluded.end()) wpsCloseLocal(ctx, id, reason);
}

int sendToUser(HostContext &ctx, const std::string &userId, const void *data, size_t len, bool forceBinary) {
    if (userId.empty()) return WSGW_ERROR;
    WpsGroupSend send;
    send.group = wpsUserGroup(userId);
    send.data = wpsDataFromFrame(std::string_view(static_cast<const char *>(data), len), forceBinary);
    return wpsSendToGroup(ctx, send);
}

// ---- connections opening and closing ----

int wpsClientOpened(HostContext &ctx, const std::shared_ptr<WpsClientState> &state, const std::vector<std::string> &groups) {
    ctx.webPubSub.add(state);
    if (!state->userId.empty()) {
        if (int rc = joinLocal(ctx, wpsUserGroup(state->userId), state->connectionId); rc != WSGW_OK) return rc;
    }
    for (const std::string &g : groups) {
        if (isWpsUserGroup(g)) return WSGW_ERROR;
        if (int rc = joinLocal(ctx, g, state->connectionId); rc != WSGW_OK) return rc;
    }
    if (state->subprotocol != WpsSubprotocol::None)
        wpsSendToClient(ctx, *state, wpsConnectedMessage(state->connectionId, state->userId, state->reconnectionToken), false);
    return WSGW_OK;
}

void wpsClientClosed(HostContext &ctx, const std::string &connectionId) { ctx.webPubSub.remove(connectionId); }

// ---- client requests ----

namespace {

void ack(HostContext &ctx, WpsClientState &state, const std::optional<uint64_t> &ackId) {
    if (ackId) wpsSendToClient(ctx, state, wpsAckSuccess(*ackId), false);
}

void ackError(HostContext &ctx, WpsClientState &state, const std::optional<uint64_t> &ackId, std::string_view name,
              const std::string &message) {
    if (ackId) wpsSendToClient(ctx, state, wpsAckError(*ackId, name, message), false);
    else log::debug("webpubsub request refused", {log::Field("connectionId", state.connectionId), log::Field("error", message)});
}

// A group a client may name: the registry's syntax, and not a user's internal group.
std::string groupProblem(const std::string &group) {
    if (isWpsUserGroup(group)) return "group names starting with '~user' are reserved for user IDs";
    if (!isValidGroupName(group)) {
        std::string problem = "'";  // appended, not "'" + ...: GCC 12's -Wrestrict false positive (bug 105329)
        problem.append(group, 0, 60);
        problem += "' is not a group name: ";
        problem += groupNameRule();
        return problem;
    }
    return "";
}

bool allowed(WpsClientState &state, WpsPermission p, const std::string &group) {
    std::lock_guard lock(state.mutex);
    return state.permissions.allows(p, group);
}

}  // namespace

void wpsAnswerProtocolError(HostContext &ctx, WpsClientState &state, const WpsProtocolError &error) {
    ackError(ctx, state, error.ackId, kWpsErrorBadRequest, error.message);
}

void wpsAnswerThrottled(HostContext &ctx, WpsClientState &state, const std::optional<uint64_t> &ackId) {
    ackError(ctx, state, ackId, kWpsErrorTooManyRequests,
             "Too Many Requests: over the API's throttle (routes.json \"throttle\"); the request was not done");
}

WpsNext wpsHandleClientMessage(HostContext &ctx, WpsClientState &state, const WpsClientMessage &msg) {
    using Kind = WpsClientMessage::Kind;
    if (msg.ackId && msg.kind != Kind::SequenceAck && msg.kind != Kind::Ping) {
        bool first;
        {
            std::lock_guard lock(state.mutex);
            first = state.ackIds.firstUse(*msg.ackId);
        }
        if (!first) {
            ackError(ctx, state, msg.ackId, kWpsErrorDuplicate,
                     "ackId " + std::to_string(*msg.ackId) + " was used before on this connection: the request was not done again");
            return WpsNext::Done;
        }
    }
    switch (msg.kind) {
    case Kind::JoinGroup:
    case Kind::LeaveGroup: {
        bool join = msg.kind == Kind::JoinGroup;
        if (auto problem = groupProblem(msg.group); !problem.empty()) {
            ackError(ctx, state, msg.ackId, kWpsErrorBadRequest, problem);
            return WpsNext::Done;
        }
        if (!allowed(state, WpsPermission::JoinLeaveGroup, msg.group)) {
            ackError(ctx, state, msg.ackId, kWpsErrorForbidden,
                     std::string("this client may not ") + (join ? "join" : "leave") + " group '" + msg.group +
                         "': its token needs the role webpubsub.joinLeaveGroup or webpubsub.joinLeaveGroup." + msg.group);
            return WpsNext::Done;
        }
        int rc = join ? joinLocal(ctx, msg.group, state.connectionId) : leaveLocal(ctx, msg.group, state.connectionId);
        if (rc == WSGW_OK) ack(ctx, state, msg.ackId);
        else if (rc == WSGW_TOO_LARGE)
            ackError(ctx, state, msg.ackId, kWpsErrorBadRequest,
                     "this connection is already in " + std::to_string(GroupRegistry::kMaxGroupsPerConnection) + " groups: leave one first");
        else
            ackError(ctx, state, msg.ackId, kWpsErrorInternal, "the group could not be changed (the cluster did not answer); try again");
        return WpsNext::Done;
    }
    case Kind::SendToGroup: {
        if (auto problem = groupProblem(msg.group); !problem.empty()) {
            ackError(ctx, state, msg.ackId, kWpsErrorBadRequest, problem);
            return WpsNext::Done;
        }
        if (!allowed(state, WpsPermission::SendToGroup, msg.group)) {
            ackError(ctx, state, msg.ackId, kWpsErrorForbidden,
                     "this client may not send to group '" + msg.group +
                         "': its token needs the role webpubsub.sendToGroup or webpubsub.sendToGroup." + msg.group);
            return WpsNext::Done;
        }
        WpsGroupSend send;
        send.group = msg.group;
        send.data = msg.data;
        send.fromClient = true;
        send.fromUserId = state.userId;
        if (msg.noEcho) send.skipConnection = state.connectionId;
        int rc = wpsSendToGroup(ctx, send);
        if (rc == WSGW_OK) ack(ctx, state, msg.ackId);
        else if (rc == WSGW_TOO_LARGE)
            ackError(ctx, state, msg.ackId, kWpsErrorBadRequest,
                     "the data is over limits.maxMessageBytes (" + std::to_string(ctx.maxMessageBytes.load()) + " bytes)");
        else
            ackError(ctx, state, msg.ackId, kWpsErrorInternal, "the message could not be sent");
        return WpsNext::Done;
    }
    case Kind::SequenceAck:
        if (state.outbox) {
            std::lock_guard lock(state.mutex);
            state.outbox->acknowledge(msg.sequenceId);
        }
        return WpsNext::Done;
    case Kind::Ping:
        wpsSendToClient(ctx, state, wpsPongMessage(), false);
        return WpsNext::Done;
    case Kind::Event:
    case Kind::Invoke: return WpsNext::Route;
    }
    return WpsNext::Done;
}

void wpsAnswerEvent(HostContext &ctx, WpsClientState &state, const WpsClientMessage &msg, bool failed,
                    std::string_view error, const std::string *responseBody, bool responseBinary) {
    std::optional<WpsData> response;
    if (responseBody) {
        // The route's answer keeps the event's JSON-ness when it is JSON; otherwise text, or binary bytes.
        if (!responseBinary && msg.data.type == WpsDataType::Json && wpsDataFromContentType("application/json", *responseBody))
            response = WpsData{WpsDataType::Json, *responseBody};
        else
            response = wpsDataFromFrame(*responseBody, responseBinary);
    }
    if (msg.kind == WpsClientMessage::Kind::Invoke) {
        wpsSendToClient(ctx, state,
                        failed ? wpsInvokeError(msg.invocationId, kWpsErrorInternal, error)
                               : wpsInvokeResponse(msg.invocationId, response ? &*response : nullptr),
                        false);
        return;
    }
    if (failed) {
        ackError(ctx, state, msg.ackId, kWpsErrorInternal, std::string(error));
        return;
    }
    if (response) wpsSendToClient(ctx, state, wpsServerMessage(*response), true);
    ack(ctx, state, msg.ackId);
}

// ---- the REST API ----

namespace {

WpsRestResult restError(int status, std::string code, std::string message) {
    WpsRestResult r;
    r.status = status;
    r.errorCode = code;
    r.body = wpsRestErrorBody({status, std::move(code), std::move(message), ""});
    return r;
}

WpsRestResult status(int s) {
    WpsRestResult r;
    r.status = s;
    return r;
}

// Members of a group on every node (this node's alone when there is no cluster or Redis does not answer).
std::vector<std::string> membersEverywhere(HostContext &ctx, const std::string &group) {
    std::vector<std::string> out;
    if (ctx.cluster && ctx.cluster->groupMembers(group, out)) return out;
    return ctx.groups.members(group);
}

// Here, else on the node that holds it (which tells the client the same reason).
void closeWithReason(HostContext &ctx, const std::string &connectionId, const std::string &reason) {
    if (wpsCloseLocal(ctx, connectionId, reason) == WSGW_GONE && ctx.cluster) ctx.cluster->wpsCloseRemote(connectionId, reason);
}

bool isExcluded(const std::vector<std::string> &excluded, const std::string &connectionId) {
    return std::find(excluded.begin(), excluded.end(), connectionId) != excluded.end();
}

WpsRestResult sendResult(int rc, const char *what) {
    if (rc == WSGW_OK) return status(202);
    if (rc == WSGW_TOO_LARGE) return restError(413, "PayloadTooLarge", "the message is over limits.maxMessageBytes");
    if (rc == WSGW_GONE) return restError(404, "NotFound", std::string(what) + " is not connected");
    return restError(500, "InternalServerError", std::string("the message to ") + what + " could not be sent");
}

std::string jsonString(std::string_view s) {
    std::string out;
    log::appendJsonString(out, s);
    return out;
}

}  // namespace

namespace {

WpsRestResult performRestSend(HostContext &ctx, const WpsRestOperation &op) {
    if (op.op == WpsRestOp::SendToConnection) return sendResult(wpsSendToConnection(ctx, op.connectionId, *op.data), "the connection");
    WpsGroupSend send;
    send.group = op.op == WpsRestOp::SendToAll ? "" : op.op == WpsRestOp::SendToGroup ? op.group : wpsUserGroup(op.userId);
    send.data = *op.data;
    send.excluded = op.excluded;
    return sendResult(wpsSendToGroup(ctx, send), "the group");
}

WpsRestResult performRestClose(HostContext &ctx, const WpsRestOperation &op) {
    if (op.op == WpsRestOp::CloseConnection) {
        closeWithReason(ctx, op.connectionId, op.reason);
    } else if (op.op == WpsRestOp::CloseAllConnections) {
        std::vector<std::string> elsewhere = ctx.cluster ? excludedElsewhere(ctx, op.excluded) : std::vector<std::string>();
        wpsCloseAllLocal(ctx, op.excluded, op.reason);
        if (ctx.cluster) ctx.cluster->publishCloseAll(elsewhere, op.reason);
    } else {  // CloseGroupConnections, CloseUserConnections
        // Every node's members are listed (Redis), so the excluded are left out here for all of them.
        std::string group = op.op == WpsRestOp::CloseGroupConnections ? op.group : wpsUserGroup(op.userId);
        for (const auto &id : membersEverywhere(ctx, group))
            if (!isExcluded(op.excluded, id)) closeWithReason(ctx, id, op.reason);
    }
    return status(204);
}

WpsRestResult performRestConnectionGroupChange(HostContext &ctx, const WpsRestOperation &op) {
    if (op.op == WpsRestOp::RemoveConnectionFromAllGroups) {
        for (const auto &g : ctx.groups.groupsOf(op.connectionId))
            if (!isWpsUserGroup(g)) leaveLocal(ctx, g, op.connectionId);
        return status(204);
    }
    bool add = op.op == WpsRestOp::AddConnectionToGroup;
    int rc = add ? addToGroup(ctx, op.group, op.connectionId) : removeFromGroup(ctx, op.group, op.connectionId);
    if (rc == WSGW_OK) return status(op.successStatus);
    if (rc == WSGW_GONE)
        return add ? restError(404, "NotFound", "connection '" + op.connectionId.substr(0, 60) + "' is not connected") : status(204);
    if (rc == WSGW_TOO_LARGE) return restError(400, "BadRequest", "the connection is already in 256 groups");
    return restError(500, "InternalServerError", "the group could not be changed (the cluster did not answer)");
}

WpsRestResult performRestUserGroupChange(HostContext &ctx, const WpsRestOperation &op) {
    if (op.op == WpsRestOp::RemoveUserFromAllGroups) {
        for (const auto &id : ctx.groups.members(wpsUserGroup(op.userId)))
            for (const auto &g : ctx.groups.groupsOf(id))
                if (!isWpsUserGroup(g)) leaveLocal(ctx, g, id);
        return status(204);
    }
    for (const auto &id : membersEverywhere(ctx, wpsUserGroup(op.userId))) {
        if (op.op == WpsRestOp::AddUserToGroup) addToGroup(ctx, op.group, id);
        else removeFromGroup(ctx, op.group, id);
    }
    return status(op.successStatus);
}

WpsRestResult listGroupConnections(HostContext &ctx, const WpsRestOperation &op) {
    std::string body = "{\"value\":[";
    int listed = 0;
    for (const auto &id : membersEverywhere(ctx, op.group)) {
        if (op.top > 0 && listed >= op.top) break;
        if (listed++) body += ',';
        body += "{\"connectionId\":" + jsonString(id);
        if (auto state = ctx.webPubSub.find(id); state && !state->userId.empty()) body += ",\"userId\":" + jsonString(state->userId);
        body += '}';
    }
    body += "]}";
    WpsRestResult r = status(200);
    r.body = std::move(body);
    return r;
}

WpsRestResult performRestPermission(HostContext &ctx, const WpsRestOperation &op) {
    auto state = ctx.webPubSub.find(op.connectionId);
    if (!state) {
        if (op.op == WpsRestOp::CheckPermission) return status(404);
        return restError(404, "NotFound", "connection '" + op.connectionId.substr(0, 60) +
                                              "' is not a Web PubSub client of this node (permissions live on the node that holds it)");
    }
    std::lock_guard lock(state->mutex);
    if (op.op == WpsRestOp::GrantPermission) state->permissions.grant(*op.permission, op.targetName);
    if (op.op == WpsRestOp::RevokePermission) state->permissions.revoke(*op.permission, op.targetName);
    if (op.op == WpsRestOp::CheckPermission) return status(state->permissions.check(*op.permission, op.targetName) ? 200 : 404);
    return status(op.successStatus);
}

WpsRestResult generateClientToken(const WebPubSubSpec &spec, const WpsRestOperation &op, std::string_view host, int64_t nowSeconds) {
    WpsTokenClaims claims;
    claims.audience = "http://" + std::string(host) + "/client/hubs/" + op.hub;
    claims.userId = op.userId;
    claims.roles = op.roles;
    claims.groups = op.groups;
    claims.issuedAt = nowSeconds;
    claims.lifetimeSeconds = static_cast<int64_t>(op.minutesToExpire) * 60;
    WpsRestResult r = status(200);
    r.body = "{\"token\":" + jsonString(signWpsToken(spec.accessKeys.front(), claims)) + "}";
    return r;
}

}  // namespace

WpsRestResult performWpsRest(HostContext &ctx, const WebPubSubSpec &spec, const WpsRestOperation &op, std::string_view host,
                             int64_t nowSeconds) {
    if (op.data && op.data->bytes.size() > ctx.maxMessageBytes.load(std::memory_order_relaxed))
        return restError(413, "PayloadTooLarge",
                         "the message is over limits.maxMessageBytes (" + std::to_string(ctx.maxMessageBytes.load()) + " bytes)");
    if (!op.group.empty()) {
        if (auto problem = groupProblem(op.group); !problem.empty()) return restError(400, "BadRequest", problem);
    }
    switch (op.op) {
    case WpsRestOp::Health: return status(200);
    case WpsRestOp::SendToAll:
    case WpsRestOp::SendToGroup:
    case WpsRestOp::SendToUser:
    case WpsRestOp::SendToConnection: return performRestSend(ctx, op);
    case WpsRestOp::CloseConnection:
    case WpsRestOp::CloseAllConnections:
    case WpsRestOp::CloseGroupConnections:
    case WpsRestOp::CloseUserConnections: return performRestClose(ctx, op);
    case WpsRestOp::ConnectionExists: {
        std::string ignored;
        bool exists = ctx.registry->find(op.connectionId) != nullptr || (ctx.cluster && ctx.cluster->describeRemote(op.connectionId, ignored));
        return status(exists ? 200 : 404);
    }
    case WpsRestOp::GroupExists: return status(membersEverywhere(ctx, op.group).empty() ? 404 : 200);
    case WpsRestOp::UserExists: return status(membersEverywhere(ctx, wpsUserGroup(op.userId)).empty() ? 404 : 200);
    case WpsRestOp::AddConnectionToGroup:
    case WpsRestOp::RemoveConnectionFromGroup:
    case WpsRestOp::RemoveConnectionFromAllGroups: return performRestConnectionGroupChange(ctx, op);
    case WpsRestOp::AddUserToGroup:
    case WpsRestOp::RemoveUserFromGroup:
    case WpsRestOp::RemoveUserFromAllGroups: return performRestUserGroupChange(ctx, op);
    case WpsRestOp::ListConnectionsInGroup: return listGroupConnections(ctx, op);
    case WpsRestOp::GrantPermission:
    case WpsRestOp::RevokePermission:
    case WpsRestOp::CheckPermission: return performRestPermission(ctx, op);
    case WpsRestOp::GenerateToken: return generateClientToken(spec, op, host, nowSeconds);
    }
    return restError(404, "NotFound", "unknown operation");
}

}  // namespace wsgw
