// The one-gateway-per-database lock (`<db>.lock`), taken before the table is opened and kept held while the
// gateway runs (keepHeld: a lock file deleted or replaced meanwhile is made and locked again).
#pragma once

#include <memory>
#include <string>

namespace wsgw {

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
