#include "cluster_rejoin.h"

#include "log.h"

#include <hiredis/hiredis.h>

namespace wsgw::cluster {

void Rejoin::registerAgain() {
    std::vector<ConnectionRow> rows;
    host_.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
        if (!c->upgraded.load()) return;
        ConnectionRow row;
        row.connectionId = c->info.connectionId;
        row.nodeId = settings_.nodeId;
        row.connectedAtMs = c->info.connectedAtMs;
        row.lastActiveAtMs = c->lastActiveAtMs.load();
        row.sourceIp = c->info.sourceIp;
        row.userAgent = c->info.userAgent;
        row.authorizerJson = c->info.authorizerJson;
        rows.push_back(std::move(row));
    });
    size_t n = rows.size();
    store_.reRegister(std::move(rows), [this](const std::string &id) { return host_.registry->find(id) != nullptr; });
    std::vector<std::vector<std::string>> cmds;
    for (const auto &[g, id] : host_.groups.memberships()) {
        cmds.push_back({"SADD", settings_.keys.group(g), id});
        cmds.push_back({"SADD", settings_.keys.connectionGroups(id), g});
    }
    if (!cmds.empty()) pool_.pipeline(cmds);
    log::warn("cluster: Redis had lost this node's connections; registered them again",
              {log::Field("node", settings_.nodeId), log::Field("connections", static_cast<uint64_t>(n))});
}

// The reaper adopted each connection this node had then, and runs its $disconnect and removes its row.
// Registering them again would run it a second time when they close; they are closed here instead, without
// it, and their clients reconnect. A connection whose row is still this node's (made since, its row written
// after the reaping) is kept.
bool Rejoin::closeReapedConnections(RedisConnection &redis, const std::string &reaper) {
    const std::string &me = settings_.nodeId;
    const int64_t settled = nowEpochMs() - 2000;  // older rows are written (or failed) by now
    std::vector<std::shared_ptr<LiveConnection>> older;
    host_.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
        if (c->upgraded.load() && c->info.connectedAtMs < settled) older.push_back(c);
    });
    std::vector<std::vector<std::string>> checks;
    for (const auto &c : older) checks.push_back({"HGET", settings_.keys.connection(c->info.connectionId), "node"});
    auto replies = checks.empty() ? std::vector<RedisReply>() : redis.pipeline(checks);
    if (replies.size() != older.size()) return false;  // Redis went away again: the next heartbeat looks again
    redis.command({"DEL", settings_.keys.nodeReaped(me)});
    size_t closed = 0;
    for (size_t i = 0; i < older.size(); ++i) {
        if (replyIsError(replies[i].get())) continue;
        if (replies[i] && replies[i]->type == REDIS_REPLY_STRING && replyString(replies[i].get()) == me) continue;  // still ours
        older[i]->disconnectRanElsewhere.store(true);
        host_.control->closeConnection(older[i]->info.connectionId, 1012, "Service Restart: this gateway node left the cluster; reconnect");
        ++closed;
    }
    if (closed == 0) {  // a restart after a crash: the predecessor with this ID was reaped, nothing of it lives here
        log::info("cluster: this node ID was reaped by another node before this start; nothing to close",
                  {log::Field("node", me), log::Field("reapedBy", reaper)});
        return true;
    }
    log::error("cluster: this node was reaped by another while it did not heartbeat (paused?); its reaped connections are "
               "closed without a second $disconnect",
               {log::Field("node", me), log::Field("reapedBy", reaper), log::Field("connections", static_cast<uint64_t>(closed))});
    return true;
}

}  // namespace wsgw::cluster
