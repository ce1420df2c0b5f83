#include "invocation_lanes.h"

#include <algorithm>

namespace wsgw {

void InvocationLanes::submit(const std::shared_ptr<InvocationLane> &lane, Invocation &&inv, bool wakeNow) {
    pending_.fetch_add(1, std::memory_order_relaxed);
    enqueue(lane, std::move(inv), wakeNow);
}

bool InvocationLanes::idle(const std::shared_ptr<InvocationLane> &lane) {
    if (!lane) return true;
    std::lock_guard lock(lane->mutex);
    return !lane->scheduled && lane->queue.empty();
}

void InvocationLanes::requeueReleased(std::vector<Invocation> invocations) {
    if (invocations.empty()) return;
    {
        std::lock_guard lock(readyMutex_);
        if (stopped_) return;
    }
    for (Invocation &inv : invocations) enqueue(newLane(), std::move(inv), true);
}

void InvocationLanes::enqueue(const std::shared_ptr<InvocationLane> &lane, Invocation &&inv, bool wakeNow) {
    bool schedule = false;
    {
        std::lock_guard lock(lane->mutex);
        lane->queue.push_back(std::move(inv));
        if (!lane->scheduled) {
            lane->scheduled = true;
            schedule = true;
        }
    }
    if (!schedule) return;
    {
        std::lock_guard lock(readyMutex_);
        ready_.push_back(lane);
        if (!wakeNow) {
            ++deferredWakes_;
            return;
        }
    }
    readyCv_.notify_one();
}

void InvocationLanes::wakeDeferred() {
    size_t lanes;
    {
        std::lock_guard lock(readyMutex_);
        lanes = deferredWakes_;
        deferredWakes_ = 0;
    }
    if (lanes == 0) return;
    // One worker per 8 ready lanes: a worker drains lane after lane without sleeping, so waking one per
    // lane would only add context switches; a few keep every core busy under load.
    size_t wake = std::min<size_t>(threads_, 1 + lanes / 8);
    if (wake >= threads_) {
        readyCv_.notify_all();
        return;
    }
    for (size_t i = 0; i < wake; ++i) readyCv_.notify_one();
}

void InvocationLanes::wakeOneIfReady() {
    bool queued;
    {
        std::lock_guard lock(readyMutex_);
        queued = !ready_.empty();
    }
    if (queued) readyCv_.notify_one();
}

void InvocationLanes::wakeForEveryReadyLane() {
    size_t lanes;
    {
        std::lock_guard lock(readyMutex_);
        lanes = ready_.size();
    }
    if (lanes == 0) return;
    if (lanes >= threads_) {
        readyCv_.notify_all();
        return;
    }
    for (size_t i = 0; i < lanes; ++i) readyCv_.notify_one();
}

std::shared_ptr<InvocationLane> InvocationLanes::waitForLane() {
    std::unique_lock lock(readyMutex_);
    readyCv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
    if (stopping_) return nullptr;  // what is still queued is dropped: the caller has drained
    std::shared_ptr<InvocationLane> lane = std::move(ready_.front());
    ready_.pop_front();
    return lane;
}

std::optional<Invocation> InvocationLanes::next(const std::shared_ptr<InvocationLane> &lane, int taken) {
    // Moved straight out of the queue: a default-constructed Invocation would read the clock
    // (Invocation::receivedAt) once per message for nothing.
    std::optional<Invocation> next;
    std::lock_guard lock(lane->mutex);
    if (lane->queue.empty()) {
        lane->scheduled = false;
        return next;
    }
    if (taken == kLaneBatch) {
        std::lock_guard rlock(readyMutex_);
        ready_.push_back(lane);  // still scheduled; let other lanes run first
        readyCv_.notify_one();
        return next;
    }
    // Built in place from take_front()'s result: the invocation is moved once, out of the queue.
    struct TakeFront {
        FifoQueue<Invocation> &queue;
        operator Invocation() { return queue.take_front(); }
    };
    next.emplace(TakeFront{lane->queue});
    return next;
}

void InvocationLanes::reschedule(const std::shared_ptr<InvocationLane> &lane) {
    std::lock_guard llock(lane->mutex);
    if (lane->queue.empty()) {
        lane->scheduled = false;
        return;
    }
    std::lock_guard rlock(readyMutex_);
    ready_.push_back(lane);
    readyCv_.notify_one();
}

std::vector<Invocation> InvocationLanes::takeAllButDisconnects() {
    std::deque<std::shared_ptr<InvocationLane>> lanes, keep;
    {
        std::lock_guard lock(readyMutex_);
        if (stopped_) return {};
        lanes.swap(ready_);
        deferredWakes_ = 0;
    }
    std::vector<Invocation> taken;
    for (auto &lane : lanes) {
        std::lock_guard lock(lane->mutex);
        FifoQueue<Invocation> disconnects;
        while (!lane->queue.empty()) {
            Invocation &front = lane->queue.front();
            if (front.type == WSGW_DISCONNECT) disconnects.push_back(std::move(front));
            else taken.push_back(std::move(front));
            lane->queue.pop_front();
        }
        while (!disconnects.empty()) {
            lane->queue.push_back(std::move(disconnects.front()));
            disconnects.pop_front();
        }
        lane->scheduled = !lane->queue.empty();  // still in ready_ (below) when it is
        if (lane->scheduled) keep.push_back(lane);
    }
    if (!keep.empty()) {
        std::lock_guard lock(readyMutex_);
        for (auto &lane : keep) ready_.push_back(std::move(lane));
    }
    return taken;
}

void InvocationLanes::finished() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(idleMutex_);
        idleCv_.notify_all();
    }
}

bool InvocationLanes::waitIdle(std::chrono::milliseconds timeout) {
    std::unique_lock lock(idleMutex_);
    return idleCv_.wait_for(lock, timeout, [this] { return pending_.load() == 0; });
}

bool InvocationLanes::stop() {
    {
        std::lock_guard lock(readyMutex_);
        if (stopped_) return false;
        stopped_ = true;
        stopping_ = true;
    }
    readyCv_.notify_all();
    return true;
}

}  // namespace wsgw
