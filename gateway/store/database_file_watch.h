// Whether the database file we write is still the one at its path: a deleted or replaced database (or WAL)
// file, or one we may no longer write, is found by check() (the store thread's, once a second, which also
// keeps the one-gateway lock held) and reported in the log and by problem() until it is fixed.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>

namespace wsgw {

class DatabaseLock;

class DatabaseFileWatch {
public:
    // Records the identity of the database file and its WAL as they are now (just opened). `lock`, when
    // given, must outlive the watch.
    DatabaseFileWatch(std::string path, DatabaseLock *lock);
    // From one thread.
    void check();
    // From any thread.
    bool problemSeen() const { return problemSeen_.load(std::memory_order_relaxed); }
    std::string problem() const;

private:
    struct Identity {
        bool known = false;
        dev_t dev = 0;
        ino_t ino = 0;
        int error = 0;  // stat()'s errno when not known
    };
    static Identity identityOf(const std::string &path);

    const std::string path_;
    DatabaseLock *lock_;
    Identity dbFile_, walFile_;  // as opened; check() compares the paths against them
    mutable std::mutex mutex_;
    std::string problem_;  // "" while fine; under mutex_
    std::atomic<bool> problemSeen_{false};
};

}  // namespace wsgw
