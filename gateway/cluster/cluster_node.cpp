#include "cluster_node.h"

#include "cluster_wire.h"
#include "connection_id.h"
#include "event.h"
#include "log.h"
#include "webpubsub_clients.h"

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>

#include <atomic>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace wsgw {

namespace {
// How long a reaped node's marker stays: a node paused longer than this comes back to a cluster that has
// forgotten it, and re-registers its connections as after a Redis restart.
constexpr int64_t kReapedMarkerMs = 3600 * 1000;
}  // namespace

using cluster::BusMessage;
using cluster::Op;

namespace {

// A few threads for work that waits on Redis on behalf of threads that must not (the network thread).
class Executor {
public:
    explicit Executor(size_t threads) {
        for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
    }
    ~Executor() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto &t : threads_) t.join();
    }
    void post(std::function<void()> task) {
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        }
        cv_.notify_one();
    }

private:
    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;  // stopping, and everything queued has run
            auto task = std::move(tasks_.front());
            tasks_.pop_front();
            lock.unlock();
            task();
            lock.lock();
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace

struct ClusterNode::Impl {
    ClusterSettings settings;
    HostContext &host;
    RedisStore &store;
    RedisPool pool;
    std::string token = newRequestId();  // this process's heartbeat value
    DisconnectRunner runDisconnect;
    std::unique_ptr<Executor> executor;

    // ---- heartbeat and reaper -----------------------------------------------------------------------
    std::thread heartbeatThread;
    std::mutex stopMutex;
    std::condition_variable stopCv;
    bool stopping = false;
    bool leaveRowsToReaper = false;  // set with stopping (stop(true))
    // Reaping ends when the drain begins (stopReaping): a row adopted after the handlers were waited for would
    // be dropped with the invoker's queue, and a node that then leaves the cluster cleanly is never reaped.
    std::mutex reapMutex;
    bool reaping = true;  // under reapMutex
    // From claimNodeId() until the heartbeats start: our alive key is kept fresh, or it could expire while
    // the start-up recovers this node's rows, and a reaper would adopt rows this node is running.
    std::thread aliveKeeper;
    std::mutex keeperMutex;
    std::condition_variable keeperCv;
    bool keeperStopping = false;
    std::atomic<bool> redisHealthy{true};
    std::atomic<bool> subscribed{false};

    // ---- requests waiting for another node's ack -------------------------------------------------------
    std::mutex acksMutex;
    std::unordered_map<std::string, std::promise<int>> acks;
    std::atomic<uint64_t> nextToken{1};

    // ---- the subscriber loop -----------------------------------------------------------------------------
    struct ev_loop *loop = nullptr;
    std::thread subscriberThread;
    ev_async wake{};
    ev_timer reconnectTimer{};
    redisAsyncContext *sub = nullptr;  // subscribed
    redisAsyncContext *pub = nullptr;  // publishes acks without blocking the loop
    std::atomic<bool> loopStopping{false};
    std::mutex subMutex;  // guards the fields below, shared with other threads
    struct ChannelChange {
        bool subscribe;
        std::string channel;
    };
    std::vector<ChannelChange> changes;
    std::vector<std::string> pendingAcks;  // encoded messages for pub, with their channels interleaved
    std::set<std::string> confirmed;       // channels Redis has confirmed
    std::unordered_map<std::string, std::vector<std::shared_ptr<std::promise<bool>>>> subscribeWaiters;

    Impl(ClusterSettings s, HostContext &h, RedisStore &st)
        : settings(std::move(s)), host(h), store(st), pool(settings.address, 16) {}

    const RedisKeys &keys() const { return settings.keys; }
    const std::string &me() const { return settings.nodeId; }

    // ---- requests to other nodes -------------------------------------------------------------------------

    // The node a connection lives on, "" when there is no such row.
    std::string ownerOf(const std::string &connectionId, bool *redisDown) {
        std::string error;
        RedisReply r = pool.command({"HGET", keys().connection(connectionId), "node"}, &error);
        *redisDown = !r || replyIsError(r.get());
        if (*redisDown) log::warn("cluster: Redis lookup failed", {log::Field("error", r ? replyString(r.get()) : error)});
        return replyString(r.get());
    }

    bool nodeAlive(const std::string &node) {
        RedisReply r = pool.command({"EXISTS", keys().nodeAlive(node)});
        return !r || replyInteger(r.get()) == 1;  // unknown counts as alive: only a sure death answers GONE
    }

    // Publishes `m` to the owner's inbox and waits for its ack.
    int request(const std::string &node, BusMessage m) {
        m.origin = me();
        m.token = std::to_string(nextToken.fetch_add(1));
        std::future<int> answer;
        {
            std::lock_guard lock(acksMutex);
            answer = acks[m.token].get_future();
        }
        auto forget = [&] {
            std::lock_guard lock(acksMutex);
            acks.erase(m.token);
        };
        std::string error;
        RedisReply r = pool.command({"PUBLISH", keys().inboxChannel(node), cluster::encode(m)}, &error);
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
        if (answer.wait_for(std::chrono::milliseconds(settings.requestTimeoutMs)) != std::future_status::ready) {
            forget();
            log::warn("cluster: no answer from node", {log::Field("node", node), log::Field("timeoutMs", settings.requestTimeoutMs)});
            return WSGW_ERROR;
        }
        return answer.get();
    }

    int toOwner(const std::string &connectionId, BusMessage m) {
        bool down = false;
        std::string node = ownerOf(connectionId, &down);
        if (down) return WSGW_ERROR;
        if (node.empty() || node == me()) return WSGW_GONE;  // ours would be in the local registry
        m.connectionId = connectionId;
        return request(node, std::move(m));
    }

    // ---- what other nodes send here (subscriber thread) --------------------------------------------------

    void sendAck(const BusMessage &req, int rc) {
        BusMessage ack;
        ack.op = Op::Ack;
        ack.origin = me();
        ack.token = req.token;
        ack.data = std::to_string(rc);
        {
            std::lock_guard lock(subMutex);
            pendingAcks.push_back(keys().inboxChannel(req.origin));
            pendingAcks.push_back(cluster::encode(ack));
        }
        ev_async_send(loop, &wake);
    }

    void dispatch(const std::string &channel, std::string_view payload) {
        auto m = cluster::decode(payload);
        if (!m) {
            log::warn("cluster: malformed message ignored", {log::Field("channel", channel), log::Field("bytes", static_cast<uint64_t>(payload.size()))});
            return;
        }
        switch (m->op) {
        case Op::Deliver:
            if (m->origin == me()) return;  // the sender delivered its own
            // A Web PubSub send renders here as it did on its node (data type, a client's publish), and
            // leaves out the connections its REST call excluded.
            if (m->wps) wpsDeliverFromCluster(host, m->group, m->data, *m->wps, m->excluded);
            else if (!m->excluded.empty())
                wpsDeliverFromCluster(host, m->group, m->data, WpsRendering{wpsDataFromFrame(m->data, m->binary).type, false, {}}, m->excluded);
            else deliverLocal(host, m->group, m->data, m->binary);
            return;
        case Op::CloseAll:
            if (m->origin == me()) return;  // the sender closed its own
            wpsCloseAllLocal(host, m->excluded, m->data);
            return;
        case Op::Ack: {
            std::lock_guard lock(acksMutex);
            auto it = acks.find(m->token);
            if (it != acks.end()) {
                it->second.set_value(std::atoi(m->data.c_str()));
                acks.erase(it);
            }
            return;
        }
        case Op::Post:
            if (m->wps) sendAck(*m, wpsPostLocal(host, m->connectionId, WpsData{m->wps->dataType, std::move(m->data)}));
            else sendAck(*m, postLocal(host, m->connectionId, std::move(m->data), m->binary));
            return;
        case Op::Delete:
            sendAck(*m, m->wpsClose ? wpsCloseLocal(host, m->connectionId, m->data) : deleteLocal(host, m->connectionId));
            return;
        case Op::Join:
        case Op::Leave:
            // Joining may wait for our own subscription, which this thread confirms: run it elsewhere.
            executor->post([this, msg = std::move(*m)] {
                int rc = msg.op == Op::Join ? joinLocal(host, msg.group, msg.connectionId) : leaveLocal(host, msg.group, msg.connectionId);
                sendAck(msg, rc);
            });
            return;
        }
    }

    static void onSubReply(redisAsyncContext *ac, void *reply, void *) {
        auto *self = static_cast<Impl *>(ac->data);
        auto *r = static_cast<redisReply *>(reply);
        if (!self || !r || replyElements(r) < 3) return;
        std::string kind = replyString(replyElement(r, 0));
        std::string channel = replyString(replyElement(r, 1));
        if (kind == "message") {
            const redisReply *p = replyElement(r, 2);
            self->dispatch(channel, std::string_view(p->str ? p->str : "", p->len));
        } else if (kind == "subscribe") {
            std::vector<std::shared_ptr<std::promise<bool>>> waiters;
            {
                std::lock_guard lock(self->subMutex);
                self->confirmed.insert(channel);
                auto it = self->subscribeWaiters.find(channel);
                if (it != self->subscribeWaiters.end()) {
                    waiters = std::move(it->second);
                    self->subscribeWaiters.erase(it);
                }
            }
            for (auto &w : waiters) w->set_value(true);
        } else if (kind == "unsubscribe") {
            std::lock_guard lock(self->subMutex);
            self->confirmed.erase(channel);
        }
    }

    // The channels this node must hear: its inbox, everyone's, and each group with a local member.
    std::vector<std::string> wantedChannels() {
        std::vector<std::string> out{keys().inboxChannel(me()), keys().everyoneChannel()};
        for (const auto &g : host.groups.groups()) out.push_back(keys().groupChannel(g));
        return out;
    }

    void sendSubscribe(const std::vector<std::string> &channels, bool subscribe) {
        if (!sub || channels.empty()) return;
        std::vector<const char *> argv{subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE"};
        std::vector<size_t> lens{std::strlen(argv[0])};
        for (const auto &c : channels) {
            argv.push_back(c.c_str());
            lens.push_back(c.size());
        }
        redisAsyncCommandArgv(sub, subscribe ? onSubReply : nullptr, nullptr, static_cast<int>(argv.size()), argv.data(), lens.data());
    }

    static void onConnected(const redisAsyncContext *ac, int status) {
        auto *self = static_cast<Impl *>(ac->data);
        if (!self) return;
        if (status != REDIS_OK) {
            // hiredis frees a context whose connect failed without calling the disconnect callback.
            if (ac == self->sub) self->sub = nullptr;
            if (ac == self->pub) self->pub = nullptr;
            if (!self->loopStopping) ev_timer_again(self->loop, &self->reconnectTimer);
            return;
        }
        if (ac != self->sub) return;
        std::vector<std::string> wanted = self->wantedChannels();
        self->sendSubscribe(wanted, true);
        if (!self->subscribed.exchange(true)) log::info("cluster: subscribed", {log::Field("channels", static_cast<uint64_t>(wanted.size()))});
    }

    static void onDisconnected(const redisAsyncContext *ac, int) {
        auto *self = static_cast<Impl *>(ac->data);
        if (!self) return;
        if (ac == self->sub) {
            self->sub = nullptr;
            if (self->subscribed.exchange(false)) log::warn("cluster: lost the subscription; reconnecting", {});
            std::lock_guard lock(self->subMutex);
            self->confirmed.clear();
        }
        if (ac == self->pub) self->pub = nullptr;
        if (!self->loopStopping) ev_timer_again(self->loop, &self->reconnectTimer);
    }

    redisAsyncContext *openAsync() {
        redisAsyncContext *ac = redisAsyncConnect(settings.address.host.c_str(), settings.address.port);
        if (!ac) return nullptr;
        if (ac->err) {
            redisAsyncFree(ac);
            return nullptr;
        }
        ac->data = this;
        redisLibevAttach(loop, ac);
        redisAsyncSetConnectCallback(ac, onConnected);
        redisAsyncSetDisconnectCallback(ac, onDisconnected);
        return ac;
    }

    void connectAsync() {
        if (!sub) sub = openAsync();
        if (!pub) pub = openAsync();
        if (!sub || !pub) ev_timer_again(loop, &reconnectTimer);
    }

    static void onReconnectTimer(struct ev_loop *, ev_timer *w, int) {
        auto *self = static_cast<Impl *>(w->data);
        ev_timer_stop(self->loop, w);
        if (!self->loopStopping) self->connectAsync();
    }

    static void onWake(struct ev_loop *l, ev_async *w, int) {
        auto *self = static_cast<Impl *>(w->data);
        std::vector<ChannelChange> ch;
        std::vector<std::string> out;
        {
            std::lock_guard lock(self->subMutex);
            ch.swap(self->changes);
            out.swap(self->pendingAcks);
        }
        if (self->loopStopping) {
            if (self->sub) redisAsyncDisconnect(self->sub);
            if (self->pub) redisAsyncDisconnect(self->pub);
            ev_timer_stop(l, &self->reconnectTimer);
            ev_async_stop(l, w);
            ev_break(l, EVBREAK_ALL);  // what is still connected is freed by stop() once the loop is gone
            return;
        }
        for (auto &c : ch) {
            // An unsubscribe queued when a group emptied is stale if a member has joined since.
            std::string groupChannelPrefix = self->keys().groupChannel("");
            if (!c.subscribe && c.channel.rfind(groupChannelPrefix, 0) == 0 &&
                !self->host.groups.members(c.channel.substr(groupChannelPrefix.size())).empty())
                continue;
            self->sendSubscribe({c.channel}, c.subscribe);
        }
        for (size_t i = 0; i + 1 < out.size(); i += 2) {
            if (!self->pub) break;  // the asker times out; nothing else is waiting on it
            const char *argv[] = {"PUBLISH", out[i].c_str(), out[i + 1].data()};
            size_t lens[] = {7, out[i].size(), out[i + 1].size()};
            redisAsyncCommandArgv(self->pub, nullptr, nullptr, 3, argv, lens);
        }
    }

    bool subscribeAndWait(const std::string &channel) {
        auto waiter = std::make_shared<std::promise<bool>>();
        auto done = waiter->get_future();
        {
            std::lock_guard lock(subMutex);
            if (confirmed.count(channel)) return true;
            subscribeWaiters[channel].push_back(waiter);
            changes.push_back({true, channel});
        }
        ev_async_send(loop, &wake);
        if (done.wait_for(std::chrono::milliseconds(settings.requestTimeoutMs)) == std::future_status::ready) return true;
        log::warn("cluster: subscription not confirmed in time", {log::Field("channel", channel)});
        return false;
    }

    void unsubscribe(const std::string &channel) {
        {
            std::lock_guard lock(subMutex);
            changes.push_back({false, channel});
        }
        ev_async_send(loop, &wake);
    }

    // ---- heartbeat, re-registration and the reaper ----------------------------------------------------------

    void reRegister() {
        std::vector<ConnectionRow> rows;
        host.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
            if (!c->upgraded.load()) return;
            ConnectionRow row;
            row.connectionId = c->info.connectionId;
            row.nodeId = me();
            row.connectedAtMs = c->info.connectedAtMs;
            row.lastActiveAtMs = c->lastActiveAtMs.load();
            row.sourceIp = c->info.sourceIp;
            row.userAgent = c->info.userAgent;
            row.authorizerJson = c->info.authorizerJson;
            rows.push_back(std::move(row));
        });
        size_t n = rows.size();
        store.reRegister(std::move(rows), [this](const std::string &id) { return host.registry->find(id) != nullptr; });
        std::vector<std::vector<std::string>> cmds;
        for (const auto &[g, id] : host.groups.memberships()) {
            cmds.push_back({"SADD", keys().group(g), id});
            cmds.push_back({"SADD", keys().connectionGroups(id), g});
        }
        if (!cmds.empty()) pool.pipeline(cmds);
        log::warn("cluster: Redis had lost this node's connections; registered them again",
                  {log::Field("node", me()), log::Field("connections", static_cast<uint64_t>(n))});
    }

    // This node was paused (or cut off) past the node TTL and another node reaped it: each connection it had
    // then was adopted by the reaper, which runs its $disconnect and removes its row. Registering them again
    // would run it a second time when they close; they are closed here instead, without it, and their
    // clients reconnect. A connection whose row is still this node's (made since, its row written after the
    // reaping) is kept.
    bool closeReapedConnections(RedisConnection &redis, const std::string &reaper) {
        const int64_t settled = nowEpochMs() - 2000;  // older rows are written (or failed) by now
        std::vector<std::shared_ptr<LiveConnection>> older;
        host.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
            if (c->upgraded.load() && c->info.connectedAtMs < settled) older.push_back(c);
        });
        std::vector<std::vector<std::string>> checks;
        for (const auto &c : older) checks.push_back({"HGET", keys().connection(c->info.connectionId), "node"});
        auto replies = checks.empty() ? std::vector<RedisReply>() : redis.pipeline(checks);
        if (replies.size() != older.size()) return false;  // Redis went away again: the next heartbeat looks again
        redis.command({"DEL", keys().nodeReaped(me())});
        size_t closed = 0;
        for (size_t i = 0; i < older.size(); ++i) {
            if (replyIsError(replies[i].get())) continue;
            if (replies[i] && replies[i]->type == REDIS_REPLY_STRING && replyString(replies[i].get()) == me()) continue;  // still ours
            older[i]->disconnectRanElsewhere.store(true);
            host.control->closeConnection(older[i]->info.connectionId, 1012,
                                          "Service Restart: this gateway node left the cluster; reconnect");
            ++closed;
        }
        if (closed == 0) {  // a restart after a crash: the predecessor with this ID was reaped, nothing of it lives here
            log::info("cluster: this node ID was reaped by another node before this start; nothing to close",
                      {log::Field("node", me()), log::Field("reapedBy", reaper)});
            return true;
        }
        log::error("cluster: this node was reaped by another while it did not heartbeat (paused?); its reaped connections are "
                   "closed without a second $disconnect",
                   {log::Field("node", me()), log::Field("reapedBy", reaper), log::Field("connections", static_cast<uint64_t>(closed))});
        return true;
    }

    void stopAliveKeeper() {
        {
            std::lock_guard lock(keeperMutex);
            keeperStopping = true;
        }
        keeperCv.notify_all();
        if (aliveKeeper.joinable()) aliveKeeper.join();
    }

    void reap(RedisConnection &redis) {
        std::lock_guard reapLock(reapMutex);
        if (!reaping) return;
        RedisReply nodes = redis.command({"SMEMBERS", keys().nodes()});
        for (size_t i = 0; i < replyElements(nodes.get()); ++i) {
            std::string node = replyString(replyElement(nodes.get(), i));
            if (node == me()) continue;
            RedisReply alive = redis.command({"EXISTS", keys().nodeAlive(node)});
            if (!alive || replyIsError(alive.get()) || replyInteger(alive.get()) != 0) continue;
            // Adopted, not taken: each row stays until its $disconnect has run here (runDisconnect removes it
            // after), so if this node dies meanwhile, the rest is reaped from it in turn.
            std::string error;
            auto rows = store.adoptRowsOfNode(node, me(), &error);
            if (!error.empty()) {  // Redis went away mid-way: the node stays listed, and the next heartbeat goes on
                log::warn("cluster: reaping a node was interrupted; retrying", {log::Field("node", node), log::Field("error", error)});
                std::string reason = "Gateway node '" + node + "' stopped heartbeating; connection lost";
                for (const auto &row : rows) runDisconnect(row, reason);
                continue;
            }
            redis.command({"SET", keys().nodeReaped(node), me(), "PX", std::to_string(kReapedMarkerMs)});
            redis.command({"SREM", keys().nodes(), node});
            redis.command({"DEL", keys().nodeRegistered(node)});
            log::warn("cluster: node stopped heartbeating; its connections are closed",
                      {log::Field("node", node), log::Field("connections", static_cast<uint64_t>(rows.size())),
                       log::Field("reapedBy", me())});
            std::string reason = "Gateway node '" + node + "' stopped heartbeating; connection lost";
            for (const auto &row : rows) runDisconnect(row, reason);
        }
    }

    void heartbeats() {
        RedisConnection redis(settings.address);
        bool registeredOnce = false;
        for (;;) {
            auto replies = redis.pipeline({{"SET", keys().nodeAlive(me()), token, "PX", std::to_string(settings.nodeTtlMs)},
                                           {"SADD", keys().nodes(), me()},
                                           {"EXISTS", keys().nodeRegistered(me())}});
            bool ok = replies.size() == 3 && !replyIsError(replies[0].get());
            if (ok != redisHealthy.load()) {
                if (ok) log::info("cluster: Redis reachable again", {log::Field("redis", settings.address.text)});
                else log::error("cluster: Redis unreachable; local connections keep working", {log::Field("error", redis.error())});
            }
            redisHealthy = ok;
            if (ok) {
                if (replyInteger(replies[2].get()) == 0) {
                    RedisReply reapedBy = redis.command({"GET", keys().nodeReaped(me())});
                    std::string reaper = reapedBy && !replyIsError(reapedBy.get()) ? replyString(reapedBy.get()) : std::string();
                    bool settled = true;
                    if (!reaper.empty()) settled = closeReapedConnections(redis, reaper);
                    else if (registeredOnce) reRegister();
                    if (settled) {
                        redis.command({"SET", keys().nodeRegistered(me()), token});
                        registeredOnce = true;
                    }
                }
                reap(redis);
            }
            std::unique_lock lock(stopMutex);
            if (stopCv.wait_for(lock, std::chrono::milliseconds(settings.heartbeatMs), [&] { return stopping; })) break;
        }
        if (leaveRowsToReaper) {
            // Our alive key expires within the node TTL and a live node reaps us: it takes the rows left and
            // runs their $disconnect. Leaving the cluster here would leave them for no one.
            log::warn("cluster: stopping with connections whose $disconnect did not run; another node will reap them",
                      {log::Field("node", me())});
            return;
        }
        // Leaving cleanly: our rows are gone (the store flushed), so nobody needs to reap us.
        redis.pipeline({{"DEL", keys().nodeAlive(me())}, {"SREM", keys().nodes(), me()}, {"DEL", keys().nodeRegistered(me())}});
    }
};

ClusterNode::ClusterNode(ClusterSettings settings, HostContext &host, RedisStore &store)
    : impl_(std::make_unique<Impl>(std::move(settings), host, store)) {}

ClusterNode::~ClusterNode() { stop(); }

std::string ClusterNode::claimNodeId() {
    Impl &m = *impl_;
    RedisConnection redis(m.settings.address);
    long long lastTtl = -1;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(m.settings.nodeTtlMs + 2000);
    while (std::chrono::steady_clock::now() < deadline) {
        RedisReply ttl = redis.command({"PTTL", m.keys().nodeAlive(m.me())});
        if (!ttl || replyIsError(ttl.get()))
            return "--cluster " + m.settings.address.text + ": cannot reach Redis (" + (ttl ? replyString(ttl.get()) : redis.error()) + ")";
        long long now = replyInteger(ttl.get());
        if (now < 0) {
            // No live node has this ID: claim it atomically, so that of two nodes started at once with the same
            // ID only one gets it (the other then sees the winner's heartbeat and is refused).
            RedisReply claimed = redis.command({"SET", m.keys().nodeAlive(m.me()), m.token, "NX", "PX", std::to_string(m.settings.nodeTtlMs)});
            if (!claimed || replyIsError(claimed.get()))
                return "--cluster " + m.settings.address.text + ": cannot reach Redis (" + (claimed ? replyString(claimed.get()) : redis.error()) + ")";
            if (replyString(claimed.get()) == "OK") {
                m.aliveKeeper = std::thread([&m] {
                    RedisConnection keeper(m.settings.address);
                    std::unique_lock lock(m.keeperMutex);
                    while (!m.keeperCv.wait_for(lock, std::chrono::milliseconds(m.settings.heartbeatMs), [&] { return m.keeperStopping; }))
                        keeper.command({"SET", m.keys().nodeAlive(m.me()), m.token, "XX", "PX", std::to_string(m.settings.nodeTtlMs)});
                });
                return {};
            }
            continue;  // another node took it a moment ago: watch its heartbeat
        }
        if (lastTtl >= 0 && now > lastTtl + 50)
            return "--node-id " + m.me() + ": a live node of this cluster already uses this ID; give every node its own --node-id";
        if (lastTtl < 0)
            log::warn("cluster: this node ID still has a heartbeat; waiting to see whether its node is alive",
                      {log::Field("node", m.me()), log::Field("ttlMs", static_cast<uint64_t>(now))});
        lastTtl = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<long long>(250, now + 1)));
    }
    return "--node-id " + m.me() + ": its heartbeat key did not expire; is another node with this ID running?";
}

std::string ClusterNode::start(DisconnectRunner runDisconnect) {
    Impl &m = *impl_;
    m.runDisconnect = std::move(runDisconnect);
    m.executor = std::make_unique<Executor>(8);
    m.loop = ev_loop_new(EVFLAG_AUTO);
    if (!m.loop) return "cluster: cannot create an event loop";
    ev_async_init(&m.wake, Impl::onWake);
    m.wake.data = &m;
    ev_async_start(m.loop, &m.wake);
    ev_init(&m.reconnectTimer, Impl::onReconnectTimer);
    m.reconnectTimer.repeat = 0.5;
    m.reconnectTimer.data = &m;
    m.connectAsync();
    m.subscriberThread = std::thread([&m] { ev_run(m.loop, 0); });
    // Serve only once other nodes can reach us: wait (bounded) for the inbox subscription.
    if (!m.subscribeAndWait(m.keys().inboxChannel(m.me())))
        return "cluster: could not subscribe to this node's inbox on " + m.settings.address.text;
    m.stopAliveKeeper();  // the heartbeats take over
    m.heartbeatThread = std::thread([&m] { m.heartbeats(); });
    return {};
}

void ClusterNode::stopReaping() {
    std::lock_guard lock(impl_->reapMutex);  // a reap under way finishes (and submits) first
    impl_->reaping = false;
}

void ClusterNode::stop(bool rowsRemain) {
    Impl &m = *impl_;
    {
        std::lock_guard lock(m.stopMutex);
        m.stopping = true;
        m.leaveRowsToReaper = rowsRemain;
    }
    m.stopCv.notify_all();
    m.stopAliveKeeper();
    if (m.heartbeatThread.joinable()) m.heartbeatThread.join();
    // The subscriber first (it hands joins to the executor), then the executor (its tasks may still queue
    // acks on the loop, which stays allocated until both are gone).
    if (m.subscriberThread.joinable()) {
        m.loopStopping = true;
        ev_async_send(m.loop, &m.wake);
        m.subscriberThread.join();
        if (m.sub) redisAsyncFree(m.sub);
        if (m.pub) redisAsyncFree(m.pub);
        m.sub = m.pub = nullptr;
    }
    m.executor.reset();
    if (m.loop) {
        ev_loop_destroy(m.loop);
        m.loop = nullptr;
    }
}

std::vector<std::string> ClusterNode::problems() const {
    std::vector<std::string> out;
    if (!impl_->redisHealthy.load()) out.push_back("the cluster's Redis (" + impl_->settings.address.text + ") is unreachable");
    if (!impl_->subscribed.load()) out.push_back("not subscribed to the cluster's channels (Redis pub/sub is reconnecting)");
    return out;
}

int ClusterNode::postRemote(const std::string &id, std::string_view data, bool binary, const WpsRendering *wps) {
    BusMessage m;
    m.op = Op::Post;
    m.binary = binary;
    if (wps && !cluster::plainFormRendersAlike(*wps)) m.wps = *wps;  // else the plain form, which every node reads
    m.data.assign(data.data(), data.size());
    return impl_->toOwner(id, std::move(m));
}

int ClusterNode::deleteRemote(const std::string &id) {
    BusMessage m;
    m.op = Op::Delete;
    return impl_->toOwner(id, std::move(m));
}

int ClusterNode::wpsCloseRemote(const std::string &id, const std::string &reason) {
    BusMessage m;
    m.op = Op::Delete;
    m.wpsClose = true;  // an older owner reads a plain Delete and closes without the reason
    m.data = reason;
    return impl_->toOwner(id, std::move(m));
}

bool ClusterNode::describeRemote(const std::string &id, std::string &json) {
    RedisReply r = impl_->pool.command({"HGETALL", impl_->keys().connection(id)});
    auto row = rowFromHash(id, r.get());
    if (!row || row->nodeId == impl_->me() || !impl_->nodeAlive(row->nodeId)) return false;
    ConnectionInfo info;
    info.connectionId = id;
    info.connectedAtMs = row->connectedAtMs;
    info.sourceIp = row->sourceIp;
    info.userAgent = row->userAgent;
    json = connectionDescriptionJson(info, row->lastActiveAtMs);
    return true;
}

int ClusterNode::joinRemote(const std::string &group, const std::string &id) {
    BusMessage m;
    m.op = Op::Join;
    m.group = group;
    return impl_->toOwner(id, std::move(m));
}

int ClusterNode::leaveRemote(const std::string &group, const std::string &id) {
    BusMessage m;
    m.op = Op::Leave;
    m.group = group;
    return impl_->toOwner(id, std::move(m));
}

bool ClusterNode::publishDeliver(const std::string &group, std::string_view data, bool binary, const WpsRendering *wps,
                                 const std::vector<std::string> &excluded) {
    BusMessage m;
    m.op = Op::Deliver;
    m.origin = impl_->me();
    m.group = group;
    m.binary = binary;
    if (wps && !cluster::plainFormRendersAlike(*wps)) m.wps = *wps;  // else the plain form, which every node reads
    m.excluded = excluded;  // none: no 'x' part, which older nodes could not read
    m.data.assign(data.data(), data.size());
    std::string channel = group.empty() ? impl_->keys().everyoneChannel() : impl_->keys().groupChannel(group);
    std::string error;
    RedisReply r = impl_->pool.command({"PUBLISH", channel, cluster::encode(m)}, &error);
    if (r && !replyIsError(r.get())) return true;
    log::warn("cluster: a group send reached this node only", {log::Field("group", group), log::Field("error", r ? replyString(r.get()) : error)});
    return false;
}

void ClusterNode::publishCloseAll(const std::vector<std::string> &excluded, const std::string &reason) {
    BusMessage m;
    m.op = Op::CloseAll;
    m.origin = impl_->me();
    m.excluded = excluded;
    m.data = reason;
    std::string error;
    RedisReply r = impl_->pool.command({"PUBLISH", impl_->keys().everyoneChannel(), cluster::encode(m)}, &error);
    if (!r || replyIsError(r.get()))
        log::warn("cluster: closing all connections reached this node only", {log::Field("error", r ? replyString(r.get()) : error)});
}

bool ClusterNode::memberJoined(const std::string &group, const std::string &id, bool firstLocal) {
    auto r = impl_->pool.pipeline({{"SADD", impl_->keys().group(group), id}, {"SADD", impl_->keys().connectionGroups(id), group}});
    if (r.empty()) return false;
    return !firstLocal || impl_->subscribeAndWait(impl_->keys().groupChannel(group));
}

void ClusterNode::memberLeft(const std::string &group, const std::string &id, bool lastLocal) {
    impl_->pool.pipeline({{"SREM", impl_->keys().group(group), id}, {"SREM", impl_->keys().connectionGroups(id), group}});
    if (lastLocal) impl_->unsubscribe(impl_->keys().groupChannel(group));
}

void ClusterNode::groupsEmptied(std::vector<std::string> groups) {
    if (!impl_->loop) return;
    for (const auto &g : groups) impl_->unsubscribe(impl_->keys().groupChannel(g));
}

bool ClusterNode::groupMembers(const std::string &group, std::vector<std::string> &out) {
    RedisReply r = impl_->pool.command({"SMEMBERS", impl_->keys().group(group)});
    if (!r || replyIsError(r.get())) return false;
    for (size_t i = 0; i < replyElements(r.get()); ++i) out.push_back(replyString(replyElement(r.get(), i)));
    return true;
}

void ClusterNode::runBlocking(std::function<void()> task) {
    if (impl_->executor) impl_->executor->post(std::move(task));
    else task();
}

}  // namespace wsgw
