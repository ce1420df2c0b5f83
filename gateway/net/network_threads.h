// --network-threads N: N network threads, each a Listener with its own libev loop and libwebsockets
// context, all accepting on the same port (SO_REUSEPORT: the kernel spreads new connections over them).
// They share the worker pool, the connection registry, the table and the host API. A connection stays on
// the thread that accepted it; what other threads ask for it (a push, a close, a $connect decision) is
// routed here to that thread's command queue. Thread 0 is the primary: it takes the signals and carries
// the management API, and its drain starts the others'.
#pragma once

#include "listener.h"

#include <memory>
#include <thread>
#include <vector>

namespace wsgw {

class NetworkThreads final : public ConnectionControl {
public:
    NetworkThreads(ListenerSettings settings, unsigned count, ConnectionRegistry &registry, ConnectionStore &store,
                   HostContext &host);
    ~NetworkThreads() override;

    // Binds every thread's socket (the first picks the port when it is 0); "" or what went wrong.
    std::string start();
    Listener &primary() { return *listeners_.front(); }
    unsigned count() const { return static_cast<unsigned>(listeners_.size()); }
    void setInvoker(Invoker *invoker);
    void setRouteTable(std::shared_ptr<const RouteTable> table);
    // Installs `table` on every thread; returns the table it replaced (see Listener::replaceRouteTable).
    std::shared_ptr<const RouteTable> replaceRouteTable(std::shared_ptr<const RouteTable> table);
    // Runs the primary on this thread and the others on their own; returns when all have drained.
    void run();

    bool sendFrame(const std::string &connectionId, std::string data, bool binary) override;
    bool sendFrameTo(const std::shared_ptr<LiveConnection> &conn, std::string data, bool binary) override;
    bool sendShared(const std::string &connectionId, std::shared_ptr<const std::string> payload, bool binary) override;
    void closeConnection(const std::string &connectionId, int code, std::string reason) override;
    void connectDecided(const std::string &connectionId, int status, std::string body) override;
    void resumeReading(const std::string &connectionId) override;

private:
    Listener *owner(const std::string &connectionId);
    // Reserves `len` bytes of the connection's send queue (limits.maxSendQueueBytes); the Listener to queue to,
    // or null when the connection is gone or the frame overflowed its queue (then it is being closed as a slow
    // consumer).
    Listener *reserve(const std::string &connectionId, size_t len);
    Listener *reserve(LiveConnection &conn, size_t len);
    ConnectionRegistry &registry_;
    HostContext &host_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::thread> threads_;
};

}  // namespace wsgw
