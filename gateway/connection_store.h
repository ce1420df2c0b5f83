// Where connection rows live. The network thread calls insert/touch/remove and must never wait on disk,
// so implementations queue and batch. A shared store (Redis) can replace SQLite behind this interface
// when several gateway nodes serve one API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wsgw {

struct ConnectionRow {
    std::string connectionId, nodeId;
    int64_t connectedAtMs = 0, lastActiveAtMs = 0;
    std::string sourceIp, userAgent, headersJson = "{}", queryJson = "{}", authorizerJson;  // "" -> NULL
};

class ConnectionStore {
public:
    virtual ~ConnectionStore() = default;
    virtual void insert(ConnectionRow row) = 0;                                       // queued
    virtual void touch(const std::string &connectionId, int64_t lastActiveAtMs) = 0;  // queued, coalesced
    virtual void remove(const std::string &connectionId) = 0;                        // queued
    virtual void flush() = 0;  // blocks until everything queued before the call is committed
    virtual size_t queueDepth() const = 0;
    virtual bool writable() const = 0;  // false while commits fail (disk full, locked, read-only)
    // Start-up recovery: the rows this node left after an unclean stop, deleted as they are returned.
    virtual std::vector<ConnectionRow> takeRowsOfNode(const std::string &nodeId) = 0;
    virtual std::optional<ConnectionRow> find(const std::string &connectionId) = 0;
};

}  // namespace wsgw
