#include "host_api.h"

#include "connection_id.h"
#include "log.h"
#include "utf8.h"
#include "webpubsub_clients.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace wsgw {

bool isLocal(HostContext &ctx, const std::string &connectionId) { return ctx.registry->find(connectionId) != nullptr; }

int postLocal(HostContext &ctx, const std::string &connectionId, std::string data, bool binary) {
    // An Azure Web PubSub client on a subprotocol gets the data as a message from the server (SPEC 12).
    if (auto state = ctx.webPubSub.find(connectionId); state && state->subprotocol != WpsSubprotocol::None) {
        if (!wpsSendToClient(ctx, *state, wpsServerMessage(wpsDataFromFrame(data, binary)), true)) return WSGW_GONE;
        RouteMetrics::add(ctx.pushMetrics->messagesOut);
        return WSGW_OK;
    }
    // Gone, or over its send queue's bound (then closed as a slow consumer): either way not delivered.
    if (!ctx.control->sendFrame(connectionId, std::move(data), binary)) return WSGW_GONE;
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
    if (isWpsUserGroup(group)) return WSGW_ERROR;  // a user's connections, kept by the gateway (SPEC 12)
    int rc = joinLocal(ctx, group, connectionId);
    if (rc == WSGW_GONE && ctx.cluster) return ctx.cluster->joinRemote(group, connectionId);
    return rc;
}

int removeFromGroup(HostContext &ctx, const std::string &group, const std::string &connectionId) {
    if (isWpsUserGroup(group)) return WSGW_ERROR;
    int rc = leaveLocal(ctx, group, connectionId);
    if (rc == WSGW_GONE && ctx.cluster) return ctx.cluster->leaveRemote(group, connectionId);
    return rc;
}

size_t deliverLocal(HostContext &ctx, const std::string &group, std::string_view data, bool binary) {
    // With Azure Web PubSub clients connected, each recipient gets the data in its own protocol.
    if (!ctx.webPubSub.empty()) return wpsDeliverLocal(ctx, group, data, binary, nullptr);
    size_t sent = 0;
    // One copy of the payload, shared by every recipient's send queue (SPEC section 10).
    auto payload = std::make_shared<const std::string>(data);
    auto send = [&](const std::string &id) {
        if (ctx.control->sendShared(id, payload, binary)) ++sent;
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
    if (!group.empty() && (!isValidGroupName(group) || isWpsUserGroup(group))) return WSGW_ERROR;
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

// The events of invocations running now, by thread. event_json compares the plugin's pointer with these
// addresses before reading anything: a wsgw_event the gateway did not make (a plugin's own, a copy, a
// stale pointer) is never read past its public fields, let alone cast.
struct RunningEvent::Slot {
    std::mutex mutex;  // its thread writes `running` under it; other threads read it under it
    InvocationEvent *running = nullptr;
};

namespace {

using ThreadEvents = RunningEvent::Slot;
std::mutex g_eventThreadsMutex;
std::vector<ThreadEvents *> g_eventThreads;  // every thread that has run an invocation and not ended

struct ThreadEventsOwner {
    ThreadEvents *events = nullptr;
    ThreadEvents &get() {
        if (!events) {
            auto made = std::make_unique<ThreadEvents>();
            std::lock_guard lock(g_eventThreadsMutex);
            g_eventThreads.push_back(made.get());
            events = made.release();
        }
        return *events;
    }
    ~ThreadEventsOwner() {
        if (!events) return;
        {
            std::lock_guard lock(g_eventThreadsMutex);
            g_eventThreads.erase(std::find(g_eventThreads.begin(), g_eventThreads.end(), events));
        }
        delete events;
    }
};
thread_local ThreadEventsOwner t_events;
thread_local std::string t_foreignEventJson;  // event_json of another thread's invocation, for this thread

// The calling thread's own invocation: its event is built once, into the event itself.
const char *ownEventJson(InvocationEvent &ie, size_t *len) {
    if (!ie.jsonBuilt) {
        ie.json = buildEventJson(*ie.connection, ie.fields);
        ie.jsonBuilt = true;
    }
    if (len) *len = ie.json.size();
    return ie.json.c_str();
}

// An event running on another thread (a plugin's own thread asking during handle()): that thread cannot
// finish the invocation while we hold its mutex, and the copy built here belongs to the calling thread.
const char *foreignEventJson(const wsgw_event *ev, size_t *len) {
    std::unique_lock threadsLock(g_eventThreadsMutex);
    for (ThreadEvents *te : g_eventThreads) {
        std::unique_lock lock(te->mutex);
        if (!te->running || &te->running->ev != ev || !te->running->connection) continue;
        threadsLock.unlock();
        t_foreignEventJson = buildEventJson(*te->running->connection, te->running->fields);
        if (len) *len = t_foreignEventJson.size();
        return t_foreignEventJson.c_str();
    }
    return nullptr;
}

// Every entry point is noexcept: a C caller cannot take an exception, so bad_alloc and anything else
// thrown below become WSGW_ERROR (or -1 / NULL) instead of unwinding through the plugin.
int apiPost(wsgw_host *h, const char *id, const void *data, size_t len, int isBinary) noexcept {
    if (!h || !id || (!data && len)) return WSGW_ERROR;
    try {
        return postToConnection(*h->ctx, id, data, len, isBinary != 0);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int apiDelete(wsgw_host *h, const char *id) noexcept {
    if (!h || !id) return WSGW_ERROR;
    try {
        return deleteConnection(*h->ctx, id);
    } catch (...) {
        return WSGW_ERROR;
    }
}

long apiGet(wsgw_host *h, const char *id, char *buf, size_t cap) noexcept {
    if (!h || !id) return -1;
    try {
        std::string json;
        if (!describeConnection(*h->ctx, id, json)) return -1;
        return copyOut(json, buf, cap);
    } catch (...) {
        return -1;
    }
}

const char *apiEventJson(wsgw_host *, const wsgw_event *ev, size_t *len) noexcept {
    if (!ev) return nullptr;
    try {
        ThreadEvents *own = t_events.events;
        if (own && own->running && &own->running->ev == ev && own->running->connection)
            return ownEventJson(*own->running, len);  // only this thread writes `running`: no lock needed
        return foreignEventJson(ev, len);
    } catch (...) {
        return nullptr;
    }
}

int apiAddToGroup(wsgw_host *h, const char *group, const char *id) noexcept {
    if (!h || !group || !id) return WSGW_ERROR;
    try {
        return addToGroup(*h->ctx, group, id);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int apiRemoveFromGroup(wsgw_host *h, const char *group, const char *id) noexcept {
    if (!h || !group || !id) return WSGW_ERROR;
    try {
        return removeFromGroup(*h->ctx, group, id);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int apiSendToGroup(wsgw_host *h, const char *group, const void *data, size_t len, int isBinary) noexcept {
    if (!h || !group || !*group || (!data && len)) return WSGW_ERROR;
    try {
        return sendToGroup(*h->ctx, group, data, len, isBinary != 0);
    } catch (...) {
        return WSGW_ERROR;
    }
}

int apiSendToAll(wsgw_host *h, const void *data, size_t len, int isBinary) noexcept {
    if (!h || (!data && len)) return WSGW_ERROR;
    try {
        return sendToGroup(*h->ctx, "", data, len, isBinary != 0);
    } catch (...) {
        return WSGW_ERROR;
    }
}

void apiLog(wsgw_host *h, int level, const char *message) noexcept {
    log::Level l = level <= WSGW_LOG_DEBUG ? log::Level::Debug
                   : level == WSGW_LOG_INFO ? log::Level::Info
                   : level == WSGW_LOG_WARN ? log::Level::Warn
                                            : log::Level::Error;
    try {
        if (!log::enabled(l)) return;
        log::write(l, message ? message : "", {log::Field("handler", h ? h->instanceName : std::string())});
    } catch (...) {  // a log line lost to bad_alloc is not worth failing the caller
    }
}

}  // namespace

RunningEvent::RunningEvent(InvocationEvent &event) : events_(&t_events.get()) {
    std::lock_guard lock(events_->mutex);
    previous_ = events_->running;
    events_->running = &event;
}

RunningEvent::~RunningEvent() {
    std::lock_guard lock(events_->mutex);
    events_->running = previous_;
}

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
