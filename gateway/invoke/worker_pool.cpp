#include "worker_pool.h"

#include "log.h"

#include <pthread.h>
#include <sched.h>

namespace wsgw {

WorkerPool::WorkerPool(unsigned threads, Duties &duties, const StuckRoutes &stuck)
    : threads_(threads), duties_(duties), stuck_(stuck) {}

void WorkerPool::start() {
    for (unsigned i = 0; i < threads_; ++i) startWorker();  // a failure is retried by the watchdog
    watchdog_ = std::thread([this] { watchdogLoop(); });
}

size_t WorkerPool::stop(std::chrono::milliseconds grace) {
    {
        std::lock_guard lock(watchdogMutex_);
        stopping_ = true;
    }
    watchdogCv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();  // first: it is the one that adds workers
    // Workers finish the invocation in hand and leave; one stuck in a handler is never joined.
    {
        std::unique_lock lock(exitMutex_);
        exitCv_.wait_for(lock, grace, [this] {
            for (auto &slot : slots_)
                if (!slot->exited.load(std::memory_order_acquire)) return false;
            return true;
        });
    }
    size_t abandoned = 0;
    for (auto &slot : slots_) {
        if (slot->exited.load(std::memory_order_acquire)) {
            slot->thread.join();
            continue;
        }
        // Still inside a handler: it keeps its slot (leaked on purpose, it may still touch it) and runs on
        // until the process leaves.
        slot->thread.detach();
        (void)slot.release();
        ++abandoned;
    }
    slots_.clear();
    abandoned_ = abandoned;
    if (abandoned)
        log::warn("stop: handler threads still running; they are abandoned", {log::Field("threads", static_cast<uint64_t>(abandoned))});
    return abandoned;
}

// Called by start() and then only by the watchdog, the two owners of slots_.
bool WorkerPool::startWorker() {
    auto slot = std::make_unique<WorkerSlot>();
    WorkerSlot *s = slot.get();
    try {
        s->thread = std::thread([this, s] { workerLoop(*s); });
    } catch (const std::system_error &e) {
        // EAGAIN from a pids cgroup or RLIMIT_NPROC: the process runs on with the workers it has.
        ++spawnFailures_;
        auto now = std::chrono::steady_clock::now();
        nextSpawnRetry_ = now + kSpawnRetry;
        if (now >= nextSpawnWarning_) {
            nextSpawnWarning_ = now + kSpawnWarningInterval;
            log::error("cannot start a handler worker thread; retrying every 100 ms",
                       {log::Field("error", e.what()), log::Field("failures", static_cast<uint64_t>(spawnFailures_)),
                        log::Field("stuckThreads", static_cast<uint64_t>(stuck_.total()))});
        }
        return false;
    }
    slots_.push_back(std::move(slot));
    return true;
}

void WorkerPool::workerLoop(WorkerSlot &slot) {
    // SCHED_BATCH: a worker woken by the network thread does not preempt it. On a shared core the network
    // thread then reads and queues everything ready before the workers run, instead of being switched
    // out once per message; on idle cores nothing changes.
    sched_param param{};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    duties_.work(slot);
    slot.exited.store(true, std::memory_order_release);
    std::lock_guard lock(exitMutex_);  // stop() waits for `exited` on exitCv_
    exitCv_.notify_all();
}

void WorkerPool::wakeIdleWatchdog() {
    // watchdogIdle_ is set before the watchdog looks at the slots, under watchdogMutex_ which it holds until
    // it waits: a slot made busy before it looked is seen, and one made busy after sees the flag, and its
    // notify (under the mutex) cannot come before the wait.
    if (!watchdogIdle_.load()) return;
    std::lock_guard lock(watchdogMutex_);
    watchdogCv_.notify_one();
}

void WorkerPool::watchdogLoop() {
    std::unique_lock lock(watchdogMutex_);
    bool idle = false;
    for (;;) {
        watchdogCv_.wait_for(lock, idle ? kWatchdogIdleSleep : std::chrono::milliseconds(5));
        watchdogIdle_.store(true);
        if (stopping_) return;
        auto now = std::chrono::steady_clock::now();
        bool slow = false;
        idle = !checkDeadlines(now, slow);
        if (slow) duties_.slowCallRunning();
        size_t live = reapWrittenOff();
        // Keep the pool at its size; a thread that cannot be created now is retried shortly.
        while (live < threads_ && now >= nextSpawnRetry_ && startWorker()) ++live;
        if (live < threads_ || slots_.size() != live) idle = false;  // a worker to replace or to join soon
        if (live == 0) duties_.noWorkerLeft();
        if (!idle) watchdogIdle_.store(false);
    }
}

bool WorkerPool::checkDeadlines(std::chrono::steady_clock::time_point now, bool &slow) {
    bool busy = false;
    for (auto &slotPtr : slots_) {
        WorkerSlot &slot = *slotPtr;
        std::lock_guard slock(slot.mutex);
        // A slot that ran calls since the last look counts as busy: under a stream of short calls the slots
        // are rarely busy at the moment of a look, and an idle watchdog would be woken by nearly every call
        // (wakeIdleWatchdog) only to find nothing busy and sleep again.
        if (slot.busy || slot.started != slot.startedSeen) busy = true;
        if (slot.busy && slot.started == slot.startedSeen && !slot.timedOut) slow = true;
        slot.startedSeen = slot.started;
        if (!slot.busy || slot.timedOut || now < slot.deadline) continue;
        slot.timedOut = true;
        duties_.deadlinePassed(slot);
    }
    return busy;
}

// Written-off workers whose handler has finished are joined and forgotten.
size_t WorkerPool::reapWrittenOff() {
    size_t live = 0;
    for (auto it = slots_.begin(); it != slots_.end();) {
        if ((*it)->exited.load(std::memory_order_acquire)) {
            (*it)->thread.join();
            it = slots_.erase(it);
            continue;
        }
        std::lock_guard slock((*it)->mutex);
        if (!(*it)->retired) ++live;
        ++it;
    }
    return live;
}

}  // namespace wsgw
