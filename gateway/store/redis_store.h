// The connection table in Redis, for a cluster of nodes (--cluster redis://...). Same interface as the
// SQLite store: the network thread queues inserts, touches and removes, and one writer thread sends them
// to Redis in pipelined batches, so the network thread never waits on the network either. The key layout
// (RedisKeys) is shared with the cluster's heartbeats, groups and reaper (cluster_node.h).
#pragma once

#include "connection_store.h"
#include "redis_connection.h"

#include <functional>
#include <memory>
#include <string>

namespace wsgw {

// Every key and channel wsgw uses, under one prefix.
struct RedisKeys {
    std::string prefix = "wsgw:";
    std::string connection(const std::string &id) const { return prefix + "conn:" + id; }              // hash
    std::string connectionGroups(const std::string &id) const { return prefix + "conn:" + id + ":groups"; }  // set
    // Set when a reaper adopts the row (the reaper's ID, for as long as nodeReaped): the row's $disconnect is
    // the reaper's, even once the reaper has run it and the row is gone.
    std::string connectionReaped(const std::string &id) const { return prefix + "conn:" + id + ":reaped"; }  // string, TTL
    std::string nodeConnections(const std::string &node) const { return prefix + "node:" + node + ":conns"; }  // set
    std::string nodeAlive(const std::string &node) const { return prefix + "node:" + node + ":alive"; }  // string, TTL
    std::string nodeRegistered(const std::string &node) const { return prefix + "node:" + node + ":registered"; }
    // Set by the node that reaped `node` (its ID, with a TTL): a reaped node that comes back (it was paused,
    // not dead) reads it and closes its connections without running their $disconnect again.
    std::string nodeReaped(const std::string &node) const { return prefix + "node:" + node + ":reaped"; }
    std::string nodes() const { return prefix + "nodes"; }                                            // set
    std::string group(const std::string &g) const { return prefix + "group:" + g; }                   // set of IDs
    std::string inboxChannel(const std::string &node) const { return prefix + "inbox:" + node; }
    std::string groupChannel(const std::string &g) const { return prefix + "to-group:" + g; }
    std::string everyoneChannel() const { return prefix + "to-all"; }
};

// Removes a connection's row, its group memberships and its place in its node's set, atomically (a Lua
// script); returns the row's fields when this call removed it. Only one caller in the whole cluster can get
// a row back, which is what makes "its $disconnect runs exactly once" hold when several nodes reap.
std::optional<ConnectionRow> takeConnectionRow(RedisConnection &redis, const RedisKeys &keys, const std::string &id,
                                               const std::string &node, std::string *error);
std::optional<ConnectionRow> rowFromHash(const std::string &id, const struct redisReply *flatHash);

class RedisStore final : public ConnectionStore {
public:
    // Connects (to check the address) and starts the writer; nullptr and *error when Redis cannot be reached.
    static std::unique_ptr<RedisStore> open(const RedisAddress &address, RedisKeys keys, std::string nodeId, std::string *error);
    ~RedisStore() override;

    void insert(ConnectionRow row) override;
    void touch(const std::string &connectionId, int64_t lastActiveAtMs) override;
    void remove(const std::string &connectionId) override;
    // Sent by the calling thread (the worker that ran the $disconnect) on its own connection, before it does
    // anything else: a kill -9 after the handler returns loses the removal only if it lands before the
    // command is in the socket. Queued for the writer instead when the row's insert is still on its way (its
    // removal must follow it; one never sent is simply dropped) or Redis cannot be reached (retried).
    void removeClosed(const std::string &connectionId) override;
    // One round trip (kOwnerScript), except while the heartbeat has vouched for this node (below).
    DisconnectOwner disconnectOwner(const std::string &connectionId) override;
    // From the heartbeat thread. A beat that renewed this node's alive key and found the node still registered
    // (a reaper's first adoption unregisters it, in the same atomic step) proves that no row of this node had
    // been adopted when it ran, and that none can be until the key expires: until `untilMonotonicMs` (the
    // beat's start plus half the node TTL) every $disconnect here is this node's without asking Redis.
    void vouchOwnRowsUntil(int64_t untilMonotonicMs);
    // Once this node has been reaped, for the rest of the process: a beat that finds it registered again
    // (after the rejoin) says nothing about $disconnects queued before the reap, so each asks Redis.
    void stopVouching();
    void whenReachable(std::function<void()> ready) override;
    void flush() override;
    size_t queueDepth() const override;
    bool writable() const override;
    std::vector<ConnectionRow> rowsLeftByNode(const std::string &nodeId, std::string *error = nullptr) override;
    // The reaper's claim on a dead node's rows: in one atomic step per row, a row still of `deadNode`, while
    // that node is not alive (a node that came back keeps its rows), becomes `claimer`'s. The claimer runs
    // their $disconnect and remove()s each row after it; if the claimer dies meanwhile, the rows are reaped
    // from it in turn. (Taking them deleted them: a reaper that died or stopped mid-way lost the rest.)
    // Each adopted row is marked reaped (connectionReaped) for `markMs`.
    std::vector<ConnectionRow> adoptRowsOfNode(const std::string &deadNode, const std::string &claimer, int64_t markMs,
                                               std::string *error = nullptr);
    std::optional<ConnectionRow> find(const std::string &connectionId) override;

    // Writes these rows again (after Redis lost its data); `stillLive` is asked for each at write time so
    // that a connection that closed meanwhile is not brought back.
    void reRegister(std::vector<ConnectionRow> rows, std::function<bool(const std::string &)> stillLive);

    struct Impl;

private:
    explicit RedisStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace wsgw
