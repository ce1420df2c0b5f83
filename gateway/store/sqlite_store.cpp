#include "sqlite_store.h"

#include "log.h"
#include "touch_queue.h"
#include "write_health.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <mutex>
#include <thread>
#include <string_view>
#include <unordered_set>
#include <variant>

namespace wsgw {

extern const char kConnectionsSql[];
extern const std::size_t kConnectionsSqlSize;

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kGatherTime{2};
// How long one attempt waits for another process's write lock before it counts as failed: short, so that
// /readyz and the queue depth show a lock at once, and the store thread's backoff does the waiting.
constexpr int kBusyTimeoutMs = 200;
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

struct InsertOp {
    ConnectionRow row;
    std::function<void(bool)> committed;  // insertDurable's; such an insert never cancels against its remove
};
struct RemoveOp { std::string id; };
using Op = std::variant<InsertOp, RemoveOp>;

struct FileIdentity {
    bool known = false;
    dev_t dev = 0;
    ino_t ino = 0;
    int error = 0;  // stat()'s errno when not known
};

FileIdentity identityOf(const std::string &path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return {false, 0, 0, errno};
    return {true, st.st_dev, st.st_ino, 0};
}

std::string secondsText(Clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 1000) + " s";
}

class SqliteStore final : public ConnectionStore {
public:
    SqliteStore(sqlite3 *db, std::string path, DatabaseLock *lock) : db_(db), path_(std::move(path)), lock_(lock) {
        prepare(insert_, "INSERT OR REPLACE INTO connections (connection_id, node_id, connected_at, last_active_at, "
                         "source_ip, user_agent, headers, query, authorizer) VALUES (?,?,?,?,?,?,?,?,?)");
        prepare(remove_, "DELETE FROM connections WHERE connection_id = ?");
        prepare(rowidOf_, "SELECT rowid FROM connections WHERE connection_id = ?");
        prepare(touch_, "UPDATE connections SET last_active_at = ? WHERE rowid = ? AND last_active_at < ?");
        dbFile_ = identityOf(path_);
        walFile_ = identityOf(path_ + "-wal");
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
        sqlite3_finalize(insert_);
        sqlite3_finalize(remove_);
        sqlite3_finalize(touch_);
        sqlite3_finalize(rowidOf_);
        sqlite3_close(db_);
    }

    void insert(ConnectionRow row) override { enqueue(InsertOp{std::move(row), nullptr}, false); }
    void insertDurable(ConnectionRow row, std::function<void(bool)> committed) override {
        if (!committed) committed = [](bool) {};
        enqueue(InsertOp{std::move(row), std::move(committed)}, true);
    }
    void remove(const std::string &id) override { enqueue(RemoveOp{id}, false); }

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

    bool writable() const override {
        return !health_.failing() && !fileProblemSeen_.load(std::memory_order_relaxed);
    }

    bool writesFailing() const override { return health_.failing(); }

    std::string problem() const override {
        std::optional<WriteHealth::Failure> failure = health_.failure();
        std::lock_guard lock(mutex_);
        std::string p = fileProblem_;
        if (failure) {
            if (!p.empty()) p += "; ";
            p += "the connection table cannot be written: " + failure->error + " (" +
                 std::to_string(ops_.size() + touches_.size() + inFlight_) + " writes waiting, retrying for " +
                 secondsText(failure->failingFor) + ")";
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
        if (!readDisconnectedJournal(done, error)) return {};
        std::vector<ConnectionRow> rows;
        {
            std::lock_guard dbLock(dbMutex_);
            if (!selectRows("node_id", nodeId, rows)) {
                if (error) *error = "reading the rows of node '" + nodeId + "' failed: " + sqlite3_errmsg(db_);
                return {};
            }
        }
        if (!done.empty()) {
            // Their $disconnect ran before the stop: their rows are deleted like any closed connection's
            // (queued: a table still locked does not hold up the start), and the journal goes once that is
            // committed (writerLoop).
            std::erase_if(rows, [&](const ConnectionRow &r) { return done.count(r.connectionId) > 0; });
            for (const auto &id : done) enqueue(RemoveOp{id}, false);
            {
                std::lock_guard lock(mutex_);
                journalFlushTarget_ = ++requestedFlush_;
            }
            wake_.notify_one();
            log::info("connection table: the connections journalled at the last stop had their $disconnect then; their rows "
                      "are deleted without running it again",
                      {log::Field("journal", journalPath()), log::Field("connections", static_cast<uint64_t>(done.size()))});
        }
        return rows;
    }

    std::optional<ConnectionRow> find(const std::string &id) override {
        std::lock_guard dbLock(dbMutex_);
        std::vector<ConnectionRow> rows;
        selectRows("connection_id", id, rows);
        if (rows.empty()) return std::nullopt;
        return rows.front();
    }

private:
    // The journal of removals given up at shutdown (writerLoop): IDs of connections whose $disconnect ran and
    // whose row is still in the table. One ID a line; fsynced before the gateway exits.
    std::string journalPath() const { return path_ + ".disconnected"; }

    void writeDisconnectedJournal(const std::vector<std::string> &ids) {
        if (ids.empty()) return;
        std::string text;
        for (const auto &id : ids) text += id + '\n';
        int fd = ::open(journalPath().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        bool ok = fd >= 0;
        for (size_t off = 0; ok && off < text.size();) {
            ssize_t n = ::write(fd, text.data() + off, text.size() - off);
            if (n < 0 && errno == EINTR) continue;
            ok = n > 0;
            if (ok) off += static_cast<size_t>(n);
        }
        ok = ok && ::fsync(fd) == 0;
        int savedErrno = errno;
        if (fd >= 0) ::close(fd);
        if (ok) {  // the new file's name must be durable too
            std::string dir = std::filesystem::path(journalPath()).parent_path().string();
            int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                ::fsync(dfd);
                ::close(dfd);
            }
        }
        errno = savedErrno;
        if (ok)
            log::warn("connection table: the closed connections whose rows could not be deleted are journalled; the next start "
                      "deletes their rows without running their $disconnect again",
                      {log::Field("journal", journalPath()), log::Field("connections", static_cast<uint64_t>(ids.size()))});
        else
            log::error("connection table: cannot write the journal of closed connections; the next start runs their $disconnect again",
                       {log::Field("journal", journalPath()), log::Field("error", std::strerror(errno)),
                        log::Field("connections", static_cast<uint64_t>(ids.size()))});
    }

    // The IDs journalled at the last stop; false with *error when the journal exists but cannot be read.
    bool readDisconnectedJournal(std::unordered_set<std::string> &ids, std::string *error) {
        int fd = ::open(journalPath().c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            if (errno == ENOENT) return true;
            if (error) *error = journalPath() + ": cannot read: " + std::strerror(errno);
            return false;
        }
        std::string text;
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            text.append(buf, static_cast<size_t>(n));
        }
        ::close(fd);
        for (size_t at = 0; at < text.size();) {
            size_t nl = text.find('\n', at);
            std::string id = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
            if (!id.empty()) ids.insert(std::move(id));
            at = nl == std::string::npos ? text.size() : nl + 1;
        }
        return true;
    }

    static std::string text(sqlite3_stmt *s, int col) {
        const auto *t = sqlite3_column_text(s, col);
        return t ? std::string(reinterpret_cast<const char *>(t), sqlite3_column_bytes(s, col)) : std::string();
    }

    // Appends the rows whose `column` equals `value`; false when the query failed. The caller holds dbMutex_.
    bool selectRows(const char *column, const std::string &value, std::vector<ConnectionRow> &rows) {
        std::string sql = std::string("SELECT connection_id, node_id, connected_at, last_active_at, source_ip, user_agent, "
                                      "headers, query, authorizer FROM connections WHERE ") + column + " = ?";
        sqlite3_stmt *s = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return false;
        sqlite3_bind_text(s, 1, value.c_str(), -1, SQLITE_TRANSIENT);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) rows.push_back(readRow(s));
        sqlite3_finalize(s);
        return rc == SQLITE_DONE;
    }

    static ConnectionRow readRow(sqlite3_stmt *s) {
        ConnectionRow r;
        r.connectionId = text(s, 0);
        r.nodeId = text(s, 1);
        r.connectedAtMs = sqlite3_column_int64(s, 2);
        r.lastActiveAtMs = sqlite3_column_int64(s, 3);
        r.sourceIp = text(s, 4);
        r.userAgent = text(s, 5);
        r.headersJson = text(s, 6);
        r.queryJson = text(s, 7);
        r.authorizerJson = text(s, 8);
        return r;
    }

    void prepare(sqlite3_stmt *&stmt, const char *sql) {
        if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK)
            log::error("sqlite prepare failed", {log::Field("sql", sql), log::Field("error", sqlite3_errmsg(db_))});
    }

    void enqueue(Op op, bool urgent) {
        bool wake;
        {
            std::lock_guard lock(mutex_);
            wake = urgent || (ops_.empty() && touches_.empty());
            ops_.push_back(std::move(op));
            if (urgent) ++urgentOps_;
        }
        if (wake) wake_.notify_one();
    }

    struct Batch {
        std::vector<Op> ops;
        TouchQueue touches;  // coalesced (one per connection, sorted) before each commit attempt
        bool empty() const { return ops.empty() && touches.empty(); }
        size_t size() const { return ops.size() + touches.size(); }
    };

    void writerLoop() {
        Batch batch;  // taken from the queue; kept across failed commits until one succeeds
        Clock::time_point nextFileCheck = Clock::now() + kFileCheckInterval;
        Clock::time_point nextTouchCommit = Clock::now() + kTouchCommitInterval;
        std::chrono::milliseconds retryDelay = kRetryFirst;
        std::optional<Clock::time_point> giveUpAt;  // set when a stop finds writes failing
        for (;;) {
            uint64_t flushTarget;
            {
                std::unique_lock lock(mutex_);
                // Touches are not in it: they wait for the tick (kTouchCommitInterval).
                auto work = [&] { return stopping_ || !ops_.empty() || requestedFlush_ > completedFlush_; };
                if (batch.empty()) {
                    if (!wake_.wait_until(lock, std::min(nextFileCheck, nextTouchCommit), work)) {
                        Clock::time_point now = Clock::now();
                        bool touchesDue = now >= nextTouchCommit && !touches_.empty();
                        if (now >= nextTouchCommit) nextTouchCommit = now + kTouchCommitInterval;
                        if (!touchesDue) {
                            if (now < nextFileCheck) continue;
                            lock.unlock();
                            checkFile();
                            nextFileCheck = Clock::now() + kFileCheckInterval;
                            continue;
                        }
                        // The touches' tick: committed below (and the file checked first, if due).
                    } else {
                        // Let a burst gather for a moment: one transaction (and one wake-up of this thread) for
                        // many connects and disconnects instead of one each. A flush, a durable insert or a stop
                        // does not wait.
                        wake_.wait_for(lock, kGatherTime,
                                       [&] { return stopping_ || urgentOps_ > 0 || requestedFlush_ > completedFlush_; });
                    }
                }
                // A failed batch goes first, then what came since, in order.
                for (auto &o : ops_) batch.ops.push_back(std::move(o));
                ops_.clear();
                urgentOps_ = 0;
                // Swapped, not copied, when the batch has none: the network thread gets the emptied buffers of
                // the last commit back and queues into them without allocating.
                if (batch.touches.empty()) batch.touches.swap(touches_);
                else batch.touches.append(touches_);
                touches_.clear();
                inFlight_ = batch.size();
                flushTarget = requestedFlush_;
                if (batch.empty() && stopping_) {
                    completedFlush_ = flushTarget;
                    stopped_ = true;
                    flushed_.notify_all();
                    return;
                }
            }
            if (Clock::now() >= nextFileCheck) {
                checkFile();
                nextFileCheck = Clock::now() + kFileCheckInterval;
            }
            batch.touches.coalesce();
            std::string error;
            bool ok = commit(batch, &error);
            if (ok) {
                for (Op &op : batch.ops)
                    if (auto *ins = std::get_if<InsertOp>(&op); ins && ins->committed) ins->committed(true);
                batch.ops.clear();
                batch.touches.clear();  // its buffers go back to the network thread at the next take
                retryDelay = kRetryFirst;
                health_.succeeded();
                bool journalDone;
                {
                    std::lock_guard lock(mutex_);
                    inFlight_ = 0;
                    completedFlush_ = flushTarget;
                    journalDone = journalFlushTarget_ != 0 && completedFlush_ >= journalFlushTarget_;
                    if (journalDone) journalFlushTarget_ = 0;
                }
                if (journalDone) ::unlink(journalPath().c_str());  // its rows are deleted now
                flushed_.notify_all();
                continue;
            }
            health_.failed(error, queueDepth());
            dropCancelledPairs(batch);
            std::unique_lock lock(mutex_);
            inFlight_ = batch.size();  // what is left to retry: coalesced, cancelled pairs dropped
            if (stopping_) {
                if (!giveUpAt) giveUpAt = Clock::now() + kStopRetryTime;
                if (Clock::now() >= *giveUpAt) {
                    log::error("connection table: giving up at shutdown; these writes are lost (rows of closed connections "
                               "stay until the next start deletes them)",
                               {log::Field("writes", static_cast<uint64_t>(batch.size() + ops_.size() + touches_.size())),
                                log::Field("error", error)});
                    for (auto &o : ops_) batch.ops.push_back(std::move(o));
                    ops_.clear();
                    touches_.clear();
                    inFlight_ = 0;
                    stopped_ = true;
                    lock.unlock();
                    // Every queued removal is of a connection whose $disconnect has run (or whose route
                    // table has none): journalled, so that the next start does not run it again.
                    std::vector<std::string> removed;
                    for (const Op &op : batch.ops)
                        if (const auto *rm = std::get_if<RemoveOp>(&op)) removed.push_back(rm->id);
                    writeDisconnectedJournal(removed);
                    for (Op &op : batch.ops)
                        if (auto *ins = std::get_if<InsertOp>(&op); ins && ins->committed) ins->committed(false);
                    flushed_.notify_all();
                    return;
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
        }
    }

    // The file we write must still be the one at the path: a deleted or replaced database (or WAL) file takes
    // every later write with it, although SQLite goes on writing without an error. Not writable by us (a
    // chmod, a read-only remount) is reported too. It does not recover by itself: the gateway must restart.
    void checkFile() {
        if (lock_) lock_->keepHeld();
        std::string problem;
        FileIdentity now = identityOf(path_);
        if (!now.known) {
            problem = "the database file " + path_ + " was deleted while the gateway runs (" + std::strerror(now.error) +
                      "): rows written now are lost; restart the gateway";
        } else if (now.dev != dbFile_.dev || now.ino != dbFile_.ino) {
            problem = "the database file " + path_ + " was replaced by another file while the gateway runs: rows written now "
                      "are lost; restart the gateway";
        } else if (walFile_.known) {
            FileIdentity wal = identityOf(path_ + "-wal");
            if (!wal.known || wal.dev != walFile_.dev || wal.ino != walFile_.ino)
                problem = "the write-ahead log " + path_ + "-wal was deleted or replaced while the gateway runs: rows written "
                          "now are lost; restart the gateway";
        }
        if (problem.empty() && ::access(path_.c_str(), W_OK) != 0)
            problem = "the database file " + path_ + " is not writable (" + std::strerror(errno) + "): fix its permissions or mount";
        {
            std::lock_guard lock(mutex_);
            if (problem == fileProblem_) return;
            fileProblem_ = problem;
        }
        fileProblemSeen_.store(!problem.empty(), std::memory_order_relaxed);
        if (!problem.empty()) log::error("connection table: database file problem", {log::Field("db", path_), log::Field("error", problem)});
        else log::info("connection table: the database file is usable again", {log::Field("db", path_)});
    }

    bool step(sqlite3_stmt *s) {
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return rc == SQLITE_DONE || rc == SQLITE_ROW;
    }

    // Connections that opened and closed within one batch: their INSERT and DELETE cancel out (an ID is
    // never reused), so neither runs, nor their touches. Short-lived connections then cost the table nothing.
    // A durable insert is written even so: its caller waits for exactly that commit.
    static std::unordered_set<std::string_view> openedAndClosed(const std::vector<Op> &ops) {
        std::unordered_set<std::string_view> inserted, both;
        for (const Op &op : ops) {
            if (const auto *ins = std::get_if<InsertOp>(&op)) {
                if (!ins->committed) inserted.insert(ins->row.connectionId);
            } else if (inserted.count(std::get<RemoveOp>(op).id)) {
                both.insert(std::get<RemoveOp>(op).id);
            }
        }
        return both;
    }

    // While commits fail the batch keeps everything that arrives meanwhile. A connection that opened and
    // closed in it (its plain INSERT and its DELETE) would be skipped by the commit anyway: drop the pair now,
    // so connect/close churn during a long failure (a full disk) does not pile rows up in memory.
    static void dropCancelledPairs(Batch &batch) {
        const std::unordered_set<std::string_view> pairs = openedAndClosed(batch.ops);  // views into batch.ops
        if (pairs.empty()) return;
        size_t touchesLeft = 0;
        for (size_t i = 0; i < batch.touches.size(); ++i) touchesLeft += pairs.count(batch.touches.id(i)) ? 0 : 1;
        // Nothing else in it: left whole, the next retry's commit() finds nothing to write and succeeds, which
        // ends the failing state. An emptied batch would not be retried, and the store would stay "failing"
        // (refusing every new upgrade) until some other write came.
        if (batch.ops.size() == 2 * pairs.size() && touchesLeft == 0) return;
        batch.touches.coalesceKeeping([&](std::string_view id) { return pairs.count(id) == 0; });
        // Copies: erasing moves the ops the views point into.
        std::unordered_set<std::string> cancelled;
        for (std::string_view id : pairs) cancelled.emplace(id);
        std::erase_if(batch.ops, [&](const Op &op) {
            if (const auto *ins = std::get_if<InsertOp>(&op)) return !ins->committed && cancelled.count(ins->row.connectionId) > 0;
            return cancelled.count(std::get<RemoveOp>(op).id) > 0;
        });
    }

    bool commit(const Batch &batch, std::string *error) {
        const std::unordered_set<std::string_view> skip = openedAndClosed(batch.ops);
        if (skip.size() * 2 == batch.ops.size() && batch.touches.empty()) return true;  // nothing left to write
        std::lock_guard dbLock(dbMutex_);
        if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return fail("BEGIN", error);
        for (const Op &op : batch.ops) {
            if (const auto *ins = std::get_if<InsertOp>(&op)) {
                if (!ins->committed && skip.count(ins->row.connectionId)) continue;
                const ConnectionRow &r = ins->row;
                sqlite3_bind_text(insert_, 1, r.connectionId.c_str(), -1, SQLITE_STATIC);
                sqlite3_bind_text(insert_, 2, r.nodeId.c_str(), -1, SQLITE_STATIC);
                sqlite3_bind_int64(insert_, 3, r.connectedAtMs);
                sqlite3_bind_int64(insert_, 4, r.lastActiveAtMs);
                sqlite3_bind_text(insert_, 5, r.sourceIp.c_str(), -1, SQLITE_STATIC);
                sqlite3_bind_text(insert_, 6, r.userAgent.c_str(), -1, SQLITE_STATIC);
                sqlite3_bind_text(insert_, 7, r.headersJson.c_str(), -1, SQLITE_STATIC);
                sqlite3_bind_text(insert_, 8, r.queryJson.c_str(), -1, SQLITE_STATIC);
                if (r.authorizerJson.empty()) sqlite3_bind_null(insert_, 9);
                else sqlite3_bind_text(insert_, 9, r.authorizerJson.c_str(), -1, SQLITE_STATIC);
                if (!step(insert_)) return rollback("INSERT", error);
            } else {
                if (skip.count(std::get<RemoveOp>(op).id)) continue;
                sqlite3_bind_text(remove_, 1, std::get<RemoveOp>(op).id.c_str(), -1, SQLITE_STATIC);
                if (!step(remove_)) return rollback("DELETE", error);
            }
        }
        // Touches last: one UPDATE per connection however many messages it sent (coalesced); a removed row is
        // untouched (it has no rowid to update). In two passes, both inside this transaction (so a rowid found
        // is the row's): the rowids are looked up in ID order, which reads only the ID index and walks it from
        // one end to the other; the UPDATEs then go in rowid order, so each page of the table is read and
        // written once. By ID the rows are in random order (IDs are random): with the small page cache nearly
        // every UPDATE read its page again and spilled another one into the WAL.
        std::vector<std::pair<int64_t, int64_t>> touchTargets;  // (rowid, time)
        touchTargets.reserve(batch.touches.size());
        for (size_t i = 0; i < batch.touches.size(); ++i) {
            std::string_view id = batch.touches.id(i);
            if (skip.count(id)) continue;
            sqlite3_bind_text(rowidOf_, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
            int rc = sqlite3_step(rowidOf_);
            if (rc == SQLITE_ROW) touchTargets.emplace_back(sqlite3_column_int64(rowidOf_, 0), batch.touches.time(i));
            sqlite3_reset(rowidOf_);
            sqlite3_clear_bindings(rowidOf_);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rollback("SELECT rowid", error);
        }
        std::sort(touchTargets.begin(), touchTargets.end());
        for (const auto &[rowid, ts] : touchTargets) {
            sqlite3_bind_int64(touch_, 1, ts);
            sqlite3_bind_int64(touch_, 2, rowid);
            sqlite3_bind_int64(touch_, 3, ts);
            if (!step(touch_)) return rollback("UPDATE", error);
        }
        if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return rollback("COMMIT", error);
        return true;
    }

    bool fail(const char *what, std::string *error) {
        *error = std::string(what) + ": " + sqlite3_errmsg(db_);
        return false;
    }

    bool rollback(const char *what, std::string *error) {
        fail(what, error);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return false;
    }

    sqlite3 *db_;
    const std::string path_;
    FileIdentity dbFile_, walFile_;  // as opened; checkFile() compares the paths against them
    DatabaseLock *lock_;             // checked with the files: it outlives the store (main holds both)
    sqlite3_stmt *insert_ = nullptr, *remove_ = nullptr, *touch_ = nullptr, *rowidOf_ = nullptr;
    uint64_t journalFlushTarget_ = 0;  // under mutex_: the flush that deletes the journalled rows (0: none)
    std::mutex dbMutex_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, flushed_;
    std::vector<Op> ops_;
    size_t urgentOps_ = 0;  // durable inserts among ops_
    TouchQueue touches_;  // not coalesced: appended to by touch(), taken whole by the store thread
    size_t inFlight_ = 0;  // writes the store thread has taken and not yet committed
    uint64_t requestedFlush_ = 0, completedFlush_ = 0;
    std::string fileProblem_;  // "" while fine; under mutex_
    WriteHealth health_{path_};
    std::atomic<bool> fileProblemSeen_{false};
    bool stopping_ = false, stopped_ = false;
    std::thread writer_;
};

}  // namespace

std::unique_ptr<ConnectionStore> openSqliteStore(const std::string &path, std::string *error, DatabaseLock *lock) {
    auto fail = [&](const std::string &why) -> std::unique_ptr<ConnectionStore> {
        if (error) *error = path + ": " + why + " (choose another file with --db)";
        return nullptr;
    };
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return fail("cannot create its directory: " + ec.message());
    sqlite3 *db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        return fail("cannot open the connection table: " + msg);
    }
    // Setting up may wait for another process's lock a while; the store thread's writes then wait briefly
    // and retry with backoff instead (see kBusyTimeoutMs).
    sqlite3_busy_timeout(db, 5000);
    // A small page cache: the table is written in batches and read rarely, and its cache would otherwise grow
    // with the number of connections (the 2 MB default is about 100 bytes each at 19,000).
    const char *setup[] = {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-256"};
    for (const char *sql : setup) {
        if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
            std::string msg = sqlite3_errmsg(db);
            sqlite3_close(db);
            return fail(std::string("cannot set up the connection table (") + sql + "): " + msg);
        }
    }
    std::string ddl(kConnectionsSql, kConnectionsSqlSize);
    char *err = nullptr;
    if (sqlite3_exec(db, ddl.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db);
        sqlite3_free(err);
        sqlite3_close(db);
        return fail("cannot create the connections table: " + msg);
    }
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    return std::make_unique<SqliteStore>(db, path, lock);
}

std::unique_ptr<DatabaseLock> DatabaseLock::acquire(const std::string &dbPath, std::string *error) {
    const std::string lockPath = dbPath + ".lock";
    auto fail = [&](const std::string &why) -> std::unique_ptr<DatabaseLock> {
        if (error) *error = why;
        return nullptr;
    };
    // A directory given as --db (the data directory instead of the file in it) made its lock file beside the
    // directory (--db /srv/data: /srv/data.lock) and then failed with SQLite's "unable to open database file".
    // Its own error code: a --db that does not exist yet (the usual first start) is no error here.
    std::error_code notThere;
    if (std::filesystem::is_directory(dbPath, notThere))
        return fail("--db " + dbPath + ": is a directory: give the database file's path (for example " +
                    (std::filesystem::path(dbPath) / "wsgw.db").string() + ")");
    std::error_code ec;
    auto parent = std::filesystem::path(dbPath).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return fail(dbPath + ": cannot create its directory: " + ec.message() + " (choose another file with --db)");
    // Never truncated on open: the holder's PID in it is what a refused second gateway reports.
    int fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail(lockPath + ": cannot open the database's lock file: " + std::strerror(errno) + " (choose another file with --db)");
    struct flock whole{};
    whole.l_type = F_WRLCK;
    whole.l_whence = SEEK_SET;
    if (::fcntl(fd, F_SETLK, &whole) != 0) {
        int err = errno;
        if (err != EAGAIN && err != EACCES) {
            ::close(fd);
            return fail(lockPath + ": cannot lock the database's lock file: " + std::strerror(err));
        }
        // The kernel knows the holder (F_GETLK); the file's text is the fallback (another PID namespace).
        struct flock probe{};
        probe.l_type = F_WRLCK;
        probe.l_whence = SEEK_SET;
        long pid = 0;
        if (::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) pid = probe.l_pid;
        if (pid <= 0) {
            char buf[32] = {};
            ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
            if (n > 0) pid = std::strtol(buf, nullptr, 10);
        }
        ::close(fd);
        return fail("--db " + dbPath + ": another gateway (PID " + (pid > 0 ? std::to_string(pid) : std::string("unknown")) +
                    ") is using this database (it holds " + lockPath +
                    "). Only one gateway may use a database: stop that one first, or give this one another --db");
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
        log::warn("cannot write our PID into the database's lock file", {log::Field("file", lockPath),
                                                                          log::Field("error", std::strerror(errno))});
    return std::unique_ptr<DatabaseLock>(new DatabaseLock(fd, lockPath));
}

// An operator's clean-up of a "stale" lock file (or a script's rm of the data directory's leftovers) must not
// let a second gateway in: the path must still name the file we hold locked. If it does not, a new lock file
// is made and locked; if someone else already locked a new one, two gateways may share the database now,
// which is said as loudly as we can.
void DatabaseLock::keepHeld() {
    struct stat held{}, now{};
    if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &now) == 0 && held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
        reported_ = false;
        return;
    }
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct flock whole{};
    whole.l_type = F_WRLCK;
    whole.l_whence = SEEK_SET;
    if (fd < 0 || ::fcntl(fd, F_SETLK, &whole) != 0) {
        int err = errno;
        if (fd >= 0) ::close(fd);
        if (!reported_)
            log::error("the database's lock file was deleted or replaced, and it cannot be locked again: another gateway may "
                       "be using this database now; stop it",
                       {log::Field("file", path_), log::Field("error", std::strerror(err))});
        reported_ = true;
        return;
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {}  // the lock is what counts
    ::close(fd_);  // the old file's lock (its inode is no longer at the path)
    fd_ = fd;
    reported_ = false;
    log::warn("the database's lock file was deleted or replaced while the gateway runs; it is made and locked again",
              {log::Field("file", path_)});
}

DatabaseLock::~DatabaseLock() { ::close(fd_); }  // releases the lock; the file (and its stale PID) stays

}  // namespace wsgw
