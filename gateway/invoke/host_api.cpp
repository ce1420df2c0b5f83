#include "host_api.h"

#include "connection_id.h"
#include "log.h"
#include "utf8.h"
#include "webpubsub_clients.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace wsgw {

bool isLocal(HostContext &ctx, const std::string &connectionId) { return ctx.registry->find(connectionId) != nullptr; }

int postLocal(HostContext &ctx, const std::string &connectionId, std::string data, bool binary) {
    // An Azure Web PubSub client on a subprotocol gets the data as a message from the server
    // (docs/webpubsub.md).
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
        return ctx.cluster->postRemote(connectionId, std::string_view(static_cast<const char *>(data), len), binary, nullptr);
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
    if (isWpsUserGroup(group)) return WSGW_ERROR;  // a user's connections, kept by the gateway (docs/webpubsub.md)
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
    // One copy of the payload, shared by every recipient's send queue (docs/limits.md, "Shared fan-out payloads").
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
    // This node's members have it; WSGW_ERROR tells the caller the other nodes' members may not.
    if (ctx.cluster && !ctx.cluster->publishDeliver(group, bytes, binary, nullptr, {})) return WSGW_ERROR;
    return WSGW_OK;
}

void forgetConnectionGroups(HostContext &ctx, const std::string &connectionId) {
    auto emptied = ctx.groups.removeConnection(connectionId);
    if (!emptied.empty() && ctx.cluster) ctx.cluster->groupsEmptied(std::move(emptied));
}

// The events of invocations running now, by thread. event_json compares the plugin's pointer with these
// addresses before reading anything: a wsgw_event the gateway did not make (a plugin's own, a copy, a
// stale pointer) is never read past its public fields, let alone cast.
// Its thread sets `running` without a lock (one per invocation would be two mutex round trips per message).
// Another thread that reads an event through it counts itself in `readers` first, and the owner, once it has
// taken its event off, waits until no reader is left: with both sides sequentially consistent, a reader
// either sees the event gone or is seen by the owner, which then waits for it to finish.
struct RunningEvent::Slot {
    std::atomic<InvocationEvent *> running{nullptr};
    std::atomic<unsigned> readers{0};
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
// finish the invocation while we are counted among its readers, and the copy built here belongs to the
// calling thread.
const char *foreignEventJson(const wsgw_event *ev, size_t *len) {
    std::unique_lock threadsLock(g_eventThreadsMutex);
    for (ThreadEvents *te : g_eventThreads) {
        te->readers.fetch_add(1, std::memory_order_seq_cst);
        InvocationEvent *running = te->running.load(std::memory_order_seq_cst);
        if (!running || &running->ev != ev || !running->connection) {
            te->readers.fetch_sub(1, std::memory_order_release);
            continue;
        }
        threadsLock.unlock();
        t_foreignEventJson = buildEventJson(*running->connection, running->fields);
        te->readers.fetch_sub(1, std::memory_order_release);
        if (len) *len = t_foreignEventJson.size();
        return t_foreignEventJson.c_str();
    }
    return nullptr;
}

// An event running on this thread or another one; NULL for any event the gateway is not running now.
const char *runningEventJson(const wsgw_event &ev, size_t *len) {
    ThreadEvents *own = t_events.events;
    InvocationEvent *mine = own ? own->running.load(std::memory_order_relaxed) : nullptr;  // only this thread writes it
    if (mine && &mine->ev == &ev && mine->connection) return ownEventJson(*mine, len);
    return foreignEventJson(&ev, len);
}

// What an in-process plugin's host API calls do (the checks are host_api_checks.cpp's). `host` is NULL for
// a plugin that passed no wsgw_host: what needs one fails, event_json and log still answer.
class InProcessOperations final : public HostOperations {
public:
    explicit InProcessOperations(wsgw_host *host) : host_(host) {}

    int post(const char *id, std::string_view data, bool binary) override {
        return postToConnection(context(), id, data.data(), data.size(), binary);
    }
    int deleteConnection(const char *id) override { return wsgw::deleteConnection(context(), id); }
    bool describe(const char *id, std::string &json) override { return describeConnection(context(), id, json); }
    const char *eventJson(const wsgw_event &ev, size_t *len) override { return runningEventJson(ev, len); }
    int addToGroup(const char *group, const char *id) override { return wsgw::addToGroup(context(), group, id); }
    int removeFromGroup(const char *group, const char *id) override { return wsgw::removeFromGroup(context(), group, id); }
    int sendToGroup(const char *group, std::string_view data, bool binary) override {
        return wsgw::sendToGroup(context(), group, data.data(), data.size(), binary);
    }
    int sendToAll(std::string_view data, bool binary) override {
        return wsgw::sendToGroup(context(), "", data.data(), data.size(), binary);
    }
#ifdef WSGW_HOST_API_HAS_USERS
    int sendToUser(const char *userId, std::string_view data, bool binary) override {
        return wsgw::sendToUser(context(), userId, data.data(), data.size(), binary);
    }
#endif
    void log(int level, const char *message) override {
        log::Level l = level <= WSGW_LOG_DEBUG ? log::Level::Debug
                       : level == WSGW_LOG_INFO ? log::Level::Info
                       : level == WSGW_LOG_WARN ? log::Level::Warn
                                                : log::Level::Error;
        if (!log::enabled(l)) return;
        log::write(l, message, {log::Field("handler", host_ ? host_->instanceName : std::string())});
    }

private:
    // Thrown at the plugin's bug, and turned into the call's error value by its entry point.
    HostContext &context() {
        if (!host_ || !host_->ctx) throw std::invalid_argument("no wsgw_host");
        return *host_->ctx;
    }
    wsgw_host *host_;
};

InProcessOperations g_withoutHost(nullptr);

HostOperations *inProcessOperations(wsgw_host *h) { return h ? h->operations.get() : &g_withoutHost; }

}  // namespace

RunningEvent::RunningEvent(InvocationEvent &event) : events_(&t_events.get()) {
    previous_ = events_->running.load(std::memory_order_relaxed);
    events_->running.store(&event, std::memory_order_release);
}

RunningEvent::~RunningEvent() {
    events_->running.store(previous_, std::memory_order_seq_cst);
    // A reader that saw the event before it was taken off is still building its JSON from it.
    while (events_->readers.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
}

void initHostApi(wsgw_host &host, HostContext *ctx, std::string instanceName) {
    host.ctx = ctx;
    host.instanceName = std::move(instanceName);
    host.operations = std::make_unique<InProcessOperations>(&host);
    fillHostApi<inProcessOperations>(host.api, &host);
}

}  // namespace wsgw
