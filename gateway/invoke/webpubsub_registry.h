// The state of each connection of this node that came in through /client/hubs/{hub} (SPEC section 12): hub,
// user ID, subprotocol, permissions, ackIds already used, and the reliable subprotocol's outbox. Held by
// HostContext so that every push path (host API, management API, group delivery from the cluster) can wrap
// its data in the client protocol; the operations on it are in webpubsub_clients.h. Thread-safe.
#pragma once

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
};

class WebPubSubClients {
public:
    void add(std::shared_ptr<WpsClientState> state);
    void remove(const std::string &connectionId);
    std::shared_ptr<WpsClientState> find(const std::string &connectionId) const;
    bool empty() const { return count_.load(std::memory_order_relaxed) == 0; }
    size_t size() const { return count_.load(std::memory_order_relaxed); }

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<WpsClientState>> byId_;
    std::atomic<size_t> count_{0};
};

}  // namespace wsgw
