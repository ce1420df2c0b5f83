// Owns: the last bound on a shutdown. Each stage of the stop has its own bound (docs/operations.md,
// "Shutdown"); this one catches what none of them foresaw, such as a plugin's shutdown callback that never
// returns or a reload under way whose plugin init hangs: once the drain has begun, a process still running
// `margin` after the drain's deadline logs the stage it was stuck in and leaves with _Exit(1). By then the
// connection table's last write has been made or given up (main stops the store before the stages that
// run plugin code), so what is cut short is a plugin's own clean-up.
#pragma once

#include "drain_deadline.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace wsgw {

class ShutdownWatchdog {
public:
    ShutdownWatchdog(std::shared_ptr<DrainDeadline> deadline, std::chrono::seconds margin);
    ~ShutdownWatchdog();  // the stop finished in time (or never began): the watchdog's thread ends
    ShutdownWatchdog(const ShutdownWatchdog &) = delete;
    ShutdownWatchdog &operator=(const ShutdownWatchdog &) = delete;

    // What the shutdown does now (a string literal), named in the error line if it is cut off there.
    void stage(const char *name) { stage_.store(name, std::memory_order_release); }

private:
    void watch();

    std::shared_ptr<DrainDeadline> deadline_;
    const std::chrono::seconds margin_;
    std::atomic<const char *> stage_{"draining the connections"};
    std::atomic<bool> finished_{false};
    std::mutex mutex_;
    std::condition_variable finishedCv_;
    std::thread thread_;
};

}  // namespace wsgw
