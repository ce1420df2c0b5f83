#include "cluster_heartbeat.h"

#include "log.h"
#include "monotonic_clock.h"

#include <algorithm>
#include <chrono>

namespace wsgw::cluster {

std::string Heartbeat::claimFailure(const RedisReply &reply, RedisConnection &redis) const {
    return "--cluster " + settings_.address.text + ": cannot reach Redis (" + (reply ? replyString(reply.get()) : redis.error()) + ")";
}

std::string Heartbeat::claimNodeId() {
    const std::string &me = settings_.nodeId;
    RedisConnection redis(settings_.address);
    long long lastTtl = -1;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(settings_.nodeTtlMs + 2000);
    while (std::chrono::steady_clock::now() < deadline) {
        RedisReply ttl = redis.command({"PTTL", settings_.keys.nodeAlive(me)});
        if (!ttl || replyIsError(ttl.get())) return claimFailure(ttl, redis);
        long long now = replyInteger(ttl.get());
        if (now < 0) {
            // No live node has this ID: claim it atomically, so that of two nodes started at once with the same
            // ID only one gets it (the other then sees the winner's heartbeat and is refused).
            RedisReply claimed = redis.command({"SET", settings_.keys.nodeAlive(me), token_, "NX", "PX", std::to_string(settings_.nodeTtlMs)});
            if (!claimed || replyIsError(claimed.get())) return claimFailure(claimed, redis);
            if (replyString(claimed.get()) == "OK") {
                aliveKeeper_ = std::thread([this] { keepAliveKey(); });
                return {};
            }
            continue;  // another node took it a moment ago: watch its heartbeat
        }
        if (lastTtl >= 0 && now > lastTtl + 50)
            return "--node-id " + me + ": a live node of this cluster already uses this ID; give every node its own --node-id";
        if (lastTtl < 0)
            log::warn("cluster: this node ID still has a heartbeat; waiting to see whether its node is alive",
                      {log::Field("node", me), log::Field("ttlMs", static_cast<uint64_t>(now))});
        lastTtl = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<long long>(250, now + 1)));
    }
    return "--node-id " + me + ": its heartbeat key did not expire; is another node with this ID running?";
}

void Heartbeat::keepAliveKey() {
    RedisConnection keeper(settings_.address);
    std::unique_lock lock(keeperMutex_);
    while (!keeperCv_.wait_for(lock, std::chrono::milliseconds(settings_.heartbeatMs), [&] { return keeperStopping_; }))
        keeper.command({"SET", settings_.keys.nodeAlive(settings_.nodeId), token_, "XX", "PX", std::to_string(settings_.nodeTtlMs)});
}

void Heartbeat::stopAliveKeeper() {
    {
        std::lock_guard lock(keeperMutex_);
        keeperStopping_ = true;
    }
    keeperCv_.notify_all();
    if (aliveKeeper_.joinable()) aliveKeeper_.join();
}

void Heartbeat::start() {
    stopAliveKeeper();  // the heartbeats take over
    thread_ = std::thread([this] { run(); });
}

void Heartbeat::stop(bool rowsRemain) {
    {
        std::lock_guard lock(stopMutex_);
        stopping_ = true;
        leaveRowsToReaper_ = rowsRemain;
    }
    stopCv_.notify_all();
    stopAliveKeeper();
    if (thread_.joinable()) thread_.join();
}

// Redis no longer has this node registered: it was reaped (close what the reaper adopted) or Redis lost its
// data (register again; not on the first beat, whose rows the start-up recovery wrote).
void Heartbeat::settleRegistration(RedisConnection &redis, bool &registeredOnce) {
    const std::string &me = settings_.nodeId;
    RedisReply reapedBy = redis.command({"GET", settings_.keys.nodeReaped(me)});
    std::string reaper = reapedBy && !replyIsError(reapedBy.get()) ? replyString(reapedBy.get()) : std::string();
    bool settled = true;
    if (!reaper.empty()) {
        store_.stopVouching();  // before this node is registered again (RedisStore::stopVouching says why)
        settled = rejoin_.closeReapedConnections(redis, reaper);
    }
    else if (registeredOnce) rejoin_.registerAgain();
    if (settled) {
        redis.command({"SET", settings_.keys.nodeRegistered(me), token_});
        registeredOnce = true;
    }
}

void Heartbeat::beat(RedisConnection &redis, bool &registeredOnce) {
    const std::string &me = settings_.nodeId;
    int64_t sentAtMs = monotonicMs();
    auto replies = redis.pipeline({{"SET", settings_.keys.nodeAlive(me), token_, "PX", std::to_string(settings_.nodeTtlMs)},
                                   {"SADD", settings_.keys.nodes(), me},
                                   {"EXISTS", settings_.keys.nodeRegistered(me)}});
    bool ok = replies.size() == 3 && !replyIsError(replies[0].get());
    if (ok != redisHealthy_.load()) {
        if (ok) log::info("cluster: Redis reachable again", {log::Field("redis", settings_.address.text)});
        else log::error("cluster: Redis unreachable; local connections keep working", {log::Field("error", redis.error())});
    }
    redisHealthy_ = ok;
    if (!ok) return;
    // Alive from the SET on for the node TTL, and registered: no row of ours was adopted (the adoption
    // unregisters atomically) and none can be for a while. Half the TTL leaves room for the clocks' rates.
    if (replyInteger(replies[2].get()) == 0) settleRegistration(redis, registeredOnce);
    else store_.vouchOwnRowsUntil(sentAtMs + settings_.nodeTtlMs / 2);
    reaper_.reapDeadNodes(redis);
}

void Heartbeat::run() {
    const std::string &me = settings_.nodeId;
    RedisConnection redis(settings_.address);
    bool registeredOnce = false;
    for (;;) {
        beat(redis, registeredOnce);
        std::unique_lock lock(stopMutex_);
        if (stopCv_.wait_for(lock, std::chrono::milliseconds(settings_.heartbeatMs), [&] { return stopping_; })) break;
    }
    if (leaveRowsToReaper_) {
        // Our alive key expires within the node TTL and a live node reaps us: it takes the rows left and
        // runs their $disconnect. Leaving the cluster here would leave them for no one.
        log::warn("cluster: stopping with connections whose $disconnect did not run; another node will reap them", {log::Field("node", me)});
        return;
    }
    // Leaving cleanly: our rows are gone (the store flushed), so nobody needs to reap us.
    redis.pipeline({{"DEL", settings_.keys.nodeAlive(me)}, {"SREM", settings_.keys.nodes(), me}, {"DEL", settings_.keys.nodeRegistered(me)}});
}

}  // namespace wsgw::cluster
