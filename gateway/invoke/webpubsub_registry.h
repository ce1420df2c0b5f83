// The state of each connection of this node that came in through /client/hubs/{hub} (docs/webpubsub.md): hub,
// user ID, subprotocol, permissions, ackIds already used, and the reliable subprotocol's outbox. Held by
// HostContext so that every push path (host API, management API, group delivery from the cluster) can wrap
// its data in the client protocol; the operations on it are in webpubsub_clients.h. Thread-safe.
#pragma once

#include "connection_registry.h"
#include "webpubsub_permissions.h"
#include "webpubsub_protocol.h"
#include "webpubsub_session.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace wsgw {

struct WpsClientState {
    std::string connectionId, hub, userId;
    WpsSubprotocol subprotocol = WpsSubprotocol::None;
    std::string reconnectionToken;  // reliable only
    std::mutex mutex;               // guards everything below
    WpsPermissions permissions;
    WpsAckIds ackIds;
    std::unique_ptr<WpsReliableOutbox> outbox;  // reliable only
    bool detached = false;                      // reliable: the socket dropped, the recovery window is open
    bool lostWhileDetached = false;             // the outbox overflowed meanwhile: it cannot be recovered
};

class WebPubSubClients {
public:
    void add(std::shared_ptr<WpsClientState> state);
    void remove(const std::string &connectionId);
    std::shared_ptr<WpsClientState> find(const std::string &connectionId) const;
    bool empty() const { return count_.load(std::memory_order_relaxed) == 0; }
    size_t size() const { return count_.load(std::memory_order_relaxed); }

    // Reliable clients whose socket dropped, until they resume or their recovery window ends (any network
    // thread may resume one, so the table is shared). The LiveConnection stays registered meanwhile.
    void detach(const std::string &connectionId, std::shared_ptr<LiveConnection> live, std::string token, int64_t nowMs,
                int64_t windowMs);
    // The connection when `token` matches and the window is open (it leaves the table), else null with why.
    std::shared_ptr<LiveConnection> resume(const std::string &connectionId, std::string_view token, int64_t nowMs,
                                           WpsRecoveryWindow::Resume *why);
    // Those whose window has ended (nowMs INT64_MAX: all of them): their $disconnect is due.
    std::vector<std::shared_ptr<LiveConnection>> expire(int64_t nowMs);
    size_t detachedCount() const;
    // A connection waiting to be recovered, looked at without taking it (null when none has the ID).
    std::shared_ptr<LiveConnection> detachedConnection(const std::string &connectionId) const;

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<WpsClientState>> byId_;
    std::atomic<size_t> count_{0};
    mutable std::mutex detachedMutex_;
    WpsRecoveryWindow window_;
    std::unordered_map<std::string, std::shared_ptr<LiveConnection>> detached_;
};

}  // namespace wsgw
