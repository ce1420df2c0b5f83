// The handler worker threads and their watchdog. Owns the threads: creating them (a thread that cannot
// be created, EAGAIN from a pids cgroup or RLIMIT_NPROC, is logged and retried, never fatal), keeping the
// pool at its size when a worker is written off, joining a written-off worker once its handler returns,
// and at stop() joining the workers or, past the grace, abandoning those still inside a handler. The
// watchdog looks at each worker's slot every 5 ms while any is busy or has begun a call since its last look
// (every 500 ms when idle) and hands a passed deadline to its Duties, and a call that outlasted a look too
// (lanes may wait behind it while other workers sleep: see InvocationLanes::wakeDeferred). What a worker does and what a deadline
// means are the Invoker's.
#pragma once

#include "host_api.h"
#include "invocation_lanes.h"
#include "stuck_routes.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace wsgw {

// What the watchdog needs to know about the invocation a worker is running (under `mutex`).
struct WorkerSlot {
    std::thread thread;
    std::mutex mutex;
    std::shared_ptr<InvocationLane> lane;  // the lane this worker is draining
    bool busy = false;
    bool timedOut = false;
    bool isolated = false;  // returns at its deadline by itself: never written off
    RouteMetrics *metrics = nullptr;
    bool retired = false;  // timed out: its lane went to another worker; it ends when the handler returns
    std::atomic<bool> exited{false};  // the worker has returned (read by stop() without the mutex)
    const void *handlerId = nullptr;  // the in-process PluginInstance running, for the stuck count
    Invocation *invocation = nullptr; // the one being run (the worker's), for the write-off, while busy
    uint64_t started = 0;             // integration calls begun: the watchdog stays awake while these move
    uint64_t startedSeen = 0;         // the watchdog's: `started` when it last looked
    std::chrono::steady_clock::time_point deadline;
    wsgw_event_type type = WSGW_MESSAGE;
    // Views of the invocation's IDs, its route's key and its integration's name, set at each call (no copy per
    // message): valid while the slot is busy, and routeKey while the worker still holds the invocation.
    std::string_view connectionId, requestId, handler;
    const char *routeKey = "";
};

class WorkerPool {
public:
    // What the workers and the watchdog do, supplied by the Invoker.
    class Duties {
    public:
        virtual void work(WorkerSlot &slot) = 0;            // a worker's life; it ends when this returns
        virtual void deadlinePassed(WorkerSlot &slot) = 0;  // under slot.mutex, slot.timedOut just set
        virtual void noWorkerLeft() = 0;                    // every worker is written off, none can start
        virtual void slowCallRunning() = 0;                 // a call still running since the last look: wake workers for ready lanes
    protected:
        ~Duties() = default;
    };

    // `stuck` is only read, for the log line of a thread that cannot be created.
    WorkerPool(unsigned threads, Duties &duties, const StuckRoutes &stuck);
    WorkerPool(const WorkerPool &) = delete;
    WorkerPool &operator=(const WorkerPool &) = delete;

    void start();  // the workers and the watchdog; separate from the constructor so Duties is whole first
    // An idle pool's watchdog sleeps kWatchdogIdleSleep instead of ticking every 5 ms (~400 wake-ups a
    // second for nothing): a worker calls this after marking its slot busy.
    void wakeIdleWatchdog();
    // Stops the watchdog, waits up to `grace` for the workers to leave (the caller has made them), joins
    // them and abandons (never joins, leaks the slot of) one still inside a handler: the count of those.
    size_t stop(std::chrono::milliseconds grace);
    size_t abandoned() const { return abandoned_; }

private:
    bool startWorker();  // false (logged) when no thread could be created
    void workerLoop(WorkerSlot &slot);
    void watchdogLoop();
    // True: a slot is busy or was since the last look. `slow`: a slot is still in the call it was in at the last look.
    bool checkDeadlines(std::chrono::steady_clock::time_point now, bool &slow);
    size_t reapWrittenOff();                                          // the workers not written off

    static constexpr std::chrono::milliseconds kWatchdogIdleSleep{500};
    static constexpr std::chrono::milliseconds kSpawnRetry{100};  // after a thread could not be created
    static constexpr std::chrono::seconds kSpawnWarningInterval{10};

    const unsigned threads_;
    Duties &duties_;
    const StuckRoutes &stuck_;
    std::vector<std::unique_ptr<WorkerSlot>> slots_;  // changed only by start() and the watchdog
    std::chrono::steady_clock::time_point nextSpawnRetry_{}, nextSpawnWarning_{};  // watchdog's
    size_t spawnFailures_ = 0;                                                     // watchdog's
    std::thread watchdog_;
    std::mutex watchdogMutex_;
    std::condition_variable watchdogCv_;
    bool stopping_ = false;                  // under watchdogMutex_
    std::atomic<bool> watchdogIdle_{false};  // the watchdog sleeps long: no slot was busy when it last looked
    std::mutex exitMutex_;
    std::condition_variable exitCv_;  // a worker has exited
    size_t abandoned_ = 0;
};

}  // namespace wsgw
