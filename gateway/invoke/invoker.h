// Runs handler invocations off the network thread: a worker pool fed by per-connection lanes, so one
// connection's events run one at a time in arrival order ($disconnect last) while different connections
// run in parallel. A watchdog enforces each route's timeoutMs: the client gets AWS's timeout message at the
// deadline and the late result is dropped; the stuck worker is written off and replaced, and the
// connection's later messages go on without waiting for it (an isolated worker process is killed instead).
// Exceptions and non-zero returns become integration errors.
//
// Written-off threads are bounded: once `maxStuckThreads` of them are still inside their handlers, a new
// invocation of a handler that has any of them is answered at once with the timeout (it would only get
// stuck too) instead of being called. So the process holds at most maxStuckThreads written-off threads,
// plus one per worker for invocations already running when the bound was reached. A replacement thread
// that cannot be created (EAGAIN: a pids cgroup, RLIMIT_NPROC) is logged and retried, never fatal; while
// no worker is left, queued invocations are answered with the integration error rather than left waiting.
#pragma once

#include "connection_store.h"
#include "host_api.h"
#include "route_table.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace wsgw {

struct Invocation {
    std::shared_ptr<const RouteTable> table;  // keeps the route and its plugin alive while this runs
    const CompiledRoute *route = nullptr;
    std::shared_ptr<LiveConnection> connection;
    wsgw_event_type type = WSGW_MESSAGE;
    std::string body;
    bool binary = false;
    std::string requestId, messageId;
    int64_t requestTimeMs = 0;
    int disconnectCode = 0;
    std::string disconnectReason;
    // A message counted against its connection's pending bounds (SPEC section 10) until its handler returns.
    size_t pendingBytes = 0;
    bool pendingCounted = false;
    // $disconnect: the connection's row is deleted once its handler has run, not before, so that a kill -9
    // in between leaves the row for start-up recovery to run $disconnect from (issue 17).
    ConnectionStore *removeRowAfter = nullptr;
    std::chrono::steady_clock::time_point receivedAt = std::chrono::steady_clock::now();  // for end-to-end latency
    // An Azure Web PubSub client's event (SPEC section 12): answered with its ack (and the route's response
    // as a message from the server) instead of AWS's frames.
    std::shared_ptr<WpsClientState> wpsClient;
    std::shared_ptr<const WpsClientMessage> wpsRequest;
};

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
    size_t stuckThreads() const { return stuckThreads_.load(std::memory_order_relaxed); }
    // Stops the workers and the watchdog without starting anything new; invocations still queued are
    // dropped (the caller has drained). Waits up to `grace` for running handlers; a thread still inside
    // a handler then is left running (never joined: a stuck handler would hang shutdown) and counted in
    // the result. When it is not 0, plugin code is still running: the caller must not unload plugins and
    // should leave the process with _Exit once its own state is saved.
    size_t stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

private:
    struct WorkerSlot;
    void workerLoop(WorkerSlot &slot);
    void runLanes(WorkerSlot &slot);
    void run(WorkerSlot &slot, Invocation &inv);
    void releasePending(const Invocation &inv);
    void wakeAnotherIfReady();  // a lane is queued: wake a worker for it (this one is about to block)
    static void removeRowIfOwed(Invocation &inv);
    void watchdogLoop();
    void answerTimeout(WorkerSlot &slot);
    // Every invocation ends here exactly once: when its worker finishes it, or when the watchdog writes
    // its worker off (then the lane has moved on and the late return only frees the thread).
    void invocationDone();
    bool failFastWhenStuck(const Invocation &inv, const char *routeKey);  // true: answered, handler not called
    bool startWorker();                       // false (logged) when no thread could be created
    void answerWithoutWorkers();              // no worker left: integration errors for what is queued
    void countStuck(const void *handler, int delta);
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
    std::atomic<size_t> stuckThreads_{0};
    std::mutex stuckMutex_;
    std::unordered_map<const void *, size_t> stuckByHandler_;  // written-off threads per handler instance
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
