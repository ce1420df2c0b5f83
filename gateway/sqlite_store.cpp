#include "sqlite_store.h"

#include "log.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <variant>

namespace wsgw {

extern const char kConnectionsSql[];
extern const std::size_t kConnectionsSqlSize;

namespace {

constexpr std::chrono::milliseconds kGatherTime{2};

struct InsertOp { ConnectionRow row; };
struct RemoveOp { std::string id; };
using Op = std::variant<InsertOp, RemoveOp>;

class SqliteStore final : public ConnectionStore {
public:
    explicit SqliteStore(sqlite3 *db) : db_(db) {
        prepare(insert_, "INSERT OR REPLACE INTO connections (connection_id, node_id, connected_at, last_active_at, "
                         "source_ip, user_agent, headers, query, authorizer) VALUES (?,?,?,?,?,?,?,?,?)");
        prepare(remove_, "DELETE FROM connections WHERE connection_id = ?");
        prepare(touch_, "UPDATE connections SET last_active_at = ? WHERE connection_id = ? AND last_active_at < ?");
        writer_ = std::thread([this] { writerLoop(); });
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
        sqlite3_close(db_);
    }

    void insert(ConnectionRow row) override { enqueue(InsertOp{std::move(row)}); }
    void remove(const std::string &id) override { enqueue(RemoveOp{id}); }

    void touch(const std::string &id, int64_t ts) override {
        bool wasIdle;
        {
            std::lock_guard lock(mutex_);
            wasIdle = ops_.empty() && touches_.empty();
            int64_t &slot = touches_[id];
            if (ts > slot) slot = ts;
        }
        if (wasIdle) wake_.notify_one();  // otherwise the writer is awake or about to gather this too
    }

    void flush() override {
        std::unique_lock lock(mutex_);
        uint64_t target = ++requestedFlush_;
        wake_.notify_one();
        flushed_.wait(lock, [&] { return completedFlush_ >= target || stopped_; });
    }

    bool writable() const override { return lastCommitOk_.load(std::memory_order_relaxed); }

    size_t queueDepth() const override {
        std::lock_guard lock(mutex_);
        return ops_.size() + touches_.size();
    }

    std::vector<ConnectionRow> takeRowsOfNode(const std::string &nodeId) override {
        flush();
        std::lock_guard dbLock(dbMutex_);
        std::vector<ConnectionRow> rows = selectRows("node_id", nodeId);
        sqlite3_stmt *s = nullptr;
        sqlite3_prepare_v2(db_, "DELETE FROM connections WHERE node_id = ?", -1, &s, nullptr);
        sqlite3_bind_text(s, 1, nodeId.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_step(s);
        sqlite3_finalize(s);
        return rows;
    }

    std::optional<ConnectionRow> find(const std::string &id) override {
        std::lock_guard dbLock(dbMutex_);
        std::vector<ConnectionRow> rows = selectRows("connection_id", id);
        if (rows.empty()) return std::nullopt;
        return rows.front();
    }

private:
    static std::string text(sqlite3_stmt *s, int col) {
        const auto *t = sqlite3_column_text(s, col);
        return t ? std::string(reinterpret_cast<const char *>(t), sqlite3_column_bytes(s, col)) : std::string();
    }

    // Rows whose `column` equals `value`; the caller holds dbMutex_.
    std::vector<ConnectionRow> selectRows(const char *column, const std::string &value) {
        std::string sql = std::string("SELECT connection_id, node_id, connected_at, last_active_at, source_ip, user_agent, "
                                      "headers, query, authorizer FROM connections WHERE ") + column + " = ?";
        std::vector<ConnectionRow> rows;
        sqlite3_stmt *s = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return rows;
        sqlite3_bind_text(s, 1, value.c_str(), -1, SQLITE_TRANSIENT);
        while (sqlite3_step(s) == SQLITE_ROW) rows.push_back(readRow(s));
        sqlite3_finalize(s);
        return rows;
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

    void enqueue(Op op) {
        bool wasIdle;
        {
            std::lock_guard lock(mutex_);
            wasIdle = ops_.empty() && touches_.empty();
            ops_.push_back(std::move(op));
        }
        if (wasIdle) wake_.notify_one();
    }

    void writerLoop() {
        std::vector<Op> ops;
        std::unordered_map<std::string, int64_t> touches;
        for (;;) {
            uint64_t flushTarget;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] {
                    return stopping_ || !ops_.empty() || !touches_.empty() || requestedFlush_ > completedFlush_;
                });
                // Let a burst gather for a moment: one transaction (and one wake-up of this thread) for many
                // connects and disconnects instead of one each. A flush or a stop does not wait.
                wake_.wait_for(lock, kGatherTime, [&] { return stopping_ || requestedFlush_ > completedFlush_; });
                // Carry over what a failed commit left behind, ahead of what came since.
                for (auto &o : ops_) ops.push_back(std::move(o));
                ops_.clear();
                for (auto &[id, ts] : touches_) {
                    int64_t &slot = touches[id];
                    if (ts > slot) slot = ts;
                }
                touches_.clear();
                flushTarget = requestedFlush_;
                if (ops.empty() && touches.empty() && stopping_) {
                    completedFlush_ = flushTarget;
                    stopped_ = true;
                    flushed_.notify_all();
                    return;
                }
            }
            bool ok = commit(ops, touches);
            lastCommitOk_.store(ok, std::memory_order_relaxed);
            if (ok) {
                ops.clear();
                touches.clear();
            }
            {
                std::lock_guard lock(mutex_);
                if (ok) completedFlush_ = flushTarget;
            }
            flushed_.notify_all();
            if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }

    bool step(sqlite3_stmt *s) {
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return rc == SQLITE_DONE || rc == SQLITE_ROW;
    }

    // Connections that opened and closed within one batch: their INSERT and DELETE cancel out (an ID is
    // never reused), so neither runs, nor their touches. Short-lived connections then cost the table nothing.
    static std::unordered_set<std::string_view> openedAndClosed(const std::vector<Op> &ops) {
        std::unordered_set<std::string_view> inserted, both;
        for (const Op &op : ops) {
            if (const auto *ins = std::get_if<InsertOp>(&op)) inserted.insert(ins->row.connectionId);
            else if (inserted.count(std::get<RemoveOp>(op).id)) both.insert(std::get<RemoveOp>(op).id);
        }
        return both;
    }

    bool commit(const std::vector<Op> &ops, const std::unordered_map<std::string, int64_t> &touches) {
        const std::unordered_set<std::string_view> skip = openedAndClosed(ops);
        if (skip.size() * 2 == ops.size() && touches.empty()) return true;  // nothing left to write
        std::lock_guard dbLock(dbMutex_);
        if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return fail("BEGIN");
        for (const Op &op : ops) {
            if (const auto *ins = std::get_if<InsertOp>(&op)) {
                if (skip.count(ins->row.connectionId)) continue;
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
                if (!step(insert_)) return rollback("INSERT");
            } else {
                if (skip.count(std::get<RemoveOp>(op).id)) continue;
                sqlite3_bind_text(remove_, 1, std::get<RemoveOp>(op).id.c_str(), -1, SQLITE_STATIC);
                if (!step(remove_)) return rollback("DELETE");
            }
        }
        // Touches last: one UPDATE per connection however many messages it sent; a removed row is untouched.
        for (const auto &[id, ts] : touches) {
            if (skip.count(id)) continue;
            sqlite3_bind_int64(touch_, 1, ts);
            sqlite3_bind_text(touch_, 2, id.c_str(), -1, SQLITE_STATIC);
            sqlite3_bind_int64(touch_, 3, ts);
            if (!step(touch_)) return rollback("UPDATE");
        }
        if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return rollback("COMMIT");
        return true;
    }

    bool fail(const char *what) {
        log::error("connection table write failed; retrying", {log::Field("step", what), log::Field("error", sqlite3_errmsg(db_))});
        return false;
    }

    bool rollback(const char *what) {
        fail(what);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return false;
    }

    sqlite3 *db_;
    sqlite3_stmt *insert_ = nullptr, *remove_ = nullptr, *touch_ = nullptr;
    std::mutex dbMutex_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, flushed_;
    std::vector<Op> ops_;
    std::unordered_map<std::string, int64_t> touches_;
    uint64_t requestedFlush_ = 0, completedFlush_ = 0;
    std::atomic<bool> lastCommitOk_{true};
    bool stopping_ = false, stopped_ = false;
    std::thread writer_;
};

}  // namespace

std::unique_ptr<ConnectionStore> openSqliteStore(const std::string &path, std::string *error) {
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
    return std::make_unique<SqliteStore>(db);
}

}  // namespace wsgw
