// Owns: the one deadline of a drain. Set once, when the first network thread's drain begins (SIGTERM,
// SIGINT or a drain request), to that moment plus --drain-seconds; every later wait of the shutdown (the
// other network threads' drains, the handlers still running once the loops have ended) is measured
// against it, so the drain as a whole takes --drain-seconds, not that much per stage.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

namespace wsgw {

class DrainDeadline {
public:
    using Clock = std::chrono::steady_clock;

    // Starts the drain's clock unless it has started already; returns the deadline either way.
    Clock::time_point begin(int drainSeconds) {
        std::lock_guard lock(mutex_);
        if (!deadline_) {
            deadline_ = Clock::now() + std::chrono::seconds(drainSeconds < 0 ? 0 : drainSeconds);
            begun_.notify_all();
        }
        return *deadline_;
    }

    std::optional<Clock::time_point> deadline() const {
        std::lock_guard lock(mutex_);
        return deadline_;
    }

    // What is left of the drain (zero once it has passed); the whole of `drainSeconds` when it has not begun.
    std::chrono::milliseconds remaining(int drainSeconds) const {
        std::optional<Clock::time_point> d = deadline();
        if (!d) return std::chrono::seconds(drainSeconds < 0 ? 0 : drainSeconds);
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*d - Clock::now());
        return left.count() > 0 ? left : std::chrono::milliseconds(0);
    }

    // Blocks until the drain has begun or `cancelled()` holds (checked when cancel() wakes the waiter).
    template <class Pred>
    std::optional<Clock::time_point> waitBegun(Pred cancelled) {
        std::unique_lock lock(mutex_);
        begun_.wait(lock, [&] { return deadline_.has_value() || cancelled(); });
        return deadline_;
    }
    void wakeWaiters() {
        std::lock_guard lock(mutex_);
        begun_.notify_all();
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable begun_;
    std::optional<Clock::time_point> deadline_;
};

}  // namespace wsgw
