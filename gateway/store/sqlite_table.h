// The connection table's SQLite database: opening it (WAL, the schema, the busy timeout), committing a
// batch of writes in one transaction, and reading rows. Its own lock serialises the store thread's commits
// with reads from other threads.
#pragma once

#include "connection_store.h"
#include "sqlite_write_batch.h"

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace wsgw {

class SqliteTable {
public:
    // Opens (creating parent directories and the file) and sets the table up; nullptr and *error naming the
    // path and the SQLite error on failure. Another process's lock is waited for up to 5 s per statement (a
    // warning says so once), less when `giveUp` returns true.
    static std::unique_ptr<SqliteTable> open(const std::string &path, std::string *error, std::function<bool()> giveUp = {});
    ~SqliteTable();
    SqliteTable(const SqliteTable &) = delete;
    SqliteTable &operator=(const SqliteTable &) = delete;

    // One transaction for the whole batch (its touches coalesced by the caller); false and *error naming the
    // step and SQLite's error when it failed and was rolled back.
    bool commit(const SqliteWriteBatch &batch, std::string *error);
    // Appends the rows of the node; false and *error when the query failed.
    bool rowsOfNode(const std::string &nodeId, std::vector<ConnectionRow> &rows, std::string *error);
    std::optional<ConnectionRow> find(const std::string &id);

private:
    explicit SqliteTable(sqlite3 *db);
    void prepare(sqlite3_stmt *&stmt, const char *sql);
    bool selectRows(const char *column, const std::string &value, std::vector<ConnectionRow> &rows);
    bool writeOps(const SqliteWriteBatch &batch, const std::unordered_set<std::string_view> &skip, std::string *error);
    bool writeTouches(const SqliteWriteBatch &batch, const std::unordered_set<std::string_view> &skip, std::string *error);
    bool fail(const char *what, std::string *error);
    bool rollback(const char *what, std::string *error);

    sqlite3 *db_;
    sqlite3_stmt *insert_ = nullptr, *remove_ = nullptr, *touch_ = nullptr, *rowidOf_ = nullptr;
    std::mutex mutex_;  // held by a commit and by each read
};

}  // namespace wsgw
