// The per-connection lanes and the queue of lanes ready to run. A connection's invocations wait in its lane
// and run one at a time in arrival order ($disconnect last); a lane with work is in the ready queue once,
// taken by one worker at a time, which yields it back after a batch so that a busy connection does not hold
// a worker while others wait. Also the count of invocations submitted and not yet finished (waitIdle).
// Which worker runs a lane, and what happens at a deadline, is the Invoker's (invoker.h).
#pragma once

#include "fifo_queue.h"
#include "invocation.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace wsgw {

// One connection's invocations, in arrival order.
struct InvocationLane {
    std::mutex mutex;
    FifoQueue<Invocation> queue;
    bool scheduled = false;  // in the ready queue or being drained by a worker
};

class InvocationLanes {
public:
    static constexpr int kLaneBatch = 32;  // invocations of one lane before yielding the worker to other lanes

    explicit InvocationLanes(unsigned threads) : threads_(threads) {}

    std::shared_ptr<InvocationLane> newLane() const { return std::make_shared<InvocationLane>(); }
    // Nothing of the lane's is queued or being run by a worker (a lane not yet made counts as idle). Only its
    // connection's network thread adds to a lane, so for that thread this stays true until it submits again.
    static bool idle(const std::shared_ptr<InvocationLane> &lane);
    // Queues `inv` on its lane and counts it pending until finished() is called for it.
    void submit(const std::shared_ptr<InvocationLane> &lane, Invocation &&inv, bool wakeNow);
    // $disconnects released by a returning stuck thread: already pending, each queued on a lane of its own
    // (it is its connection's last event). After stop() they are dropped, rows kept.
    void requeueReleased(std::vector<Invocation> invocations);
    void wakeDeferred();
    void wakeOneIfReady();  // a lane is queued: wake a worker for it (the caller is about to block)
    // Wakes a worker for every ready lane (all of them when there are as many lanes as threads): the
    // watchdog saw a call outlast its look, so the one-per-8-lanes wake of wakeDeferred may have left
    // lanes waiting behind a slow handler while other workers sleep.
    void wakeForEveryReadyLane();

    // For a worker: the next ready lane, waiting for one; null once stopping.
    std::shared_ptr<InvocationLane> waitForLane();
    // The lane's next invocation, `taken` of them having run in this batch. None when the lane is empty
    // (it is no longer scheduled) or its batch is done (it went back to the ready queue).
    std::optional<Invocation> next(const std::shared_ptr<InvocationLane> &lane, int taken);
    // The lane's worker was written off: the lane goes back to the ready queue if it has more.
    void reschedule(const std::shared_ptr<InvocationLane> &lane);
    // No worker is left: every queued message and $connect, taken out to be answered now. $disconnects
    // stay queued for the next worker (they are owed to their connection). None once stopped.
    std::vector<Invocation> takeAllButDisconnects();

    void finished();  // one submitted invocation has ended
    bool waitIdle(std::chrono::milliseconds timeout);
    size_t pending() const { return pending_.load(std::memory_order_relaxed); }

    // Wakes every waiting worker to leave; what is still queued stays unrun. False when already stopped.
    bool stop();
    bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

private:
    void enqueue(const std::shared_ptr<InvocationLane> &lane, Invocation &&inv, bool wakeNow);

    const unsigned threads_;
    std::mutex readyMutex_;
    std::condition_variable readyCv_;
    std::deque<std::shared_ptr<InvocationLane>> ready_;
    size_t deferredWakes_ = 0;  // lanes made ready without a wake (under readyMutex_)
    bool stopped_ = false;      // under readyMutex_
    std::atomic<bool> stopping_{false};
    std::atomic<size_t> pending_{0};
    std::mutex idleMutex_;
    std::condition_variable idleCv_;
};

}  // namespace wsgw
