// The in-process host API handed to plugins (wsgw_host_api of <wsgw/handler.h>): post, delete and get any
// connection by ID, the lazily built event JSON, and logging. Every function is thread-safe: lookups go
// to the ConnectionRegistry and actions become commands for the network thread (ConnectionControl).
#pragma once

#include "access_log.h"
#include "cluster_bus.h"
#include "connection_registry.h"
#include "group_registry.h"
#include "host_api_checks.h"
#include "event.h"
#include "metrics.h"
#include "webpubsub_registry.h"

#include <wsgw/handler.h>

#include <atomic>
#include <memory>
#include <string>

namespace wsgw {

// The close of a connection whose send queue went over limits.maxSendQueueBytes (docs/limits.md).
inline constexpr const char *kSlowConsumerReason = "Slow consumer: send queue over maxSendQueueBytes";

// What other threads may ask of the network thread. Implementations queue and wake it; they never block.
class ConnectionControl {
public:
    virtual ~ConnectionControl() = default;
    // Queues a frame for the connection's client. False when it was not queued: the connection is gone, or
    // the frame would take its send queue over maxSendQueueBytes (it is then closed as a slow consumer,
    // with 1008). The sender answers GONE.
    virtual bool sendFrame(const std::string &connectionId, std::string data, bool binary) = 0;
    // The same to a connection the caller holds (a route response): no lookup by ID, here or on the network
    // thread (two hash lookups a message at 10,000 connections).
    virtual bool sendFrameTo(const std::shared_ptr<LiveConnection> &conn, std::string data, bool binary) {
        return sendFrame(conn->info.connectionId, std::move(data), binary);
    }
    // The same for a payload shared by many recipients (group sends, broadcasts): held once, not per recipient.
    virtual bool sendShared(const std::string &connectionId, std::shared_ptr<const std::string> payload, bool binary) = 0;
    // A worker brought the connection's pending messages below half of the bounds: read its socket again.
    virtual void resumeReading(const std::string &connectionId) = 0;
    virtual void closeConnection(const std::string &connectionId, int code, std::string reason) = 0;
    // The outcome of a $connect: status 0 accepts; otherwise the upgrade is refused with that HTTP status.
    virtual void connectDecided(const std::string &connectionId, int status, std::string body) = 0;
};

struct HostContext {
    ConnectionRegistry *registry = nullptr;
    ConnectionControl *control = nullptr;
    std::atomic<size_t> maxMessageBytes{131072};
    std::atomic<size_t> maxSendQueueBytes{1048576}, maxPendingMessages{64}, maxPendingBytes{1048576};  // docs/limits.md
    Metrics metrics;
    RouteMetrics *pushMetrics = metrics.route(Metrics::kPushRoute);  // frames pushed by ID, from any source
    AccessLog *accessLog = nullptr;                             // null: --access-log off
    GroupRegistry groups;                                       // this node's connections' groups
    ClusterBus *cluster = nullptr;                              // null: a single node
    WebPubSubClients webPubSub;  // this node's Azure Web PubSub clients (docs/webpubsub.md); empty: none
};

// The wsgw_event a handler sees is the first member of this, so event_json can find the rest.
struct InvocationEvent {
    wsgw_event ev{};
    uint64_t magic = kMagic;
    const ConnectionInfo *connection = nullptr;
    EventFields fields;
    std::string json;
    bool jsonBuilt = false;
    static constexpr uint64_t kMagic = 0x7773677765763031ULL;  // "wsgwev01"
};

// Marks `event` as the invocation running on this thread for as long as it lives: event_json answers only
// for registered events, found by address, so a wsgw_event the gateway did not make is never read.
class RunningEvent {
public:
    explicit RunningEvent(InvocationEvent &event);
    ~RunningEvent();
    RunningEvent(const RunningEvent &) = delete;
    RunningEvent &operator=(const RunningEvent &) = delete;

    struct Slot;  // this thread's: which event it runs

private:
    Slot *events_;
    InvocationEvent *previous_;
};

// Pushes, closes and groups by ID, shared by the host API and the management API. A connection on another
// node of the cluster is reached through ctx.cluster, which may wait on Redis: on the network thread call
// these only for local connections (isLocal) and hand the rest to ctx.cluster->runBlocking.
int postToConnection(HostContext &ctx, const std::string &connectionId, const void *data, size_t len, bool forceBinary);
int deleteConnection(HostContext &ctx, const std::string &connectionId);
int addToGroup(HostContext &ctx, const std::string &group, const std::string &connectionId);
int removeFromGroup(HostContext &ctx, const std::string &group, const std::string &connectionId);
// Sends to the members of `group` ("" = every connection) on every node. Returns WSGW_OK or WSGW_TOO_LARGE.
int sendToGroup(HostContext &ctx, const std::string &group, const void *data, size_t len, bool forceBinary);
bool isLocal(HostContext &ctx, const std::string &connectionId);

// The local halves, which is what a node does when another node asks (cluster_node.cpp).
int postLocal(HostContext &ctx, const std::string &connectionId, std::string data, bool binary);
int deleteLocal(HostContext &ctx, const std::string &connectionId);
int joinLocal(HostContext &ctx, const std::string &group, const std::string &connectionId);
int leaveLocal(HostContext &ctx, const std::string &group, const std::string &connectionId);
size_t deliverLocal(HostContext &ctx, const std::string &group, std::string_view data, bool binary);
// The network thread forgets a closed connection's groups (queues the cluster's part; never blocks).
void forgetConnectionGroups(HostContext &ctx, const std::string &connectionId);
// Fills `out` with the GET /@connections/{id} JSON; false when the connection is unknown.
bool describeConnection(HostContext &ctx, const std::string &connectionId, std::string &out);

}  // namespace wsgw

// One per plugin instance: the instance name goes into its log lines.
struct wsgw_host {
    wsgw::HostContext *ctx = nullptr;
    std::string instanceName;
    wsgw_host_api api{};
    std::unique_ptr<wsgw::HostOperations> operations;  // what the checked entry points of `api` call
};

namespace wsgw {
void initHostApi(wsgw_host &host, HostContext *ctx, std::string instanceName);
}
