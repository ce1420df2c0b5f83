// The public WebSocket listener and the network thread. It owns the listening socket, reads and checks
// each upgrade request itself (so $connect can run on a worker and refuse with any HTTP status), then hands
// the socket to libwebsockets, which speaks the WebSocket protocol. Frames are reassembled here, routed
// by the current RouteTable and queued to the Invoker; results and pushes come back through one command
// queue (ConnectionControl) and are written only on this thread. Runs on a libev loop (O(1) wake-ups).
#pragma once

#include "connection_registry.h"
#include "connection_store.h"
#include "drain_deadline.h"
#include "host_api.h"
#include "invoker.h"
#include "options.h"
#include "route_table.h"

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

struct ev_loop;

namespace wsgw {

// Connections per source address across every network thread (limits.maxConnectionsPerIp).
class IpConnectionCounts {
public:
    bool tryAdd(const std::string &ip, size_t max);  // false: `ip` already has `max`
    void release(const std::string &ip);

private:
    std::mutex mutex_;
    std::unordered_map<std::string, size_t> counts_;
};

struct ListenerSettings {
    HostPort listen;
    std::string nodeId;
    // --network-threads: each thread runs its own Listener on the same port (SO_REUSEPORT). The primary
    // one (index 0) also takes the signals and carries the management API.
    unsigned threadIndex = 0;
    unsigned reusePortSockets = 0;  // > 1: one SO_REUSEPORT socket per network thread (listen_socket.h)
    std::shared_ptr<IpConnectionCounts> ipCounts = std::make_shared<IpConnectionCounts>();
    // Sockets of each address not yet upgraded (in their TLS handshake or before their request head is
    // read), bounded by the same maxConnectionsPerIp: sockets that never send a request cannot hold an
    // address's way past the limit, nor the descriptors everyone else needs.
    std::shared_ptr<IpConnectionCounts> pendingIpCounts = std::make_shared<IpConnectionCounts>();
    int drainSeconds = 10;
    // Shared by every network thread (and main's waits after the loops end): the drain's one deadline.
    std::shared_ptr<DrainDeadline> drainDeadline = std::make_shared<DrainDeadline>();
    std::string tlsCert, tlsKey;  // both set: wss://
    std::string backendCa;        // CAs for wss:// proxy backends ("" = the system's only)
};

// The limits other threads read (the host API, the management API, workers) from the installed table.
void applyLimits(HostContext &host, const Limits &limits);

// NetworkThreads (the ConnectionControl) reserves a frame's bytes and finds the owning Listener; these queue
// the command to its network thread.
class Listener final {
public:
    Listener(ListenerSettings settings, ConnectionRegistry &registry, ConnectionStore &store, HostContext &host);
    ~Listener();
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;

    // Binds the public socket and creates the libwebsockets context. Returns "" or what went wrong.
    std::string start();
    void setListenPort(int port);  // before start(): another network thread chose the port
    std::string boundAddress() const;
    bool accepting() const;  // bound and not draining; network thread only
    bool tlsEnabled() const;  // wss://
    struct ev_loop *loop() const;  // the network thread's loop, for other listeners that share the thread
    void setInvoker(Invoker *invoker) { invoker_ = invoker; }
    void setRouteTable(std::shared_ptr<const RouteTable> table);  // before run() and after it returns
    // While running, from another thread: installs `table` on the network thread between two events and
    // returns the table it replaced (or `table` itself when the loop did not take it within 10 s).
    std::shared_ptr<const RouteTable> replaceRouteTable(std::shared_ptr<const RouteTable> table);
    // Called on the network thread at SIGHUP; it must only hand the work on.
    void setReloadRequest(std::function<void()> request);
    // The primary thread calls this when a signal starts the drain (it tells the other threads).
    void setDrainHook(std::function<void()> hook);
    void requestDrain();  // from any thread: stop accepting and close every connection with 1001
    // Serves until SIGTERM or SIGINT, then drains: stops accepting, closes every connection with 1001 and
    // lets its $disconnect run. Returns when the loop has ended and libwebsockets is torn down.
    void run();

    void sendFrame(const std::string &connectionId, std::string data, bool binary);
    void sendFrame(const std::shared_ptr<LiveConnection> &conn, std::string data, bool binary);
    void sendShared(const std::string &connectionId, std::shared_ptr<const std::string> payload, bool binary);
    void closeConnection(const std::string &connectionId, int code, std::string reason);
    void connectDecided(const std::string &connectionId, int status, std::string body);
    void resumeReading(const std::string &connectionId);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
    Invoker *invoker_ = nullptr;
};

}  // namespace wsgw
