// Watching that the database file (and its WAL) is still the one the store opened, and writable.
#include "database_file_watch.h"

#include "database_lock.h"
#include "log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wsgw {

DatabaseFileWatch::DatabaseFileWatch(std::string path, DatabaseLock *lock)
    : path_(std::move(path)), lock_(lock), dbFile_(identityOf(path_)), walFile_(identityOf(path_ + "-wal")) {}

DatabaseFileWatch::Identity DatabaseFileWatch::identityOf(const std::string &path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return {false, 0, 0, errno};
    return {true, st.st_dev, st.st_ino, 0};
}

std::string DatabaseFileWatch::problem() const {
    std::lock_guard lock(mutex_);
    return problem_;
}

// The file we write must still be the one at the path: a deleted or replaced database (or WAL) file takes
// every later write with it, although SQLite goes on writing without an error. Not writable by us (a
// chmod, a read-only remount) is reported too. It does not recover by itself: the gateway must restart.
void DatabaseFileWatch::check() {
    if (lock_) lock_->keepHeld();
    std::string problem;
    Identity now = identityOf(path_);
    if (!now.known) {
        problem = "the database file " + path_ + " was deleted while the gateway runs (" + std::strerror(now.error) +
                  "): rows written now are lost; restart the gateway";
    } else if (now.dev != dbFile_.dev || now.ino != dbFile_.ino) {
        problem = "the database file " + path_ + " was replaced by another file while the gateway runs: rows written now "
                  "are lost; restart the gateway";
    } else if (walFile_.known) {
        Identity wal = identityOf(path_ + "-wal");
        if (!wal.known || wal.dev != walFile_.dev || wal.ino != walFile_.ino)
            problem = "the write-ahead log " + path_ + "-wal was deleted or replaced while the gateway runs: rows written "
                      "now are lost; restart the gateway";
    }
    if (problem.empty() && ::access(path_.c_str(), W_OK) != 0)
        problem = "the database file " + path_ + " is not writable (" + std::strerror(errno) + "): fix its permissions or mount";
    {
        std::lock_guard lock(mutex_);
        if (problem == problem_) return;
        problem_ = problem;
    }
    problemSeen_.store(!problem.empty(), std::memory_order_relaxed);
    if (!problem.empty()) log::error("connection table: database file problem", {log::Field("db", path_), log::Field("error", problem)});
    else log::info("connection table: the database file is usable again", {log::Field("db", path_)});
}

}  // namespace wsgw
