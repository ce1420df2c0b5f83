// The SQLite store: the ConnectionStore over the SQLite table (sqlite_table), whose writes one store thread
// commits in batches (everything queued since its last commit, in one transaction), retrying a failed
// commit with backoff until it succeeds; at a stop, a failing table is given up after kStopRetryTime and
// its removals journalled durably. The removals of closed connections are journalled as they are queued
// (removal_journal), and each segment of that journal is deleted once a commit covers it. The thread also
// watches the database file once a second (database_file_watch).
#include "sqlite_store.h"

#include "database_file_watch.h"
#include "log.h"
#include "removal_journal.h"
#include "sqlite_table.h"
#include "sqlite_write_batch.h"
#include "touch_queue.h"
#include "write_health.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

namespace wsgw {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kGatherTime{2};
// A failed commit is retried after 50 ms, then 100, 200, ... up to 2 s between attempts, until it succeeds.
constexpr std::chrono::milliseconds kRetryFirst{50}, kRetryMax{2000};
// At shutdown a failing batch is retried this long, then given up (and said so), so a drain cannot hang.
constexpr std::chrono::seconds kStopRetryTime{5};
// How often the store thread checks that the database file is still the one it opened.
constexpr std::chrono::milliseconds kFileCheckInterval{1000};
// Touches wake nobody: the store thread commits them on this tick (or with the next insert, remove or
// flush, whichever comes first). At 10,000 busy connections a wake-up per touch batch meant ~150 small
// transactions a second, each rewriting its rows' pages into the WAL, all stolen from the network thread's
// core; one a second writes each page once. The table's lastActiveAt is then at most this much later than
// the touch (the network thread touches a connection at most once a second; GET /@connections/{id} answers
// from memory and is not affected).
constexpr std::chrono::milliseconds kTouchCommitInterval{1000};

std::string secondsText(Clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 1000) + " s";
}

class SqliteStore final : public ConnectionStore {
public:
    SqliteStore(std::unique_ptr<SqliteTable> table, const std::string &path, DatabaseLock *lock)
        : table_(std::move(table)), file_(path, lock), journal_(path), health_(path) {
        writer_ = std::thread([this] {
            pthread_setname_np(pthread_self(), "wsgw-table");  // so top, perf and /proc tell it from the others
            writerLoop();
        });
    }

    ~SqliteStore() override {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        writer_.join();
    }

    void insert(ConnectionRow row) override { enqueue(SqliteInsertOp{std::move(row), nullptr}, false); }
    void insertDurable(ConnectionRow row, std::function<void(bool)> committed) override {
        if (!committed) committed = [](bool) {};
        enqueue(SqliteInsertOp{std::move(row), std::move(committed)}, true);
    }
    void remove(const std::string &id) override { enqueue(SqliteRemoveOp{id}, false); }
    // The append is a write() into the page cache under the queue's lock, so the ID and its removal are
    // queued together: the store thread then deletes a journal segment only after committing every removal
    // journalled in it (RemovalJournal::seal).
    void removeClosed(const std::string &id) override { enqueue(SqliteRemoveOp{id, true}, false); }

    // No wake-up: the store thread's tick (kTouchCommitInterval) or the next other write takes it.
    void touch(const std::string &id, int64_t ts) override {
        std::lock_guard lock(mutex_);
        touches_.add(id, ts);
    }

    // Waits for the commit of everything queued before the call, however many retries that takes; only a
    // stopping store that gave up its writes lets it return earlier.
    void flush() override {
        std::unique_lock lock(mutex_);
        uint64_t target = ++requestedFlush_;
        wake_.notify_one();
        flushed_.wait(lock, [&] { return completedFlush_ >= target || stopped_; });
    }

    // The writer stops as the destructor stops it (a failing table is given up after kStopRetryTime, its
    // removals journalled), without destroying the store: threads still inside handlers may call it later.
    void stopWrites() override {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        std::unique_lock lock(mutex_);
        flushed_.wait(lock, [&] { return stopped_; });
    }

    bool writable() const override { return !health_.failing() && !file_.problemSeen(); }

    bool writesFailing() const override { return health_.failing(); }

    std::string problem() const override {
        std::optional<WriteHealth::Failure> failure = health_.failure();
        std::string p = file_.problem();
        if (failure) {
            if (!p.empty()) p += "; ";
            p += "the connection table cannot be written: " + failure->error + " (" + std::to_string(queueDepth()) +
                 " writes waiting, retrying for " + secondsText(failure->failingFor) + ")";
        }
        return p;
    }

    size_t queueDepth() const override {
        std::lock_guard lock(mutex_);
        return ops_.size() + touches_.size() + inFlight_;
    }

    std::vector<ConnectionRow> rowsLeftByNode(const std::string &nodeId, std::string *error) override {
        if (error) error->clear();
        std::unordered_set<std::string> done;
        if (!journal_.read(done, error)) return {};
        std::vector<ConnectionRow> rows;
        if (!table_->rowsOfNode(nodeId, rows, error)) return {};
        // Their $disconnect ran before the stop: their rows are deleted like any closed connection's (queued:
        // a table still locked does not hold up the start). The journal's segments go once a commit covers
        // these removals, and not before (adopt()).
        size_t leftOut = std::erase_if(rows, [&](const ConnectionRow &r) { return done.count(r.connectionId) > 0; });
        {
            std::lock_guard lock(mutex_);
            for (const auto &id : done) ops_.push_back(SqliteRemoveOp{id, true});
            journal_.adopt();
        }
        if (!done.empty()) wake_.notify_one();
        if (leftOut > 0)
            log::info("connection table: the connections journalled at the last stop had their $disconnect then; their rows "
                      "are deleted without running it again",
                      {log::Field("journal", journal_.path()), log::Field("connections", static_cast<uint64_t>(leftOut))});
        return rows;
    }

    std::optional<ConnectionRow> find(const std::string &id) override { return table_->find(id); }

private:
    // The store thread's clocks: when the file is next checked and the touches next committed.
    struct Ticks {
        Clock::time_point nextFileCheck = Clock::now() + kFileCheckInterval;
        Clock::time_point nextTouchCommit = Clock::now() + kTouchCommitInterval;
    };

    void enqueue(SqliteOp op, bool urgent) {
        bool wake;
        {
            std::lock_guard lock(mutex_);
            if (const auto *rm = std::get_if<SqliteRemoveOp>(&op); rm && rm->journalled) journal_.append(rm->id);
            wake = urgent || (ops_.empty() && touches_.empty());
            ops_.push_back(std::move(op));
            if (urgent) ++urgentOps_;
        }
        if (wake) wake_.notify_one();
    }

    void writerLoop() {
        SqliteWriteBatch batch;  // taken from the queue; kept across failed commits until one succeeds
        Ticks ticks;
        std::chrono::milliseconds retryDelay = kRetryFirst;
        std::optional<Clock::time_point> giveUpAt;  // set when a stop finds writes failing
        for (;;) {
            uint64_t flushTarget;
            unsigned sealedSegments;  // of the removal journal, covered by this batch
            {
                std::unique_lock lock(mutex_);
                if (batch.empty() && !waitForWork(lock, ticks)) continue;
                flushTarget = takeQueued(batch);
                sealedSegments = journal_.seal();
                if (batch.empty() && stopping_) {
                    journal_.removeFiles();  // every removal journalled so far is committed
                    completedFlush_ = flushTarget;
                    stopped_ = true;
                    flushed_.notify_all();
                    return;
                }
            }
            if (Clock::now() >= ticks.nextFileCheck) {
                file_.check();
                ticks.nextFileCheck = Clock::now() + kFileCheckInterval;
            }
            batch.touches.coalesce();
            std::string error;
            if (table_->commit(batch, &error)) {
                committed(batch, flushTarget, sealedSegments);
                retryDelay = kRetryFirst;
                continue;
            }
            if (!retryOrGiveUp(batch, error, retryDelay, giveUpAt)) return;
        }
    }

    // With nothing to retry: waits for writes, a flush or a stop (true: take them), or for a tick (true when
    // the touches are due; false when it was the file check's, done here, or nothing is due yet).
    bool waitForWork(std::unique_lock<std::mutex> &lock, Ticks &ticks) {
        // Touches are not in it: they wait for the tick (kTouchCommitInterval).
        auto work = [&] { return stopping_ || !ops_.empty() || requestedFlush_ > completedFlush_; };
        if (wake_.wait_until(lock, std::min(ticks.nextFileCheck, ticks.nextTouchCommit), work)) {
            // Let a burst gather for a moment: one transaction (and one wake-up of this thread) for many
            // connects and disconnects instead of one each. A flush, a durable insert or a stop does not wait.
            wake_.wait_for(lock, kGatherTime, [&] { return stopping_ || urgentOps_ > 0 || requestedFlush_ > completedFlush_; });
            return true;
        }
        Clock::time_point now = Clock::now();
        bool touchesDue = now >= ticks.nextTouchCommit && !touches_.empty();
        if (now >= ticks.nextTouchCommit) ticks.nextTouchCommit = now + kTouchCommitInterval;
        if (touchesDue) return true;  // committed by the caller (and the file checked first, if due)
        if (now < ticks.nextFileCheck) return false;
        lock.unlock();
        file_.check();
        ticks.nextFileCheck = Clock::now() + kFileCheckInterval;
        return false;
    }

    // Under mutex_: moves the queue into the batch (a failed batch first, then what came since, in order);
    // returns the flush that the batch's commit completes.
    uint64_t takeQueued(SqliteWriteBatch &batch) {
        for (auto &o : ops_) batch.ops.push_back(std::move(o));
        ops_.clear();
        urgentOps_ = 0;
        // Swapped, not copied, when the batch has none: the network thread gets the emptied buffers of the
        // last commit back and queues into them without allocating.
        if (batch.touches.empty()) batch.touches.swap(touches_);
        else batch.touches.append(touches_);
        touches_.clear();
        inFlight_ = batch.size();
        return requestedFlush_;
    }

    void committed(SqliteWriteBatch &batch, uint64_t flushTarget, unsigned sealedSegments) {
        for (SqliteOp &op : batch.ops)
            if (auto *ins = std::get_if<SqliteInsertOp>(&op); ins && ins->committed) ins->committed(true);
        batch.ops.clear();
        batch.touches.clear();  // its buffers go back to the network thread at the next take
        health_.succeeded();
        journal_.emptySealed(sealedSegments);  // their rows are deleted now
        {
            std::lock_guard lock(mutex_);
            journal_.markEmpty(sealedSegments);
            inFlight_ = 0;
            completedFlush_ = flushTarget;
        }
        flushed_.notify_all();
    }

    // After a failed commit: waits out the backoff delay (true: retry), or, stopping and past the give-up
    // time, gives the writes up (false: the thread ends).
    bool retryOrGiveUp(SqliteWriteBatch &batch, const std::string &error, std::chrono::milliseconds &retryDelay,
                       std::optional<Clock::time_point> &giveUpAt) {
        health_.failed(error, queueDepth());
        dropCancelledPairs(batch);
        std::unique_lock lock(mutex_);
        inFlight_ = batch.size();  // what is left to retry: coalesced, cancelled pairs dropped
        if (stopping_) {
            if (!giveUpAt) giveUpAt = Clock::now() + kStopRetryTime;
            if (Clock::now() >= *giveUpAt) {
                giveUp(lock, batch, error);
                return false;
            }
        }
        // Retry on our own after the delay: new writes, flushes or durable inserts neither hurry nor hold it
        // (only a stop ends the wait, to start the give-up clock).
        // A stopping store retries no later than its give-up time, so the give-up comes at kStopRetryTime
        // and not up to one backoff delay (2 s) after it.
        bool stopSeen = stopping_;
        std::chrono::milliseconds wait = retryDelay;
        if (giveUpAt)
            wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*giveUpAt - Clock::now()),
                              std::chrono::milliseconds(0), retryDelay);
        wake_.wait_for(lock, wait, [&] { return stopping_ && !stopSeen; });
        retryDelay = std::min(retryDelay * 2, kRetryMax);
        return true;
    }

    // At a stop, once kStopRetryTime has passed: the writes are lost, the removals journalled.
    void giveUp(std::unique_lock<std::mutex> &lock, SqliteWriteBatch &batch, const std::string &error) {
        log::error("connection table: giving up at shutdown; these writes are lost (rows of closed connections "
                   "stay until the next start deletes them)",
                   {log::Field("writes", static_cast<uint64_t>(batch.size() + ops_.size() + touches_.size())),
                    log::Field("error", error)});
        for (auto &o : ops_) batch.ops.push_back(std::move(o));
        ops_.clear();
        touches_.clear();
        inFlight_ = 0;
        stopped_ = true;
        // Every queued removal is of a connection whose $disconnect has run (or whose route table has none):
        // journalled durably, so that the next start does not run it again. Under the lock: a handler that
        // returns late appends to the same segment.
        std::vector<std::string> unjournalled;
        size_t removals = 0;
        for (const SqliteOp &op : batch.ops)
            if (const auto *rm = std::get_if<SqliteRemoveOp>(&op)) {
                ++removals;
                if (!rm->journalled) unjournalled.push_back(rm->id);
            }
        journal_.makeDurable(unjournalled, removals);
        lock.unlock();
        for (SqliteOp &op : batch.ops)
            if (auto *ins = std::get_if<SqliteInsertOp>(&op); ins && ins->committed) ins->committed(false);
        flushed_.notify_all();
    }

    const std::unique_ptr<SqliteTable> table_;
    DatabaseFileWatch file_;  // checked by the store thread only
    RemovalJournal journal_;  // append() and seal() under mutex_ (see removeClosed)
    WriteHealth health_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, flushed_;
    std::vector<SqliteOp> ops_;
    size_t urgentOps_ = 0;  // durable inserts among ops_
    TouchQueue touches_;  // not coalesced: appended to by touch(), taken whole by the store thread
    size_t inFlight_ = 0;  // writes the store thread has taken and not yet committed
    uint64_t requestedFlush_ = 0, completedFlush_ = 0;
    bool stopping_ = false, stopped_ = false;
    std::thread writer_;
};

}  // namespace

std::unique_ptr<ConnectionStore> openSqliteStore(const std::string &path, std::string *error, DatabaseLock *lock,
                                                 std::function<bool()> giveUp) {
    std::unique_ptr<SqliteTable> table = SqliteTable::open(path, error, std::move(giveUp));
    if (!table) return nullptr;
    return std::make_unique<SqliteStore>(std::move(table), path, lock);
}

}  // namespace wsgw
