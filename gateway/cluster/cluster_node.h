// This node's membership of a cluster (--cluster redis://...): the heartbeat, the reaper of dead nodes,
// the subscriber that receives what other nodes send here, and the remote half of pushes, closes, GETs
// and groups (ClusterBus). Redis pub/sub carries the messages (cluster_wire.h); the README argues why
// pub/sub and not streams. Threads: one heartbeat/reaper thread, one subscriber thread (its own libev
// loop with two async Redis connections: one subscribed, one publishing acks), and a small executor for
// work that waits on Redis on behalf of the network thread.
#pragma once

#include "cluster_bus.h"
#include "host_api.h"
#include "redis_store.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wsgw {

struct ClusterSettings {
    RedisAddress address;
    RedisKeys keys;
    std::string nodeId;
    int heartbeatMs = 1000;
    int nodeTtlMs = 5000;        // a node silent this long is dead; the reaper runs every heartbeat
    int requestTimeoutMs = 3000;  // how long a push to another node waits for that node's answer
};

class ClusterNode final : public ClusterBus {
public:
    using DisconnectRunner = std::function<void(const ConnectionRow &, const std::string &reason)>;
    ClusterNode(ClusterSettings settings, HostContext &host, RedisStore &store);
    ~ClusterNode() override;
    ClusterNode(const ClusterNode &) = delete;
    ClusterNode &operator=(const ClusterNode &) = delete;

    // Before start-up recovery: refuses an ID that a live node is using (waiting out the heartbeat of a
    // dead predecessor with the same ID). "" or what is wrong.
    std::string claimNodeId();
    // Heartbeats, reaping (each dead node's connections get `runDisconnect` on one node only), the
    // subscriber and the executor. "" or what went wrong.
    std::string start(DisconnectRunner runDisconnect);
    // Stops the threads and leaves the cluster (after the store has flushed this node's removals).
    // rowsRemain: the drain ended with $disconnects not run (handlers still running at its deadline). The
    // node then stops heartbeating without leaving the cluster, so another node reaps it and runs them.
    void stop(bool rowsRemain = false);
    // The drain begins: no dead node's rows are adopted from here on (a reap under way finishes first).
    void stopReaping();
    std::vector<std::string> problems() const;  // for /readyz

    int postRemote(const std::string &connectionId, std::string_view data, bool binary, const WpsRendering *wps) override;
    int deleteRemote(const std::string &connectionId) override;
    int wpsCloseRemote(const std::string &connectionId, const std::string &reason) override;
    bool describeRemote(const std::string &connectionId, std::string &json) override;
    int joinRemote(const std::string &group, const std::string &connectionId) override;
    int leaveRemote(const std::string &group, const std::string &connectionId) override;
    bool publishDeliver(const std::string &group, std::string_view data, bool binary, const WpsRendering *wps,
                        const std::vector<std::string> &excluded) override;
    void publishCloseAll(const std::vector<std::string> &excluded, const std::string &reason) override;
    bool memberJoined(const std::string &group, const std::string &connectionId, bool firstLocal) override;
    void memberLeft(const std::string &group, const std::string &connectionId, bool lastLocal) override;
    void groupsEmptied(std::vector<std::string> groups) override;
    bool groupMembers(const std::string &group, std::vector<std::string> &out) override;
    void runBlocking(std::function<void()> task) override;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace wsgw
