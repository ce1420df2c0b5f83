// Owns: what the parts of one network thread's listener share (see README.md here): its settings, the route
// table it has installed, its libev loop and libwebsockets context, its sessions by connection ID, the
// message buffers it keeps for reuse and whether it is draining; and where each part is, so that one part
// hands a session on to the next (the upgrade reader to the $connect flow, the receiver to the writer...).
// One per Listener, used on its network thread only.
#pragma once

#include "connection_store.h"
#include "host_api.h"
#include "invoker.h"
#include "listener.h"
#include "monotonic_clock.h"
#include "refusal_log.h"
#include "route_table.h"
#include "session.h"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct ev_loop;

namespace wsgw {

class UpgradeReader;
class ConnectFlow;
class ProxyRelay;
class MessageReceiver;
class SessionWriter;
class SessionTimers;
class SessionCloser;
class CommandQueue;
class Drain;

struct NetworkThreadState {
    NetworkThreadState(ListenerSettings st, ConnectionRegistry &r, ConnectionStore &cs, HostContext &h, Invoker *const &invokerSlot)
        : settings(std::move(st)), registry(r), store(cs), host(h), invokerSlot_(invokerSlot) {}
    NetworkThreadState(const NetworkThreadState &) = delete;
    NetworkThreadState &operator=(const NetworkThreadState &) = delete;

    ListenerSettings settings;
    ConnectionRegistry &registry;
    ConnectionStore &store;
    HostContext &host;
    std::shared_ptr<const RouteTable> table;
    // The table's frame and message limits as every session's client frame screen checks them, updated in
    // place when a table is installed (the listener's and the command queue's swaps).
    ClientFrameLimits clientFrameLimits;
    std::string boundAddress;

    struct ev_loop *loop = nullptr;
    lws_context *context = nullptr;
    lws_vhost *vhost = nullptr;
    bool draining = false;

    // Keyed by a view of the session's own id: no second copy of the ID per connection.
    std::unordered_map<std::string_view, std::unique_ptr<Session>> sessions;
    Session *adopting = nullptr;  // the session whose socket lws_adopt is taking right now
    // Message buffers are reused on this thread: a sent reply (an echo sends back the very buffer its
    // message arrived in) becomes a later message's receive buffer, instead of one malloc and free each.
    std::vector<std::string> spareBuffers;
    RouteMetrics *connectMetrics = host.metrics.route("$connect");
    RouteMetrics *defaultMetrics = host.metrics.route("$default");

    // The parts (set by the Listener that owns them all, before start()).
    UpgradeReader *upgradeReader = nullptr;
    ConnectFlow *connectFlow = nullptr;
    ProxyRelay *proxyRelay = nullptr;
    MessageReceiver *receiver = nullptr;
    SessionWriter *writer = nullptr;
    SessionTimers *timers = nullptr;
    SessionCloser *closer = nullptr;
    CommandQueue *commands = nullptr;
    Drain *drain = nullptr;

    // The lines of refused upgrades and $connects: at most 10 a second at info level (refusal_log.h).
    RefusalLog refusalLog;

    // Azure Web PubSub: ends the recovery windows that are due (webpubsub_endpoint.cpp), once a second while
    // any reliable client waits to come back.
    ev_timer wpsRecoveryTimer{};
    bool wpsRecoveryTimerOn = false;

    // When this loop turn's messages were received (Invocation::receivedAt): one steady-clock reading per
    // turn, taken at its first message and dropped before the loop sleeps (Listener's onPrepare). Every
    // message a turn handles was waiting when the turn began, so a later one's latency includes the earlier
    // ones' handling, as it did for its client.
    std::chrono::steady_clock::time_point turnReceivedAt() {
        if (!turnClockRead_) {
            turnClock_ = std::chrono::steady_clock::now();
            turnClockRead_ = true;
        }
        return turnClock_;
    }
    void endTurn() { turnClockRead_ = false; }
    // The same reading in seconds: the loop's clock for idle, lifetime and close deadlines and throttles
    // (monotonic_clock.h says why not ev_now).
    double loopSeconds() { return monotonicSeconds(turnReceivedAt()); }

    Invoker &invoker() { return *invokerSlot_; }
    bool hasInvoker() const { return invokerSlot_ != nullptr; }

    Session *find(std::string_view id) {
        auto it = sessions.find(id);
        return it == sessions.end() ? nullptr : it->second.get();
    }

    const std::shared_ptr<Invoker::Lane> &laneOf(Session *s) {
        if (!s->lane) s->lane = invoker().newLane();
        return s->lane;
    }

    // Message buffers kept for reuse per network thread: as many as one turn's echoes of 64 connections with
    // 16 messages in flight each (a turn reads them all before it sends), within 1 MiB in all; and their
    // sizes: smaller ones cost little to allocate, larger ones are not worth holding on to.
    static constexpr size_t kSpareBuffers = 2048;
    static constexpr size_t kSpareTotalBytes = 1024 * 1024;
    static constexpr size_t kSpareMinBytes = 64;
    static constexpr size_t kSpareMaxBytes = 64 * 1024;

    void recycle(std::string &&buffer) {
        size_t bytes = buffer.capacity();
        if (bytes < kSpareMinBytes || bytes > kSpareMaxBytes || spareBuffers.size() >= kSpareBuffers ||
            spareBytes_ + bytes > kSpareTotalBytes)
            return;
        buffer.clear();
        spareBytes_ += bytes;
        spareBuffers.push_back(std::move(buffer));
    }
    std::string takeSpareBuffer() {  // spareBuffers is not empty
        std::string buffer = std::move(spareBuffers.back());
        spareBuffers.pop_back();
        spareBytes_ -= buffer.capacity();
        return buffer;
    }

    // Frees the session. By iterator, as the key views the id of the session being freed.
    void eraseSession(Session *s) {
        releasePendingIp(s);
        auto it = sessions.find(s->id);
        if (it != sessions.end()) sessions.erase(it);
    }

    void releasePendingIp(Session *s) {
        if (!s->pendingIpCounted) return;
        settings.pendingIpCounts->release(s->peer);
        s->pendingIpCounted = false;
    }

    void releaseIp(Session *s) {
        if (!s->ipCounted) return;
        settings.ipCounts->release(s->peer);
        s->ipCounted = false;
    }

    // An access-log line for an event the gateway answered itself (no handler ran).
    void logGatewayAnswer(const char *eventType, std::string_view connectionId, std::string_view routeKey, int status,
                          std::string_view sourceIp, std::string_view userAgent, std::string_view error,
                          std::string_view requestId = {}, int disconnectCode = 0);

private:
    Invoker *const &invokerSlot_;
    size_t spareBytes_ = 0;  // the capacities of spareBuffers
    std::chrono::steady_clock::time_point turnClock_{};
    bool turnClockRead_ = false;  // Listener::setInvoker's (set before run())
};

}  // namespace wsgw
