#include "cluster_reaper.h"

#include "log.h"

namespace wsgw::cluster {

namespace {
// How long a reaped node's marker stays: a node paused longer than this comes back to a cluster that has
// forgotten it, and re-registers its connections as after a Redis restart.
constexpr int64_t kReapedMarkerMs = 3600 * 1000;
}  // namespace

void Reaper::stop() {
    std::lock_guard lock(mutex_);
    reaping_ = false;
}

void Reaper::reapDeadNodes(RedisConnection &redis) {
    std::lock_guard reapLock(mutex_);
    if (!reaping_) return;
    const RedisKeys &keys = settings_.keys;
    RedisReply nodes = redis.command({"SMEMBERS", keys.nodes()});
    for (size_t i = 0; i < replyElements(nodes.get()); ++i) {
        std::string node = replyString(replyElement(nodes.get(), i));
        if (node == settings_.nodeId) continue;
        RedisReply alive = redis.command({"EXISTS", keys.nodeAlive(node)});
        if (!alive || replyIsError(alive.get()) || replyInteger(alive.get()) != 0) continue;
        reap(redis, node);
    }
}

// Adopted, not taken: each row stays until its $disconnect has run here (runDisconnect removes it after).
void Reaper::reap(RedisConnection &redis, const std::string &node) {
    const RedisKeys &keys = settings_.keys;
    const std::string &me = settings_.nodeId;
    std::string error;
    auto rows = store_.adoptRowsOfNode(node, me, kReapedMarkerMs, &error);
    std::string reason = "Gateway node '" + node + "' stopped heartbeating; connection lost";
    if (!error.empty()) {  // Redis went away mid-way: the node stays listed, and the next heartbeat goes on
        log::warn("cluster: reaping a node was interrupted; retrying", {log::Field("node", node), log::Field("error", error)});
        for (const auto &row : rows) runDisconnect_(row, reason);
        return;
    }
    redis.command({"SET", keys.nodeReaped(node), me, "PX", std::to_string(kReapedMarkerMs)});
    redis.command({"SREM", keys.nodes(), node});
    redis.command({"DEL", keys.nodeRegistered(node)});
    log::warn("cluster: node stopped heartbeating; its connections are closed",
              {log::Field("node", node), log::Field("connections", static_cast<uint64_t>(rows.size())), log::Field("reapedBy", me)});
    for (const auto &row : rows) runDisconnect_(row, reason);
}

}  // namespace wsgw::cluster
