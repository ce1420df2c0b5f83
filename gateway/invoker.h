// Runs handler invocations off the network thread: a worker pool fed by per-connection lanes, so one
// connection's events run one at a time in arrival order ($disconnect last) while different connections
// run in parallel. A watchdog enforces each route's timeoutMs: the client gets AWS's timeout message at the
// deadline and the late result is dropped; the stuck worker is written off and replaced, and the
// connection's later messages go on without waiting for it (an isolated worker process is killed instead).
// Exceptions and non-zero returns become integration errors.
#pragma once

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
    std::chrono::steady_clock::time_point receivedAt = std::chrono::steady_clock::now();  // for end-to-end latency
};

// AWS's error frame text, spaced exactly as AWS spaces it.
std::string awsErrorFrame(std::string_view message, std::string_view connectionId, std::string_view requestId);

class Invoker {
public:
    struct Lane;

    Invoker(unsigned threads, ConnectionControl &control, HostContext &host);
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
    void stop();

private:
    struct WorkerSlot;
    void workerLoop(WorkerSlot &slot);
    void run(WorkerSlot &slot, Invocation &inv);
    void watchdogLoop();
    void answerTimeout(WorkerSlot &slot);
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
    bool stopping_ = false;
    std::atomic<size_t> pending_{0};
    std::mutex idleMutex_;
    std::condition_variable idleCv_;
    std::vector<std::unique_ptr<WorkerSlot>> slots_;  // changed only by the constructor and the watchdog
    std::thread watchdog_;
    std::mutex watchdogMutex_;
    std::condition_variable watchdogCv_;
};

}  // namespace wsgw
