// The connection table's SQLite database: set-up, the batch commit (inserts, removes, touches in rowid
// order) and reading rows.
#include "sqlite_table.h"

#include "log.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

namespace wsgw {

extern const char kConnectionsSql[];
extern const std::size_t kConnectionsSqlSize;

namespace {

// How long one attempt waits for another process's write lock before it counts as failed: short, so that
// /readyz and the queue depth show a lock at once, and the store thread's backoff does the waiting.
constexpr int kBusyTimeoutMs = 200;

std::string columnText(sqlite3_stmt *s, int col) {
    const auto *t = sqlite3_column_text(s, col);
    return t ? std::string(reinterpret_cast<const char *>(t), sqlite3_column_bytes(s, col)) : std::string();
}

ConnectionRow readRow(sqlite3_stmt *s) {
    ConnectionRow r;
    r.connectionId = columnText(s, 0);
    r.nodeId = columnText(s, 1);
    r.connectedAtMs = sqlite3_column_int64(s, 2);
    r.lastActiveAtMs = sqlite3_column_int64(s, 3);
    r.sourceIp = columnText(s, 4);
    r.userAgent = columnText(s, 5);
    r.headersJson = columnText(s, 6);
    r.queryJson = columnText(s, 7);
    r.authorizerJson = columnText(s, 8);
    return r;
}

// The set-up's wait for another process's lock: up to 5 s for each statement, in 10 ms steps, so that a
// stop asked for meanwhile (giveUp) ends it at once; the first wait is logged, as it holds up the start.
struct SetupLockWait {
    static constexpr auto kLimit = std::chrono::milliseconds(5000);
    static constexpr auto kStep = std::chrono::milliseconds(10);
    std::string path;
    std::function<bool()> giveUp;
    std::chrono::steady_clock::time_point until{};
    bool logged = false;

    static int onBusy(void *self, int attempt) {
        auto &w = *static_cast<SetupLockWait *>(self);
        const auto now = std::chrono::steady_clock::now();
        if (attempt == 0) w.until = now + kLimit;
        if (now >= w.until || (w.giveUp && w.giveUp())) return 0;
        if (!w.logged) {
            w.logged = true;
            log::warn("connection table: another process holds the database's lock; waiting for it (up to 5 s)",
                      {log::Field("db", w.path)});
        }
        std::this_thread::sleep_for(kStep);
        return 1;
    }
};

bool stepAndReset(sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

}  // namespace

std::unique_ptr<SqliteTable> SqliteTable::open(const std::string &path, std::string *error, std::function<bool()> giveUp) {
    auto fail = [&](const std::string &why) -> std::unique_ptr<SqliteTable> {
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
    SetupLockWait setupWait{path, std::move(giveUp)};
    sqlite3_busy_handler(db, SetupLockWait::onBusy, &setupWait);
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
    return std::unique_ptr<SqliteTable>(new SqliteTable(db));
}

SqliteTable::SqliteTable(sqlite3 *db) : db_(db) {
    prepare(insert_, "INSERT OR REPLACE INTO connections (connection_id, node_id, connected_at, last_active_at, "
                     "source_ip, user_agent, headers, query, authorizer) VALUES (?,?,?,?,?,?,?,?,?)");
    prepare(remove_, "DELETE FROM connections WHERE connection_id = ?");
    prepare(rowidOf_, "SELECT rowid FROM connections WHERE connection_id = ?");
    prepare(touch_, "UPDATE connections SET last_active_at = ? WHERE rowid = ? AND last_active_at < ?");
}

SqliteTable::~SqliteTable() {
    sqlite3_finalize(insert_);
    sqlite3_finalize(remove_);
    sqlite3_finalize(touch_);
    sqlite3_finalize(rowidOf_);
    sqlite3_close(db_);
}

void SqliteTable::prepare(sqlite3_stmt *&stmt, const char *sql) {
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK)
        log::error("sqlite prepare failed", {log::Field("sql", sql), log::Field("error", sqlite3_errmsg(db_))});
}

bool SqliteTable::rowsOfNode(const std::string &nodeId, std::vector<ConnectionRow> &rows, std::string *error) {
    std::lock_guard lock(mutex_);
    if (selectRows("node_id", nodeId, rows)) return true;
    if (error) *error = "reading the rows of node '" + nodeId + "' failed: " + sqlite3_errmsg(db_);
    return false;
}

std::optional<ConnectionRow> SqliteTable::find(const std::string &id) {
    std::lock_guard lock(mutex_);
    std::vector<ConnectionRow> rows;
    selectRows("connection_id", id, rows);
    if (rows.empty()) return std::nullopt;
    return rows.front();
}

// Appends the rows whose `column` equals `value`; false when the query failed. The caller holds mutex_.
bool SqliteTable::selectRows(const char *column, const std::string &value, std::vector<ConnectionRow> &rows) {
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

bool SqliteTable::commit(const SqliteWriteBatch &batch, std::string *error) {
    const std::unordered_set<std::string_view> skip = openedAndClosed(batch.ops);
    if (skip.size() * 2 == batch.ops.size() && batch.touches.empty()) return true;  // nothing left to write
    std::lock_guard lock(mutex_);
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return fail("BEGIN", error);
    if (!writeOps(batch, skip, error) || !writeTouches(batch, skip, error)) return false;  // rolled back
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return rollback("COMMIT", error);
    return true;
}

// The inserts and removes in their order, but for the skipped pairs; rolled back on failure.
bool SqliteTable::writeOps(const SqliteWriteBatch &batch, const std::unordered_set<std::string_view> &skip, std::string *error) {
    for (const SqliteOp &op : batch.ops) {
        if (const auto *ins = std::get_if<SqliteInsertOp>(&op)) {
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
            if (!stepAndReset(insert_)) return rollback("INSERT", error);
        } else {
            if (skip.count(std::get<SqliteRemoveOp>(op).id)) continue;
            sqlite3_bind_text(remove_, 1, std::get<SqliteRemoveOp>(op).id.c_str(), -1, SQLITE_STATIC);
            if (!stepAndReset(remove_)) return rollback("DELETE", error);
        }
    }
    return true;
}

// Touches last: one UPDATE per connection however many messages it sent (coalesced); a removed row is
// untouched (it has no rowid to update). In two passes, both inside the transaction (so a rowid found
// is the row's): the rowids are looked up in ID order, which reads only the ID index and walks it from
// one end to the other; the UPDATEs then go in rowid order, so each page of the table is read and
// written once. By ID the rows are in random order (IDs are random): with the small page cache nearly
// every UPDATE read its page again and spilled another one into the WAL. Rolled back on failure.
bool SqliteTable::writeTouches(const SqliteWriteBatch &batch, const std::unordered_set<std::string_view> &skip, std::string *error) {
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
        if (!stepAndReset(touch_)) return rollback("UPDATE", error);
    }
    return true;
}

bool SqliteTable::fail(const char *what, std::string *error) {
    *error = std::string(what) + ": " + sqlite3_errmsg(db_);
    return false;
}

bool SqliteTable::rollback(const char *what, std::string *error) {
    fail(what, error);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
}

}  // namespace wsgw
