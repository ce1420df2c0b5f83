// Runs handler invocations off the network thread: a worker pool fed by per-connection lanes, so one
// connection's events run one at a time in arrival order ($disconnect last) while different connections
// run in parallel. A watchdog enforces each route's timeoutMs: the client gets AWS's timeout message at the
// deadline and the late result is dropped; the stuck worker is written off and replaced, and the
// connection's later messages go on without waiting for it (an isolated worker process is killed instead).
// Exceptions and non-zero returns become integration errors.
//
// Written-off threads are bounded: once `maxStuckThreads` of them are still inside their handlers, a new
// message or $connect of a route that has any of them is answered at once with the timeout (it would only
// get stuck too) instead of being called; a $disconnect of such a route waits (StuckRoutes) until one of
// them returns, since every $connect that ran must get its $disconnect. So the process holds at most
// maxStuckThreads written-off threads, plus one per worker for invocations already running when the bound
// was reached. A replacement thread that cannot be created (EAGAIN: a pids cgroup, RLIMIT_NPROC) is logged
// and retried, never fatal; while no worker is left, queued messages and $connects are answered with the
// integration error rather than left waiting, and $disconnects stay queued for the next worker. A
// $disconnect that never ran by stop() keeps its row, so the next start's clean-up runs it.
#pragma once

#include "invocation.h"
#include "stuck_routes.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wsgw {

// AWS's error frame text, spaced exactly as AWS spaces it.
std::string awsErrorFrame(std::string_view message, std::string_view connectionId, std::string_view requestId);

class Invoker {
public:
    struct Lane;

    static constexpr unsigned kDefaultMaxStuckThreads = 16;

    Invoker(unsigned threads, ConnectionControl &control, HostContext &host,
            unsigned maxStuckThreads = kDefaultMaxStuckThreads);
    ~Invoker();
    Invoker(const Invoker &) = delete;
    Invoker &operator=(const Invoker &) = delete;

    std::shared_ptr<Lane> newLane();
    // wakeNow=false leaves the worker asleep until wakeDeferred(): the network thread submits everything
    // it read in one loop iteration and wakes the pool once, instead of one futex wake per message.
    void submit(const std::shared_ptr<Lane> &lane, Invocation &&inv, bool wakeNow = true);
    void wakeDeferred();
    // Waits until every submitted invocation has finished; false on timeout.
    bool waitIdle(std::chrono::milliseconds timeout);
    size_t pending() const { return pending_.load(std::memory_order_relaxed); }
    // Threads written off after a timeout whose handlers have not returned yet.
    size_t stuckThreads() const { return stuck_.total(); }
    // $disconnects waiting for their route's stuck threads to return (see StuckRoutes).
    size_t parkedDisconnects() const { return stuck_.parked(); }
    // Stops the workers and the watchdog without starting anything new; invocations still queued (or
    // parked) are dropped (the caller has drained): a dropped $disconnect keeps its row for the next start. Waits up to `grace` for running handlers; a thread still inside
    // a handler then is left running (never joined: a stuck handler would hang shutdown) and counted in
    // the result. When it is not 0, plugin code is still running: the caller must not unload plugins and
    // should leave the process with _Exit once its own state is saved.
    size_t stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

private:
    struct WorkerSlot;
    void workerLoop(WorkerSlot &slot);
    void runLanes(WorkerSlot &slot);
    bool run(WorkerSlot &slot, Invocation &inv);  // false: a $disconnect parked (moved from), not finished
    void releasePending(const Invocation &inv);
    void wakeAnotherIfReady();  // a lane is queued: wake a worker for it (this one is about to block)
    static void removeRowIfOwed(Invocation &inv);
    void watchdogLoop();
    void answerTimeout(WorkerSlot &slot);
    // Every invocation ends here exactly once: when its worker finishes it, or when the watchdog writes
    // its worker off (then the lane has moved on and the late return only frees the thread).
    void invocationDone();
    bool failFastWhenStuck(const Invocation &inv, const char *routeKey);  // true: answered, handler not called
    bool parkWhenStuck(Invocation &inv, const char *routeKey);            // true: a $disconnect parked
    void warnStuck(const char *what, const Invocation &inv, const char *routeKey, size_t stuckHere);
    void requeue(std::vector<Invocation> invocations);  // parked $disconnects released, still pending
    void enqueue(const std::shared_ptr<Lane> &lane, Invocation &&inv, bool wakeNow);
    bool startWorker();                       // false (logged) when no thread could be created
    void answerWithoutWorkers();              // no worker left: integration errors for what is queued
    bool authorizeConnect(Invocation &inv);
    static std::vector<std::pair<std::string, std::string>> backendHeaders(const Invocation &inv, const char *routeKey);
    void logAccess(const Invocation &inv, const char *routeKey, int status, int64_t integrationMs, std::string_view error);  // AWS's timeout frame, or 504 for a $connect

    ConnectionControl &control_;
    HostContext &host_;
    std::mutex readyMutex_;
    std::condition_variable readyCv_;
    std::deque<std::shared_ptr<Lane>> ready_;
    size_t deferredWakes_ = 0;  // lanes made ready without a wake (under readyMutex_)
    unsigned threads_ = 1;
    unsigned maxStuckThreads_ = kDefaultMaxStuckThreads;
    std::atomic<bool> stopping_{false};
    StuckRoutes stuck_;
    std::chrono::steady_clock::time_point nextSpawnRetry_{}, nextSpawnWarning_{};  // watchdog's
    size_t spawnFailures_ = 0;                                                     // watchdog's
    std::atomic<int64_t> nextStuckWarningMs_{0};
    bool stopped_ = false;  // under readyMutex_
    size_t abandoned_ = 0;
    std::atomic<size_t> pending_{0};
    std::mutex idleMutex_;
    std::condition_variable idleCv_;
    std::vector<std::unique_ptr<WorkerSlot>> slots_;  // changed only by the constructor and the watchdog
    std::thread watchdog_;
    std::mutex watchdogMutex_;
    std::condition_variable watchdogCv_;
    std::atomic<bool> watchdogIdle_{false};  // the watchdog sleeps long: no slot was busy when it last looked
    static constexpr std::chrono::milliseconds kWatchdogIdleSleep{500};
    void wakeIdleWatchdog();
};

}  // namespace wsgw
