// The asking side of a call to another node: finds the node a connection lives on, publishes the request
// to that node's inbox with a fresh token, and waits (bounded by the request timeout) for the Ack that the
// inbox (cluster_inbox.h) hands back here. A node nobody listens for is GONE only when its alive key is
// gone too; any doubt answers ERROR.
#pragma once

#include "cluster_node.h"
#include "cluster_wire.h"

#include <atomic>
#include <cstdint>
#include <future>
#include <mutex>
#include <string>
#include <unordered_map>

namespace wsgw::cluster {

class RemoteCalls {
public:
    RemoteCalls(const ClusterSettings &settings, RedisPool &pool) : settings_(settings), pool_(pool) {}

    // Sends `m` to the node that owns `connectionId` and returns its answer (a WSGW_* code): GONE when no
    // node (or this one) owns it, ERROR when Redis or the owner does not answer.
    int toOwner(const std::string &connectionId, BusMessage m);
    // Whether `node` heartbeats; unknown (Redis down) counts as alive.
    bool nodeAlive(const std::string &node);
    // An Ack arrived: the call waiting for `token` returns `rc`.
    void answered(const std::string &token, int rc);

private:
    std::string ownerOf(const std::string &connectionId, bool *redisDown);
    int request(const std::string &node, BusMessage m);

    const ClusterSettings &settings_;
    RedisPool &pool_;
    std::mutex mutex_;
    std::unordered_map<std::string, std::promise<int>> waiting_;
    std::atomic<uint64_t> nextToken_{1};
};

}  // namespace wsgw::cluster
