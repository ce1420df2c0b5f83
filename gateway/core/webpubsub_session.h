// The reliable subprotocol's per-connection state (docs/webpubsub.md, json.reliable.webpubsub.azure.v1):
// - WpsReliableOutbox: every message to the client gets the next sequenceId and is kept until the client's
//   sequenceAck covers it, so a client that comes back within the recovery window is sent each one again,
//   in order (the client drops numbers it has seen, so each is delivered once). What it keeps counts against
//   limits.maxSendQueueBytes (docs/limits.md): over it, append refuses and the caller closes the connection
//   as a slow consumer (1008, which also tells the client SDK not to recover).
// - WpsAckIds: the ackIds a client used, so that a request repeated after a recovery is answered
//   "Duplicate" instead of being done twice (Azure's idempotent publish).
// - WpsRecoveryWindow: connections whose socket dropped, each with its reconnection token and the time its
//   window ends; the caller runs $disconnect for those expire() returns.
// Pure: no clock (callers pass milliseconds), no I/O; not thread-safe (one network thread owns each).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wsgw {

class WpsReliableOutbox {
public:
    explicit WpsReliableOutbox(size_t maxBytes) : maxBytes_(maxBytes) {}

    // Numbers `message` (a server message starting with '{') and keeps it. Returns the frame to send, with
    // "sequenceId" as its first member, or nullptr when keeping it would take the bytes held over maxBytes
    // (nothing is kept or numbered then).
    std::shared_ptr<const std::string> append(std::string_view message);
    // The client has every message up to `sequenceId`: they are freed. A number above the last one sent is
    // taken as the last one (the client cannot have more). Returns the bytes freed.
    size_t acknowledge(uint64_t sequenceId);
    // What to send again after a recovery, oldest first.
    std::vector<std::shared_ptr<const std::string>> unacknowledged() const;

    size_t bytes() const { return bytes_; }
    size_t count() const { return kept_.size(); }
    uint64_t lastSequenceId() const { return nextSequenceId_ - 1; }
    size_t maxBytes() const { return maxBytes_; }
    void setMaxBytes(size_t maxBytes) { maxBytes_ = maxBytes; }

private:
    struct Kept {
        uint64_t sequenceId;
        std::shared_ptr<const std::string> frame;
    };
    size_t maxBytes_;
    uint64_t nextSequenceId_ = 1;  // Azure's first sequenceId is 1 (the client starts from 0)
    std::deque<Kept> kept_;
    size_t bytes_ = 0;
};

class WpsAckIds {
public:
    static constexpr size_t kRemembered = 4096;  // per connection; older ackIds are forgotten first
    // True the first time `ackId` is seen on this connection; false for a repeat (answer "Duplicate").
    bool firstUse(uint64_t ackId);

private:
    // The last kRemembered ackIds in a ring (8 bytes each, 32 KiB at most): a hash set and a queue of them
    // held about 286 kB per connection that had used 4,096. An ackId above every one seen (the SDKs count
    // up) is new without a search; any other is looked for in the ring.
    std::vector<uint64_t> ring_;
    size_t next_ = 0;  // once the ring is full: the oldest, replaced next
    uint64_t highest_ = 0;
    bool any_ = false;
};

// A reconnection token: 128 bits from the CSPRNG as URL-safe base64 (it travels in a query string).
std::string newWpsReconnectionToken();
// Constant-time comparison (the token is a credential).
bool wpsTokensEqual(std::string_view a, std::string_view b);

class WpsRecoveryWindow {
public:
    enum class Resume { Resumed, Unknown, WrongToken };

    // The connection's socket is gone; it may come back until nowMs + windowMs.
    void detach(const std::string &connectionId, std::string token, int64_t nowMs, int64_t windowMs);
    // A client asks to resume `connectionId` with `token`. Resumed removes it from the window (it is live
    // again). A connection whose window has ended is Unknown even before expire() collects it.
    Resume resume(const std::string &connectionId, std::string_view token, int64_t nowMs);
    // Connections whose window has ended, removed from the table: their $disconnect is now due.
    std::vector<std::string> expire(int64_t nowMs);
    // The connection ends for another reason while detached (a DELETE, a drain): forget it.
    bool forget(const std::string &connectionId);
    bool isDetached(const std::string &connectionId) const { return byId_.count(connectionId) != 0; }
    std::optional<int64_t> nextDeadline() const;
    size_t size() const { return byId_.size(); }

private:
    struct Entry {
        std::string token;
        int64_t deadlineMs;
    };
    std::unordered_map<std::string, Entry> byId_;
    std::multimap<int64_t, std::string> byDeadline_;
    void eraseDeadline(const std::string &connectionId, int64_t deadlineMs);
};

}  // namespace wsgw
