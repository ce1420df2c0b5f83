// Owns: the last bound on a shutdown (shutdown_watchdog.h).
#include "shutdown_watchdog.h"

#include "background_log.h"
#include "log.h"

#include <cstdio>
#include <cstdlib>
#include <pthread.h>

namespace wsgw {

ShutdownWatchdog::ShutdownWatchdog(std::shared_ptr<DrainDeadline> deadline, std::chrono::seconds margin)
    : deadline_(std::move(deadline)), margin_(margin) {
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "wsgw-stopguard");
        watch();
    });
}

ShutdownWatchdog::~ShutdownWatchdog() {
    {
        std::lock_guard lock(mutex_);
        finished_ = true;
    }
    finishedCv_.notify_all();
    deadline_->wakeWaiters();
    thread_.join();
}

void ShutdownWatchdog::watch() {
    std::optional<DrainDeadline::Clock::time_point> drainEnds = deadline_->waitBegun([this] { return finished_.load(); });
    if (!drainEnds) return;  // stopped without a drain (a failed start)
    {
        std::unique_lock lock(mutex_);
        if (finishedCv_.wait_until(lock, *drainEnds + margin_, [this] { return finished_.load(); })) return;
    }
    log::error("shutdown: still not finished long after the drain's deadline; leaving without finishing it (the next "
               "start cleans up what is left, as after an unclean stop)",
               {log::Field("stage", stage_.load(std::memory_order_acquire)),
                log::Field("secondsAfterDrainDeadline", static_cast<uint64_t>(margin_.count()))});
    BackgroundLog::flushFor(std::chrono::seconds(1));
    std::fflush(nullptr);
    std::_Exit(1);
}

}  // namespace wsgw
