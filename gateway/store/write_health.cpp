#include "write_health.h"

namespace wsgw {

void WriteHealth::failed(const std::string &error, uint64_t waiting) {
    Clock::time_point now = Clock::now();
    bool first;
    uint64_t attempts;
    Clock::time_point since;
    {
        std::lock_guard lock(mutex_);
        first = error_.empty();
        if (first) failingSince_ = now;
        since = failingSince_;
        error_ = error.empty() ? std::string("unknown error") : error;
        attempts = ++attempts_;
    }
    failing_.store(true, std::memory_order_relaxed);
    auto fields = {log::Field("target", target_), log::Field("error", error), log::Field("attempts", attempts),
                   log::Field("waiting", waiting),
                   log::Field("failingForMs", static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - since).count()))};
    if (first) {
        errorLogged_ = false;
        log::warn("connection table write failed; retrying with backoff until it succeeds", fields);
    } else if (now - since >= errorAfter_ && (!errorLogged_ || now - lastErrorLine_ >= kErrorInterval)) {
        errorLogged_ = true;
        lastErrorLine_ = now;
        log::error("connection table writes still failing; retrying with backoff until they succeed", fields);
    }
}

void WriteHealth::succeeded() {
    if (!failing_.load(std::memory_order_relaxed)) return;
    uint64_t attempts;
    Clock::duration failedFor;
    {
        std::lock_guard lock(mutex_);
        attempts = attempts_;
        failedFor = Clock::now() - failingSince_;
        error_.clear();
        attempts_ = 0;
    }
    failing_.store(false, std::memory_order_relaxed);
    log::info("connection table writes succeed again",
              {log::Field("target", target_), log::Field("failedAttempts", attempts),
               log::Field("failedForMs", static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(failedFor).count()))});
}

std::optional<WriteHealth::Failure> WriteHealth::failure() const {
    std::lock_guard lock(mutex_);
    if (error_.empty()) return std::nullopt;
    return Failure{error_, Clock::now() - failingSince_};
}

}  // namespace wsgw
