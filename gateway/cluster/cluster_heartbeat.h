// This node's life in the cluster's Redis keys: claiming its node ID (refused while a live node heartbeats
// with it), keeping the alive key fresh from the claim until the heartbeats start (the start-up recovery
// may take longer than the node TTL), and the heartbeat thread. Each beat refreshes the alive key, notices
// when Redis no longer has this node registered (cluster_rejoin.h) and runs the reaper (cluster_reaper.h).
// Stopping either leaves the cluster or, when rows remain whose $disconnect did not run, stays listed so
// that another node reaps them.
#pragma once

#include "cluster_node.h"
#include "cluster_reaper.h"
#include "cluster_rejoin.h"
#include "connection_id.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace wsgw::cluster {

class Heartbeat {
public:
    Heartbeat(const ClusterSettings &settings, RedisStore &store, Rejoin &rejoin, Reaper &reaper)
        : settings_(settings), store_(store), rejoin_(rejoin), reaper_(reaper) {}
    ~Heartbeat() { stop(false); }
    Heartbeat(const Heartbeat &) = delete;
    Heartbeat &operator=(const Heartbeat &) = delete;

    // ClusterNode::claimNodeId: "" (the alive key is ours, and kept fresh) or what is wrong.
    std::string claimNodeId();
    // The heartbeat thread takes over from the alive key keeper.
    void start();
    // rowsRemain: leave the alive key to expire and this node listed, for a reaper.
    void stop(bool rowsRemain);
    bool redisHealthy() const { return redisHealthy_.load(); }

private:
    void keepAliveKey();
    void stopAliveKeeper();
    void run();
    void beat(RedisConnection &redis, bool &registeredOnce);
    void settleRegistration(RedisConnection &redis, bool &registeredOnce);
    std::string claimFailure(const RedisReply &reply, RedisConnection &redis) const;

    const ClusterSettings &settings_;
    RedisStore &store_;  // vouched for by each beat that finds this node alive and registered
    Rejoin &rejoin_;
    Reaper &reaper_;
    const std::string token_ = newRequestId();  // this process's alive key value
    std::atomic<bool> redisHealthy_{true};

    std::thread thread_;
    std::mutex stopMutex_;
    std::condition_variable stopCv_;
    bool stopping_ = false;
    bool leaveRowsToReaper_ = false;  // set with stopping_ (stop(true))

    // From claimNodeId() until the heartbeats start: our alive key is kept fresh, or it could expire while
    // the start-up recovers this node's rows, and a reaper would adopt rows this node is running.
    std::thread aliveKeeper_;
    std::mutex keeperMutex_;
    std::condition_variable keeperCv_;
    bool keeperStopping_ = false;
};

}  // namespace wsgw::cluster
