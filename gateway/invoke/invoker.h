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
//
// The Invoker owns the order of things: what a worker does with a lane (run each invocation, settle what
// it owes), what a passed deadline does (the write-off), the stuck-thread cap, and stop(). The parts are
// InvocationLanes (the lanes and the ready queue), WorkerPool (the threads and the watchdog),
// IntegrationCaller (calling one integration) and InvocationAnswers (what the client is sent).
#pragma once

#include "disconnects_awaiting_store.h"
#include "integration_call.h"
#include "invocation.h"
#include "invocation_answers.h"
#include "invocation_lanes.h"
#include "stuck_routes.h"
#include "worker_pool.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

namespace wsgw {

class Invoker : private WorkerPool::Duties {
public:
    using Lane = InvocationLane;

    static constexpr unsigned kDefaultMaxStuckThreads = 16;

    Invoker(unsigned threads, ConnectionControl &control, HostContext &host,
            unsigned maxStuckThreads = kDefaultMaxStuckThreads);
    ~Invoker();
    Invoker(const Invoker &) = delete;
    Invoker &operator=(const Invoker &) = delete;

    std::shared_ptr<Lane> newLane() { return lanes_.newLane(); }
    // wakeNow=false leaves the worker asleep until wakeDeferred(): the network thread submits everything
    // it read in one loop iteration and wakes the pool once, instead of one futex wake per message.
    void submit(const std::shared_ptr<Lane> &lane, Invocation &&inv, bool wakeNow = true) {
        lanes_.submit(lane, std::move(inv), wakeNow);
    }
    void wakeDeferred() { lanes_.wakeDeferred(); }
    // "inline" handlers (docs/routes-json.md): the network thread may call runInline for a message of a route
    // whose handler runs inline when laneIdle says its connection has nothing queued or running, so that the
    // message overtakes none. It runs the handler on the calling thread and answers as a worker would (route
    // response or error frame, metrics, access log, the pending-bounds release), without the timeout: a
    // handler cannot be stopped on the thread that would answer for it.
    static bool laneIdle(const std::shared_ptr<Lane> &lane) { return InvocationLanes::idle(lane); }
    void runInline(Invocation &&inv);
    // Waits until every submitted invocation has finished; false on timeout.
    bool waitIdle(std::chrono::milliseconds timeout) { return lanes_.waitIdle(timeout); }
    size_t pending() const { return lanes_.pending(); }
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
    // WorkerPool::Duties
    void work(WorkerSlot &slot) override;
    void deadlinePassed(WorkerSlot &slot) override;
    void noWorkerLeft() override;
    void slowCallRunning() override { lanes_.wakeForEveryReadyLane(); }

    bool drainLane(WorkerSlot &slot, const std::shared_ptr<Lane> &lane);  // false: this worker is to end
    bool runOne(WorkerSlot &slot, Invocation &inv);                       // false: this worker was written off
    bool run(WorkerSlot &slot, Invocation &inv);  // false: a $disconnect parked (moved from), not finished
    bool failFastWhenStuck(const Invocation &inv, const char *routeKey);  // true: answered, handler not called
    bool parkWhenStuck(Invocation &inv, const char *routeKey);            // true: a $disconnect parked
    bool disconnectIsOurs(Invocation &inv, bool &finished);  // false: not run here (finished, or awaiting the store)
    void warnStuck(const char *what, const Invocation &inv, const char *routeKey, size_t stuckHere);
    void inlineOverran(const Invocation &inv, const char *routeKey, int64_t ranMs);  // past timeoutMs

    const unsigned maxStuckThreads_;
    StuckRoutes stuck_;
    InvocationLanes lanes_;
    InvocationAnswers answers_;
    WorkerPool pool_;
    IntegrationCaller caller_;
    std::shared_ptr<DisconnectsAwaitingStore> awaitingStore_ = std::make_shared<DisconnectsAwaitingStore>(lanes_);
    std::atomic<int64_t> nextStuckWarningMs_{0};
    std::atomic<int64_t> nextInlineWarningMs_{0};  // inlineOverran's warnings, at most one per 10 s
};

}  // namespace wsgw
