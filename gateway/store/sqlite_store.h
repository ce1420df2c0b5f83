// The embedded connection table: SQLite in WAL mode (other processes may read it while we run), written
// by one store thread that commits everything queued since its last commit in one transaction (lastActiveAt
// touches, which wake nobody, at the latest on its one-second tick), retries a failed commit with backoff
// until it succeeds, and watches that the database file is still the one it opened. Also the
// one-gateway-per-database lock that is taken before the table is opened.
#pragma once

#include "connection_store.h"

#include <memory>
#include <string>

namespace wsgw {

// Opens (creating parent directories and the file) and starts the writer thread; nullptr and *error
// naming the path and the SQLite error on failure.
class DatabaseLock;
// `lock`, when given, is checked with the database file once a second (DatabaseLock::keepHeld).
std::unique_ptr<ConnectionStore> openSqliteStore(const std::string &path, std::string *error, DatabaseLock *lock = nullptr);

// Only one gateway may use a database: two would take each other's rows for an unclean stop's leftovers
// and run their $disconnect while the clients are connected. The lock is a POSIX write lock on the file
// `<db>.lock` (next to the database, created if missing), which holds the owner's PID as text. The kernel
// releases it when the process ends, however it ends, and it is not inherited by child processes.
class DatabaseLock {
public:
    // Takes the lock without waiting; nullptr and *error naming the holder's PID when another process has it.
    static std::unique_ptr<DatabaseLock> acquire(const std::string &dbPath, std::string *error);
    ~DatabaseLock();
    DatabaseLock(const DatabaseLock &) = delete;
    DatabaseLock &operator=(const DatabaseLock &) = delete;
    const std::string &path() const { return path_; }
    // From one thread (the store's, once a second): if the lock file at the path is no longer the one held,
    // it is made and locked again, or an error says another process got it first.
    void keepHeld();

private:
    DatabaseLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    int fd_;
    std::string path_;
    bool reported_ = false;
};

}  // namespace wsgw
