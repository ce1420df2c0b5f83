// What a node does when its heartbeat finds that Redis no longer has it registered: after Redis lost its
// data (a restart without persistence), it registers its live connections and group memberships again; after
// another node reaped it (it was paused or cut off past the node TTL), it closes the connections the reaper
// adopted, without running their $disconnect a second time.
#pragma once

#include "cluster_node.h"

#include <string>

namespace wsgw::cluster {

class Rejoin {
public:
    Rejoin(const ClusterSettings &settings, HostContext &host, RedisStore &store, RedisPool &pool)
        : settings_(settings), host_(host), store_(store), pool_(pool) {}

    // Writes this node's live connections and memberships again.
    void registerAgain();
    // Closes the connections `reaper` adopted. false when Redis went away again (the next heartbeat retries).
    bool closeReapedConnections(RedisConnection &redis, const std::string &reaper);

private:
    const ClusterSettings &settings_;
    HostContext &host_;
    RedisStore &store_;
    RedisPool &pool_;
};

}  // namespace wsgw::cluster
