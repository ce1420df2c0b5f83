// The live connections of this node, readable from any thread. The network thread adds a connection when
// its $connect starts and removes it when it closes; handlers, the host API and the management API look
// connections up here, so a push to a closed connection answers GONE without touching the network thread.
#pragma once

#include "event.h"

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wsgw {

struct LiveConnection {
    ConnectionInfo info;
    std::atomic<int64_t> lastActiveAtMs{0};
    std::atomic<bool> upgraded{false};   // false while $connect is still deciding
    unsigned networkThread = 0;          // which network thread owns it (set before it is registered)
    // Set by a $connect handler that sends this connection to its own WebSocket backend (written on the
    // worker before its decision is queued to the network thread, read there after).
    struct ChosenBackend {
        std::string url, headers;
    };
    std::unique_ptr<ChosenBackend> chosenBackend;  // rare: allocated only when a handler chose one
    bool hasChosenBackend() const { return chosenBackend && !chosenBackend->url.empty(); }
};

class ConnectionRegistry {
public:
    void add(std::shared_ptr<LiveConnection> conn);
    void remove(const std::string &connectionId);
    std::shared_ptr<LiveConnection> find(const std::string &connectionId) const;
    size_t size() const { return count_.load(std::memory_order_relaxed); }
    void forEach(const std::function<void(const std::shared_ptr<LiveConnection> &)> &fn) const;

private:
    struct Shard {
        mutable std::mutex mutex;
        // Keyed by a view of the entry's own connectionId: no second copy of the ID per connection.
        std::unordered_map<std::string_view, std::shared_ptr<LiveConnection>> map;
    };
    static constexpr size_t kShards = 16;
    Shard &shardFor(const std::string &id) const;
    mutable std::array<Shard, kShards> shards_;
    std::atomic<size_t> count_{0};
};

}  // namespace wsgw
