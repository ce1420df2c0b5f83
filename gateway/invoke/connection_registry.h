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

struct Session;  // the network thread's own state for a connection (gateway/net/session.h)

struct LiveConnection {
    // What each message reads or changes comes first, beside the connection's ID (docs/limits.md's bounds
    // below): with many connections each message finds its connection cold, and these then share the cache
    // line of the shared_ptr's counts.
    std::atomic<int64_t> sendQueueBytes{0};
    std::atomic<int64_t> pendingBytes{0};
    std::atomic<int32_t> pendingMessages{0};
    std::atomic<bool> slowConsumer{false};
    std::atomic<bool> readPaused{false};
    // In the registry: what a lookup by ID would find. A sender that already holds the connection (a route
    // response) checks this instead of looking the ID up again.
    std::atomic<bool> registered{false};
    std::atomic<int64_t> lastActiveAtMs{0};
    // Its session on the owning network thread, while there is one: a command that carries the connection
    // reaches its session without a lookup by ID. Read and written on that network thread only.
    Session *networkSession = nullptr;
    ConnectionInfo info;
    std::atomic<bool> upgraded{false};   // false while $connect is still deciding
    unsigned networkThread = 0;          // which network thread owns it (set before it is registered)
    // Another cluster node reaped this node (it had stopped heartbeating) and ran this connection's
    // $disconnect: it closes here without running it again.
    std::atomic<bool> disconnectRanElsewhere{false};
    // A Web PubSub connection waiting to be recovered (its socket dropped) still counts against
    // limits.maxConnectionsPerIp for its source address: released when it resumes or its window ends.
    std::atomic<bool> detachedHoldsIpCount{false};
    // Set by a $connect handler that sends this connection to its own WebSocket backend (written on the
    // worker before its decision is queued to the network thread, read there after).
    struct ChosenBackend {
        std::string url, headers;
    };
    std::unique_ptr<ChosenBackend> chosenBackend;  // rare: allocated only when a handler chose one
    bool hasChosenBackend() const { return chosenBackend && !chosenBackend->url.empty(); }

    // ---- docs/limits.md: what this connection can make the gateway hold ----
    // Send side: bytes of frames on their way to this client (commands in flight to the network thread and
    // its send queue) not yet taken by the socket. Any thread reserves before queueing, so that a push that
    // would overflow is refused at once (410) rather than accepted and dropped later.
    enum class Reserve { Queued, Overflowed, Gone };
    // Overflowed is returned once, to the sender whose frame crossed the bound: it asks for the close.
    Reserve reserveSend(size_t len, size_t maxBytes) {
        if (slowConsumer.load(std::memory_order_relaxed)) return Reserve::Gone;
        auto add = static_cast<int64_t>(len);
        int64_t before = sendQueueBytes.fetch_add(add, std::memory_order_relaxed);
        if (before + add <= static_cast<int64_t>(maxBytes) || before == 0) return Reserve::Queued;  // one frame may be larger
        sendQueueBytes.fetch_sub(add, std::memory_order_relaxed);
        return slowConsumer.exchange(true) ? Reserve::Gone : Reserve::Overflowed;
    }
    void releaseSend(size_t len) { sendQueueBytes.fetch_sub(static_cast<int64_t>(len), std::memory_order_relaxed); }
    bool isSlowConsumer() const { return slowConsumer.load(std::memory_order_relaxed); }
    // Receive side: messages read from this client and not yet through their handler. The network thread
    // adds and may pause reading; the worker that finishes one takes it off and owes the resume when the
    // counts fall below half of the bounds (exactly one of them resumes: readPaused is exchanged).
    void addPending(size_t bytes) {
        pendingBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
        pendingMessages.fetch_add(1, std::memory_order_relaxed);
    }
    bool pendingAtBound(size_t maxMessages, size_t maxBytes) const {
        return pendingMessages.load(std::memory_order_relaxed) >= static_cast<int64_t>(maxMessages) ||
               pendingBytes.load(std::memory_order_relaxed) >= static_cast<int64_t>(maxBytes);
    }
    bool pendingBelowHalf(size_t maxMessages, size_t maxBytes) const {
        return pendingMessages.load(std::memory_order_acquire) <= static_cast<int64_t>(maxMessages / 2) &&
               pendingBytes.load(std::memory_order_acquire) <= static_cast<int64_t>(maxBytes / 2);
    }
    // A worker finished a message of `bytes`: true when it must ask the network thread to read again.
    bool donePending(size_t bytes, size_t maxMessages, size_t maxBytes) {
        pendingBytes.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_acq_rel);
        pendingMessages.fetch_sub(1, std::memory_order_acq_rel);
        return readPaused.load(std::memory_order_acquire) && pendingBelowHalf(maxMessages, maxBytes) &&
               readPaused.exchange(false, std::memory_order_acq_rel);
    }
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
