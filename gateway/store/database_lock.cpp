// The one-gateway-per-database lock: taking it (naming the holder when refused) and keeping it held.
#include "database_lock.h"

#include "log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace wsgw {

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
