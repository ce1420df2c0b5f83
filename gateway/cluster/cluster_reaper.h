// The reaper, run by the heartbeat thread on each beat: a listed node whose alive key has expired is dead,
// and this node adopts its connection rows (they stay in Redis until their $disconnect has run here, so if
// this node dies meanwhile the rest is reaped from it in turn), marks it reaped, delists it and runs each
// row's $disconnect. Reaping ends when the drain begins.
#pragma once

#include "cluster_node.h"

#include <mutex>
#include <string>

namespace wsgw::cluster {

class Reaper {
public:
    Reaper(const ClusterSettings &settings, RedisStore &store) : settings_(settings), store_(store) {}

    void setDisconnectRunner(ClusterNode::DisconnectRunner runDisconnect) { runDisconnect_ = std::move(runDisconnect); }
    // Adopts the rows of every dead node it finds (none once stopped).
    void reapDeadNodes(RedisConnection &redis);
    // A reap under way finishes (and submits its $disconnects) first.
    void stop();

private:
    void reap(RedisConnection &redis, const std::string &node);

    const ClusterSettings &settings_;
    RedisStore &store_;
    ClusterNode::DisconnectRunner runDisconnect_;
    // A row adopted after the drain waited for the handlers would be dropped with the invoker's queue, and
    // a node that then leaves the cluster cleanly is never reaped.
    std::mutex mutex_;
    bool reaping_ = true;  // under mutex_
};

}  // namespace wsgw::cluster
