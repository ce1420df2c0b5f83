#include "redis_store.h"

#include "log.h"
#include "monotonic_clock.h"
#include "redis_scripts.h"
#include "redis_unsent_inserts.h"
#include "touch_queue.h"
#include "write_health.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <variant>

namespace wsgw {

using namespace redis_scripts;

namespace {

// Touches wake nobody: the writer thread sends them on this tick, or with the next other write or flush
// (the SQLite store's kTouchCommitInterval, for the same reason: a wake-up and a round trip per few
// touches at 10,000 busy connections).
constexpr std::chrono::milliseconds kTouchSendInterval{1000};

int64_t toInt(const std::string &s) { return s.empty() ? 0 : std::strtoll(s.c_str(), nullptr, 10); }

std::vector<std::string> insertCommand(const RedisKeys &keys, const ConnectionRow &r) {
    return {"HSET", keys.connection(r.connectionId), "node", r.nodeId, "connectedAt", std::to_string(r.connectedAtMs),
            "lastActiveAt", std::to_string(r.lastActiveAtMs), "sourceIp", r.sourceIp, "userAgent", r.userAgent,
            "headers", r.headersJson, "query", r.queryJson, "authorizer", r.authorizerJson};
}

}  // namespace

std::optional<ConnectionRow> rowFromHash(const std::string &id, const redisReply *flat) {
    size_t n = replyElements(flat);
    if (n < 2) return std::nullopt;
    ConnectionRow row;
    row.connectionId = id;
    for (size_t i = 0; i + 1 < n; i += 2) {
        std::string k = replyString(replyElement(flat, i)), v = replyString(replyElement(flat, i + 1));
        if (k == "node") row.nodeId = v;
        else if (k == "connectedAt") row.connectedAtMs = toInt(v);
        else if (k == "lastActiveAt") row.lastActiveAtMs = toInt(v);
        else if (k == "sourceIp") row.sourceIp = v;
        else if (k == "userAgent") row.userAgent = v;
        else if (k == "headers") row.headersJson = v;
        else if (k == "query") row.queryJson = v;
        else if (k == "authorizer") row.authorizerJson = v;
    }
    return row;
}

std::optional<ConnectionRow> takeConnectionRow(RedisConnection &redis, const RedisKeys &keys, const std::string &id,
                                               const std::string &node, std::string *error) {
    RedisReply r = redis.command({"EVAL", kTakeScript, "0", keys.prefix, id, node});
    if (!r || replyIsError(r.get())) {
        if (error) *error = r ? replyString(r.get()) : redis.error();
        return std::nullopt;
    }
    return rowFromHash(id, r.get());
}

struct RedisInsertOp {
    ConnectionRow row;
};
struct RedisRemoveOp {
    std::string id;
};
struct RedisReRegisterOp {
    std::vector<ConnectionRow> rows;
    std::function<bool(const std::string &)> stillLive;
};
using RedisStoreOp = std::variant<RedisInsertOp, RedisRemoveOp, RedisReRegisterOp>;

struct RedisStore::Impl {
    RedisKeys keys;
    std::string nodeId;
    RedisConnection writer;  // the writer thread's own
    RedisConnection reader;  // takeRowsOfNode / find, under readerMutex
    std::mutex readerMutex;
    RedisPool direct;  // the workers': ownership checks before a $disconnect, its removal after
    // vouchOwnRowsUntil: monotonic ms; written by the heartbeat thread only (vouchingStopped too).
    std::atomic<int64_t> vouchedUntilMs{INT64_MIN};
    bool vouchingStopped = false;

    mutable std::mutex mutex;
    std::condition_variable wake, drained, insertsSettled;
    std::deque<RedisStoreOp> ops;
    UnsentInserts unsent;
    TouchQueue touches;  // appended to by touch(); taken whole by the writer thread
    TouchQueue batchTouches;  // the writer's; its emptied buffers go back to touch() at the next swap
    std::chrono::steady_clock::time_point nextTouchSend;
    std::vector<std::function<void()>> reachableCallbacks;  // whenReachable()
    std::chrono::steady_clock::time_point callbacksDueAt;
    bool callbacksAdded = false;  // the writer recomputes how long it sleeps
    size_t inFlight = 0;
    int flushWaiters = 0;  // flush() calls waiting: touches are sent at once, not at the tick
    bool flushGaveUp = false;  // the last flush() timed out
    bool stopping = false;
    WriteHealth health;
    std::thread thread;

    Impl(const RedisAddress &a, RedisKeys k, std::string node)
        : keys(std::move(k)), nodeId(std::move(node)), writer(a), reader(a), direct(a, 16), health(a.text) {}

    void enqueue(RedisStoreOp op) {
        {
            std::lock_guard lock(mutex);
            if (auto *i = std::get_if<RedisInsertOp>(&op)) unsent.queued(i->row.connectionId);
            ops.push_back(std::move(op));
        }
        wake.notify_one();
    }

    void appendCommands(const RedisStoreOp &op, std::vector<std::vector<std::string>> &cmds) {
        if (auto *i = std::get_if<RedisInsertOp>(&op)) {
            cmds.push_back(insertCommand(keys, i->row));
            cmds.push_back({"SADD", keys.nodeConnections(i->row.nodeId), i->row.connectionId});
        } else if (auto *r = std::get_if<RedisRemoveOp>(&op)) {
            cmds.push_back({"EVAL", kTakeScript, "0", keys.prefix, r->id, nodeId});
        } else if (auto *rr = std::get_if<RedisReRegisterOp>(&op)) {
            for (const auto &row : rr->rows) {
                if (rr->stillLive && !rr->stillLive(row.connectionId)) continue;
                cmds.push_back(insertCommand(keys, row));
                cmds.push_back({"SADD", keys.nodeConnections(row.nodeId), row.connectionId});
            }
        }
    }

    bool callbacksDue() const { return !reachableCallbacks.empty() && std::chrono::steady_clock::now() >= callbacksDueAt; }

    // Under the lock: until there is work (touches alone wait for the tick, callbacks for their pause).
    void waitForWork(std::unique_lock<std::mutex> &lock) {
        callbacksAdded = false;
        auto until = nextTouchSend;
        if (!reachableCallbacks.empty()) until = std::min(until, callbacksDueAt);
        bool woken = wake.wait_until(lock, until, [&] {
            return stopping || !ops.empty() || (flushWaiters > 0 && !touches.empty()) || callbacksAdded;
        });
        if (!woken && std::chrono::steady_clock::now() >= nextTouchSend)
            nextTouchSend = std::chrono::steady_clock::now() + kTouchSendInterval;
    }

    // Under the lock: the next batch (an insert cancelled meanwhile is dropped) and the touches with it.
    std::vector<RedisStoreOp> takeBatch() {
        std::vector<RedisStoreOp> batch;
        while (!ops.empty() && batch.size() < 1024) {
            RedisStoreOp op = std::move(ops.front());
            ops.pop_front();
            if (auto *i = std::get_if<RedisInsertOp>(&op); i && !unsent.take(i->row.connectionId)) continue;
            batch.push_back(std::move(op));
        }
        batchTouches.clear();
        if (ops.empty()) batchTouches.swap(touches);  // touches go after every op queued before them
        inFlight = batch.size() + batchTouches.size();
        return batch;
    }

    // Without the lock: one round trip (a PING when only whenReachable() callbacks wait for one).
    bool send(const std::vector<RedisStoreOp> &batch, bool ping) {
        batchTouches.coalesce();  // one script call per connection, with its latest time
        std::vector<std::vector<std::string>> cmds;
        for (const auto &op : batch) appendCommands(op, cmds);
        for (size_t i = 0; i < batchTouches.size(); ++i)
            cmds.push_back({"EVAL", kTouchScript, "1", keys.connection(std::string(batchTouches.id(i))),
                            std::to_string(batchTouches.time(i))});
        if (cmds.empty() && ping) cmds.push_back({"PING"});
        bool ok = cmds.empty() || !writer.pipeline(cmds).empty();
        if (ok) health.succeeded();
        else health.failed("Redis: " + writer.error(), batch.size() + batchTouches.size());
        return ok;
    }

    void run() {
        std::unique_lock lock(mutex);
        nextTouchSend = std::chrono::steady_clock::now() + kTouchSendInterval;
        for (;;) {
            waitForWork(lock);
            const bool ping = callbacksDue();
            if (ops.empty() && touches.empty() && !ping) {
                if (stopping) return;
                continue;
            }
            std::vector<RedisStoreOp> batch = takeBatch();
            lock.unlock();
            bool ok = send(batch, ping);
            lock.lock();
            inFlight = 0;
            unsent.batchEnded(ok);
            insertsSettled.notify_all();
            if (!ok) {
                // Nothing is lost: the batch goes back in front, and touches merge with newer ones.
                for (auto it = batch.rbegin(); it != batch.rend(); ++it) ops.push_front(std::move(*it));
                touches.append(batchTouches);
                touches.coalesce();  // bounded by the connections touched, however long Redis is away
                if (stopping) return;
                wake.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping; });
                if (stopping) return;
            } else if (callbacksDue()) {
                std::vector<std::function<void()>> ready;
                ready.swap(reachableCallbacks);
                lock.unlock();
                for (auto &f : ready) f();
                lock.lock();
            }
            if (ops.empty() && touches.empty()) drained.notify_all();
        }
    }

    enum class InsertState { NeverSent, Confirmed, Retrying };
    // Where the row's insert is, once a batch sending it right now has ended (bounded); a queued one is
    // cancelled when `cancelQueued`.
    InsertState insertState(const std::string &id, bool cancelQueued) {
        std::unique_lock lock(mutex);
        insertsSettled.wait_for(lock, std::chrono::seconds(3), [&] { return unsent.state(id) != UnsentInserts::State::Sending; });
        auto state = unsent.state(id);
        if (!state) return InsertState::Confirmed;
        if (*state != UnsentInserts::State::Queued) return InsertState::Retrying;
        if (cancelQueued) unsent.cancel(id);
        return InsertState::NeverSent;
    }
};

RedisStore::RedisStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
    impl_->thread = std::thread([this] { impl_->run(); });
}

std::unique_ptr<RedisStore> RedisStore::open(const RedisAddress &address, RedisKeys keys, std::string nodeId, std::string *error) {
    auto impl = std::make_unique<Impl>(address, std::move(keys), std::move(nodeId));
    RedisReply pong = impl->writer.command({"PING"});
    if (!pong || replyIsError(pong.get())) {
        if (error)
            *error = "--cluster " + address.text + ": cannot reach Redis (" +
                     (pong ? replyString(pong.get()) : impl->writer.error()) + "); start redis-server or fix the URL";
        return nullptr;
    }
    return std::unique_ptr<RedisStore>(new RedisStore(std::move(impl)));
}

RedisStore::~RedisStore() {
    flush();
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->thread.join();
}

void RedisStore::insert(ConnectionRow row) { impl_->enqueue(RedisInsertOp{std::move(row)}); }
void RedisStore::remove(const std::string &id) { impl_->enqueue(RedisRemoveOp{id}); }

void RedisStore::removeClosed(const std::string &id) {
    switch (impl_->insertState(id, true)) {
        case Impl::InsertState::NeverSent: return;  // cancelled: the row never reached Redis
        case Impl::InsertState::Retrying: impl_->enqueue(RedisRemoveOp{id}); return;  // after its insert
        case Impl::InsertState::Confirmed: break;
    }
    RedisReply r = impl_->direct.command({"EVAL", kTakeScript, "0", impl_->keys.prefix, id, impl_->nodeId});
    if (!r || replyIsError(r.get())) impl_->enqueue(RedisRemoveOp{id});  // the writer retries it
}

ConnectionStore::DisconnectOwner RedisStore::disconnectOwner(const std::string &id) {
    if (monotonicMs() < impl_->vouchedUntilMs.load(std::memory_order_acquire)) return DisconnectOwner::Ours;
    switch (impl_->insertState(id, false)) {
        case Impl::InsertState::NeverSent: return DisconnectOwner::Ours;  // no other node can have seen the row
        case Impl::InsertState::Retrying: return DisconnectOwner::Unknown;
        case Impl::InsertState::Confirmed: break;
    }
    const RedisKeys &k = impl_->keys;
    RedisReply r = impl_->direct.command({"EVAL", kOwnerScript, "0", k.connection(id), k.connectionReaped(id),
                                          k.nodeAlive(impl_->nodeId), impl_->nodeId});
    if (!r || r->type != REDIS_REPLY_INTEGER) return DisconnectOwner::Unknown;
    if (r->integer == 1) return DisconnectOwner::Ours;
    return r->integer == 0 ? DisconnectOwner::Elsewhere : DisconnectOwner::Unknown;
}

void RedisStore::vouchOwnRowsUntil(int64_t untilMonotonicMs) {
    if (!impl_->vouchingStopped) impl_->vouchedUntilMs.store(untilMonotonicMs, std::memory_order_release);
}

void RedisStore::stopVouching() {
    impl_->vouchingStopped = true;
    impl_->vouchedUntilMs.store(INT64_MIN, std::memory_order_release);
}

void RedisStore::whenReachable(std::function<void()> ready) {
    {
        std::lock_guard lock(impl_->mutex);
        if (impl_->reachableCallbacks.empty())
            impl_->callbacksDueAt = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
        impl_->reachableCallbacks.push_back(std::move(ready));
        impl_->callbacksAdded = true;
    }
    impl_->wake.notify_one();
}
void RedisStore::reRegister(std::vector<ConnectionRow> rows, std::function<bool(const std::string &)> stillLive) {
    impl_->enqueue(RedisReRegisterOp{std::move(rows), std::move(stillLive)});
}

void RedisStore::touch(const std::string &id, int64_t ts) {
    std::lock_guard lock(impl_->mutex);
    impl_->touches.add(id, ts);  // no wake-up: sent on the writer's tick (kTouchSendInterval)
}

void RedisStore::flush() {
    // Bounded: with Redis down at shutdown we give up after 5 s rather than hang the drain. Once: a second
    // flush while Redis is still failing (the destructor's, after the drain's) returns at once, so that a
    // stop with Redis gone is not 5 s longer for each.
    std::unique_lock lock(impl_->mutex);
    if (impl_->flushGaveUp && impl_->health.failing()) return;
    ++impl_->flushWaiters;
    impl_->wake.notify_one();  // touches waiting for the tick go now
    bool done = impl_->drained.wait_for(lock, std::chrono::seconds(5),
                                        [&] { return impl_->ops.empty() && impl_->touches.empty() && impl_->inFlight == 0; });
    impl_->flushGaveUp = !done;
    --impl_->flushWaiters;
}

size_t RedisStore::queueDepth() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->ops.size() + impl_->touches.size() + impl_->inFlight;
}

bool RedisStore::writable() const { return !impl_->health.failing(); }

std::vector<ConnectionRow> RedisStore::rowsLeftByNode(const std::string &nodeId, std::string *error) {
    std::vector<ConnectionRow> rows;
    std::lock_guard lock(impl_->readerMutex);
    RedisReply ids = impl_->reader.command({"SMEMBERS", impl_->keys.nodeConnections(nodeId)});
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        if (error) *error = "Redis: cannot list the rows of node " + nodeId + ": " + (ids ? replyString(ids.get()) : impl_->reader.error());
        return rows;
    }
    std::vector<std::vector<std::string>> reads;
    for (size_t i = 0; i < replyElements(ids.get()); ++i)
        reads.push_back({"HGETALL", impl_->keys.connection(replyString(replyElement(ids.get(), i)))});
    std::vector<RedisReply> hashes = reads.empty() ? std::vector<RedisReply>() : impl_->reader.pipeline(reads);
    if (hashes.size() != reads.size()) {
        if (error) *error = "Redis: cannot read the rows of node " + nodeId + ": " + impl_->reader.error();
        return {};
    }
    for (size_t i = 0; i < hashes.size(); ++i) {
        auto row = rowFromHash(replyString(replyElement(ids.get(), i)), hashes[i].get());
        if (row && row->nodeId == nodeId) rows.push_back(std::move(*row));  // else a reaper adopted it
    }
    if (error) error->clear();
    return rows;
}

std::vector<ConnectionRow> RedisStore::adoptRowsOfNode(const std::string &deadNode, const std::string &claimer, int64_t markMs,
                                                       std::string *error) {
    if (error) error->clear();
    std::vector<ConnectionRow> rows;
    std::lock_guard lock(impl_->readerMutex);
    const RedisKeys &k = impl_->keys;
    RedisReply ids = impl_->reader.command({"SMEMBERS", k.nodeConnections(deadNode)});
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        if (error) *error = "Redis: cannot list the rows of node " + deadNode + ": " + (ids ? replyString(ids.get()) : impl_->reader.error());
        return rows;
    }
    for (size_t i = 0; i < replyElements(ids.get()); ++i) {
        std::string id = replyString(replyElement(ids.get(), i));
        RedisReply r = impl_->reader.command({"EVAL", kAdoptScript, "0", k.connection(id), k.nodeAlive(deadNode),
                                              k.nodeConnections(deadNode), k.nodeConnections(claimer), deadNode, claimer, id,
                                              k.connectionReaped(id), std::to_string(markMs), k.nodeRegistered(deadNode)});
        if (!r || replyIsError(r.get())) {
            if (error) *error = "Redis: adopting " + id + " failed: " + (r ? replyString(r.get()) : impl_->reader.error());
            return rows;  // the ones adopted so far are the caller's to run
        }
        if (r->type == REDIS_REPLY_ARRAY)
            if (auto row = rowFromHash(id, r.get())) rows.push_back(std::move(*row));
    }
    return rows;
}

std::optional<ConnectionRow> RedisStore::find(const std::string &id) {
    std::lock_guard lock(impl_->readerMutex);
    RedisReply r = impl_->reader.command({"HGETALL", impl_->keys.connection(id)});
    return rowFromHash(id, r.get());
}

}  // namespace wsgw
