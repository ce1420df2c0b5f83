// Owns: whether a connection table's writes are failing, since when and why, and the log lines that say
// so: a warning at the first failure (another process can hold the lock for a moment, and the retry then
// commits), an error line once the writes have failed for a second, then one per 10 s while they go on, and
// an info line when they succeed again. Shared by the SQLite and Redis stores.
#pragma once

#include "log.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace wsgw {

class WriteHealth {
public:
    using Clock = std::chrono::steady_clock;

    // `target` names what is written (the database file, the Redis address) in the log lines.
    explicit WriteHealth(std::string target, Clock::duration errorAfter = kErrorAfter)
        : target_(std::move(target)), errorAfter_(errorAfter) {}

    // From the store's writer thread: a commit failed (`waiting`: writes queued, the failed ones included)
    // or succeeded.
    void failed(const std::string &error, uint64_t waiting);
    void succeeded();

    // From any thread.
    bool failing() const { return failing_.load(std::memory_order_relaxed); }
    struct Failure {
        std::string error;
        Clock::duration failingFor;
    };
    std::optional<Failure> failure() const;

    static constexpr std::chrono::seconds kErrorAfter{1};
    static constexpr std::chrono::seconds kErrorInterval{10};

private:
    const std::string target_;
    const Clock::duration errorAfter_;
    mutable std::mutex mutex_;
    std::string error_;  // "" while writes succeed; under mutex_
    Clock::time_point failingSince_{};
    uint64_t attempts_ = 0;
    std::atomic<bool> failing_{false};
    // The writer thread's only.
    Clock::time_point lastErrorLine_{};
    bool errorLogged_ = false;
};

}  // namespace wsgw
