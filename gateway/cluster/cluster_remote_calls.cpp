#include "cluster_remote_calls.h"

#include "log.h"

namespace wsgw::cluster {

// The node a connection lives on, "" when there is no such row.
std::string RemoteCalls::ownerOf(const std::string &connectionId, bool *redisDown) {
    std::string error;
    RedisReply r = pool_.command({"HGET", settings_.keys.connection(connectionId), "node"}, &error);
    *redisDown = !r || replyIsError(r.get());
    if (*redisDown) log::warn("cluster: Redis lookup failed", {log::Field("error", r ? replyString(r.get()) : error)});
    return replyString(r.get());
}

bool RemoteCalls::nodeAlive(const std::string &node) {
    RedisReply r = pool_.command({"EXISTS", settings_.keys.nodeAlive(node)});
    return !r || replyInteger(r.get()) == 1;  // unknown counts as alive: only a sure death answers GONE
}

// Publishes `m` to the owner's inbox and waits for its ack.
int RemoteCalls::request(const std::string &node, BusMessage m) {
    m.origin = settings_.nodeId;
    m.token = std::to_string(nextToken_.fetch_add(1));
    std::future<int> answer;
    {
        std::lock_guard lock(mutex_);
        answer = waiting_[m.token].get_future();
    }
    auto forget = [&] {
        std::lock_guard lock(mutex_);
        waiting_.erase(m.token);
    };
    std::string error;
    RedisReply r = pool_.command({"PUBLISH", settings_.keys.inboxChannel(node), encode(m)}, &error);
    if (!r || replyIsError(r.get())) {
        forget();
        log::warn("cluster: publish failed", {log::Field("node", node), log::Field("error", r ? replyString(r.get()) : error)});
        return WSGW_ERROR;
    }
    if (replyInteger(r.get()) == 0) {
        // Nobody listens on that inbox: a dead node's connections are gone; a live one is reconnecting.
        forget();
        return nodeAlive(node) ? WSGW_ERROR : WSGW_GONE;
    }
    if (answer.wait_for(std::chrono::milliseconds(settings_.requestTimeoutMs)) != std::future_status::ready) {
        forget();
        log::warn("cluster: no answer from node", {log::Field("node", node), log::Field("timeoutMs", settings_.requestTimeoutMs)});
        return WSGW_ERROR;
    }
    return answer.get();
}

int RemoteCalls::toOwner(const std::string &connectionId, BusMessage m) {
    bool down = false;
    std::string node = ownerOf(connectionId, &down);
    if (down) return WSGW_ERROR;
    if (node.empty() || node == settings_.nodeId) return WSGW_GONE;  // ours would be in the local registry
    m.connectionId = connectionId;
    return request(node, std::move(m));
}

void RemoteCalls::answered(const std::string &token, int rc) {
    std::lock_guard lock(mutex_);
    auto it = waiting_.find(token);
    if (it != waiting_.end()) {
        it->second.set_value(rc);
        waiting_.erase(it);
    }
}

}  // namespace wsgw::cluster
