#include "host_api.h"

#include "connection_id.h"
#include "log.h"
#include "utf8.h"

#include <cstring>

namespace wsgw {

int postToConnection(HostContext &ctx, const std::string &connectionId, const void *data, size_t len, bool forceBinary) {
    if (len > ctx.maxMessageBytes.load(std::memory_order_relaxed)) return WSGW_TOO_LARGE;
    if (!ctx.registry->find(connectionId)) return WSGW_GONE;
    bool binary = forceBinary || !isValidUtf8(data, len);
    ctx.control->sendFrame(connectionId, std::string(static_cast<const char *>(data), len), binary);
    RouteMetrics::add(ctx.pushMetrics->messagesOut);
    return WSGW_OK;
}

int deleteConnection(HostContext &ctx, const std::string &connectionId) {
    if (!ctx.registry->find(connectionId)) return WSGW_GONE;
    ctx.control->closeConnection(connectionId, 1000, "");
    return WSGW_OK;
}

bool describeConnection(HostContext &ctx, const std::string &connectionId, std::string &out) {
    auto conn = ctx.registry->find(connectionId);
    if (!conn) return false;
    out = connectionDescriptionJson(conn->info, conn->lastActiveAtMs.load(std::memory_order_relaxed));
    return true;
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
}

}  // namespace wsgw
