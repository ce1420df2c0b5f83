#include "host_api.h"

#include "connection_id.h"
#include "log.h"
#include "utf8.h"

#include <cstring>

namespace wsgw {

bool isLocal(HostContext &ctx, const std::string &connectionId) { return ctx.registry->find(connectionId) != nullptr; }

int postLocal(HostContext &ctx, const std::string &connectionId, std::string data, bool binary) {
    if (!ctx.registry->find(connectionId)) return WSGW_GONE;
    ctx.control->sendFrame(connectionId, std::move(data), binary);
    RouteMetrics::add(ctx.pushMetrics->messagesOut);
    return WSGW_OK;
}

int postToConnection(HostContext &ctx, const std::string &connectionId, const void *data, size_t len, bool forceBinary) {
    if (len > ctx.maxMessageBytes.load(std::memory_order_relaxed)) return WSGW_TOO_LARGE;
    bool binary = forceBinary || !isValidUtf8(data, len);
    std::string bytes(static_cast<const char *>(data), len);
    int rc = postLocal(ctx, connectionId, std::move(bytes), binary);
    if (rc == WSGW_GONE && ctx.cluster)
        return ctx.cluster->postRemote(connectionId, std::string_view(static_cast<const char *>(data), len), binary);
    return rc;
}

int deleteLocal(HostContext &ctx, const std::string &connectionId) {
    if (!ctx.registry->find(connectionId)) return WSGW_GONE;
    ctx.control->closeConnection(connectionId, 1000, "");
    return WSGW_OK;
}

int deleteConnection(HostContext &ctx, const std::string &connectionId) {
    int rc = deleteLocal(ctx, connectionId);
    if (rc == WSGW_GONE && ctx.cluster) return ctx.cluster->deleteRemote(connectionId);
    return rc;
}

bool describeConnection(HostContext &ctx, const std::string &connectionId, std::string &out) {
    if (auto conn = ctx.registry->find(connectionId)) {
        out = connectionDescriptionJson(conn->info, conn->lastActiveAtMs.load(std::memory_order_relaxed));
        return true;
    }
    return ctx.cluster && ctx.cluster->describeRemote(connectionId, out);
}

int joinLocal(HostContext &ctx, const std::string &group, const std::string &connectionId) {
    if (!isValidGroupName(group)) return WSGW_ERROR;
    if (!ctx.registry->find(connectionId)) return WSGW_GONE;
    bool first = false;
    auto added = ctx.groups.add(group, connectionId, &first);
    if (added == GroupRegistry::AddResult::TooManyGroups) return WSGW_TOO_LARGE;
    if (added == GroupRegistry::AddResult::Added && ctx.cluster && !ctx.cluster->memberJoined(group, connectionId, first)) {
        bool last = false;
        ctx.groups.remove(group, connectionId, &last);
        if (last) ctx.cluster->groupsEmptied({group});
        return WSGW_ERROR;
    }
    // Closed while we were joining: the close already forgot its groups, so undo ours.
    if (!ctx.registry->find(connectionId)) {
        forgetConnectionGroups(ctx, connectionId);
        return WSGW_GONE;
    }
    return WSGW_OK;
}

int leaveLocal(HostContext &ctx, const std::string &group, const std::string &connectionId) {
    if (!isValidGroupName(group)) return WSGW_ERROR;
    if (!ctx.registry->find(connectionId)) return WSGW_GONE;
    bool last = false;
    if (ctx.groups.remove(group, connectionId, &last) && ctx.cluster) ctx.cluster->memberLeft(group, connectionId, last);
    return WSGW_OK;
}

int addToGroup(HostContext &ctx, const std::string &group, const std::string &connectionId) {
    int rc = joinLocal(ctx, group, connectionId);
    if (rc == WSGW_GONE && ctx.cluster) return ctx.cluster->joinRemote(group, connectionId);
    return rc;
}

int removeFromGroup(HostContext &ctx, const std::string &group, const std::string &connectionId) {
    int rc = leaveLocal(ctx, group, connectionId);
    if (rc == WSGW_GONE && ctx.cluster) return ctx.cluster->leaveRemote(group, connectionId);
    return rc;
}

size_t deliverLocal(HostContext &ctx, const std::string &group, std::string_view data, bool binary) {
    size_t sent = 0;
    auto send = [&](const std::string &id) {
        ctx.control->sendFrame(id, std::string(data), binary);
        ++sent;
    };
    if (group.empty()) {
        // Everyone: connections still in $connect are left out, as they are from GET /@connections.
        ctx.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
            if (c->upgraded.load(std::memory_order_acquire)) send(c->info.connectionId);
        });
    } else {
        for (const auto &id : ctx.groups.members(group)) send(id);
    }
    RouteMetrics::add(ctx.pushMetrics->messagesOut, sent);
    return sent;
}

int sendToGroup(HostContext &ctx, const std::string &group, const void *data, size_t len, bool forceBinary) {
    if (len > ctx.maxMessageBytes.load(std::memory_order_relaxed)) return WSGW_TOO_LARGE;
    if (!group.empty() && !isValidGroupName(group)) return WSGW_ERROR;
    bool binary = forceBinary || !isValidUtf8(data, len);
    std::string_view bytes(static_cast<const char *>(data), len);
    deliverLocal(ctx, group, bytes, binary);
    if (ctx.cluster) ctx.cluster->publishDeliver(group, bytes, binary);
    return WSGW_OK;
}

void forgetConnectionGroups(HostContext &ctx, const std::string &connectionId) {
    auto emptied = ctx.groups.removeConnection(connectionId);
    if (!emptied.empty() && ctx.cluster) ctx.cluster->groupsEmptied(std::move(emptied));
}

long copyOut(const std::string &text, char *buf, size_t cap) {
    if (buf && cap > text.size()) {
        std::memcpy(buf, text.data(), text.size());
        buf[text.size()] = '\0';
    } else if (buf && cap > 0) {
        std::memcpy(buf, text.data(), cap);
    }
    return static_cast<long>(text.size());
}

namespace {

int apiPost(wsgw_host *h, const char *id, const void *data, size_t len, int isBinary) {
    if (!h || !id || (!data && len)) return WSGW_ERROR;
    return postToConnection(*h->ctx, id, data, len, isBinary != 0);
}

int apiDelete(wsgw_host *h, const char *id) {
    if (!h || !id) return WSGW_ERROR;
    return deleteConnection(*h->ctx, id);
}

long apiGet(wsgw_host *h, const char *id, char *buf, size_t cap) {
    if (!h || !id) return -1;
    std::string json;
    if (!describeConnection(*h->ctx, id, json)) return -1;
    return copyOut(json, buf, cap);
}

const char *apiEventJson(wsgw_host *, const wsgw_event *ev, size_t *len) {
    if (!ev) return nullptr;
    // Only events the gateway built carry the magic; anything else (a plugin's own struct) gets nullptr.
    auto *ie = reinterpret_cast<InvocationEvent *>(const_cast<wsgw_event *>(ev));
    if (ie->magic != InvocationEvent::kMagic || !ie->connection) return nullptr;
    if (!ie->jsonBuilt) {
        ie->json = buildEventJson(*ie->connection, ie->fields);
        ie->jsonBuilt = true;
    }
    if (len) *len = ie->json.size();
    return ie->json.c_str();
}

int apiAddToGroup(wsgw_host *h, const char *group, const char *id) {
    if (!h || !group || !id) return WSGW_ERROR;
    return addToGroup(*h->ctx, group, id);
}

int apiRemoveFromGroup(wsgw_host *h, const char *group, const char *id) {
    if (!h || !group || !id) return WSGW_ERROR;
    return removeFromGroup(*h->ctx, group, id);
}

int apiSendToGroup(wsgw_host *h, const char *group, const void *data, size_t len, int isBinary) {
    if (!h || !group || !*group || (!data && len)) return WSGW_ERROR;
    return sendToGroup(*h->ctx, group, data, len, isBinary != 0);
}

int apiSendToAll(wsgw_host *h, const void *data, size_t len, int isBinary) {
    if (!h || (!data && len)) return WSGW_ERROR;
    return sendToGroup(*h->ctx, "", data, len, isBinary != 0);
}

void apiLog(wsgw_host *h, int level, const char *message) {
    log::Level l = level <= WSGW_LOG_DEBUG ? log::Level::Debug
                   : level == WSGW_LOG_INFO ? log::Level::Info
                   : level == WSGW_LOG_WARN ? log::Level::Warn
                                            : log::Level::Error;
    if (!log::enabled(l)) return;
    log::write(l, message ? message : "", {log::Field("handler", h ? h->instanceName : std::string())});
}

}  // namespace

void initHostApi(wsgw_host &host, HostContext *ctx, std::string instanceName) {
    host.ctx = ctx;
    host.instanceName = std::move(instanceName);
    host.api.size = sizeof(wsgw_host_api);
    host.api.abi_version = WSGW_ABI_VERSION;
    host.api.host = &host;
    host.api.post_to_connection = apiPost;
    host.api.delete_connection = apiDelete;
    host.api.get_connection = apiGet;
    host.api.event_json = apiEventJson;
    host.api.log = apiLog;
    host.api.add_to_group = apiAddToGroup;
    host.api.remove_from_group = apiRemoveFromGroup;
    host.api.send_to_group = apiSendToGroup;
    host.api.send_to_all = apiSendToAll;
}

}  // namespace wsgw
