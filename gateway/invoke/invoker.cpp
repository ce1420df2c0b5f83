#include "invoker.h"

#include "log.h"
#include "monotonic_clock.h"

#include <optional>

namespace wsgw {

Invoker::Invoker(unsigned threads, ConnectionControl &control, HostContext &host, unsigned maxStuckThreads)
    : maxStuckThreads_(maxStuckThreads),
      stuck_(maxStuckThreads),
      lanes_(threads == 0 ? 1 : threads),
      answers_(control, host),
      pool_(threads == 0 ? 1 : threads, *this, stuck_),
      caller_(pool_, lanes_, answers_) {
    pool_.start();
}

Invoker::~Invoker() { stop(); }

size_t Invoker::stop(std::chrono::milliseconds grace) {
    if (!lanes_.stop()) return pool_.abandoned();
    if (size_t waiting = awaitingStore_->close())
        log::warn("stop: $disconnects not run (the connection table could not confirm they were still this node's); "
                  "their rows stay for the node that reaps this one, or the next start",
                  {log::Field("disconnects", static_cast<uint64_t>(waiting))});
    size_t abandoned = pool_.stop(grace);
    // Never run: their rows stay, so the next start's clean-up runs them (a stuck thread returning from
    // now on finds the lanes stopped and drops what it would have released).
    if (size_t parked = stuck_.takeParked().size())
        log::warn("stop: $disconnects not run (their route's handler is stuck); their rows stay for the next start's clean-up",
                  {log::Field("disconnects", static_cast<uint64_t>(parked))});
    return abandoned;
}

void Invoker::work(WorkerSlot &slot) {
    while (std::shared_ptr<Lane> lane = lanes_.waitForLane()) {
        {
            std::lock_guard lock(slot.mutex);
            slot.lane = lane;
        }
        if (!drainLane(slot, lane)) return;
        std::lock_guard lock(slot.mutex);
        slot.lane.reset();
    }
}

bool Invoker::drainLane(WorkerSlot &slot, const std::shared_ptr<Lane> &lane) {
    for (int taken = 0;; ++taken) {
        if (lanes_.stopping()) return false;
        std::optional<Invocation> next = lanes_.next(lane, taken);
        if (!next) return true;  // the lane is empty, or back in the ready queue after its batch
        if (!runOne(slot, *next)) return false;
    }
}

// Every invocation ends exactly once: here when its worker finishes it, or in deadlinePassed when the
// watchdog writes its worker off (then the lane has moved on and the late return only frees the thread).
bool Invoker::runOne(WorkerSlot &slot, Invocation &inv) {
    bool finished = run(slot, inv);  // false: a $disconnect parked, still pending
    if (finished) {
        if (inv.pendingCounted) answers_.releasePending(inv);
        InvocationAnswers::removeRowIfOwed(inv);
    }
    // Read without the slot's mutex: the watchdog writes `retired` only while the slot is busy, and the
    // integration call marked it done under the mutex (IntegrationCaller::markDone), or never marked it busy.
    if (slot.retired) {  // the watchdog ended this invocation; the lane belongs to another worker now
        lanes_.requeueReleased(stuck_.returned({slot.handlerId, slot.routeKey}));
        return false;
    }
    if (finished) lanes_.finished();
    return true;
}

bool Invoker::run(WorkerSlot &slot, Invocation &inv) {
    const char *routeKey = routeKeyOf(inv);
    if (inv.type == WSGW_CONNECT && answers_.settledByAuthorizer(inv, routeKey)) return true;
    // Past the cap on written-off threads, an in-process handler with stuck invocations on this route is
    // not called: a message or $connect is answered now, a $disconnect waits until one returns.
    PluginInstance *handler = inv.route->handler;
    if (handler && !handler->isolated && !handler->lambda && stuck_.anyAtCap()) {
        if (inv.type == WSGW_DISCONNECT ? parkWhenStuck(inv, routeKey) : failFastWhenStuck(inv, routeKey))
            return inv.type != WSGW_DISCONNECT;
    }
    if (bool finished = true; inv.type == WSGW_DISCONNECT && !disconnectIsOurs(inv, finished)) return finished;
    IntegrationOutcome outcome;
    caller_.call(slot, inv, routeKey, outcome);
    answers_.answer(inv, routeKey, outcome);
    return true;
}

void Invoker::runInline(Invocation &&inv) {
    const char *routeKey = routeKeyOf(inv);
    // The stuck-thread cap holds as on a worker: the route's written-off worker invocations may be at it.
    if (!(stuck_.anyAtCap() && failFastWhenStuck(inv, routeKey))) {
        IntegrationOutcome outcome;
        caller_.callInline(inv, routeKey, outcome);
        if (outcome.integrationMs > static_cast<int64_t>(inv.route->timeoutMs)) inlineOverran(inv, routeKey, outcome.integrationMs);
        answers_.answer(inv, routeKey, outcome);
    }
    if (inv.pendingCounted) answers_.releasePending(inv);
}

// Nothing can stop an inline call at its deadline (the thread that would answer is the one running it), so
// the operator learns of it afterwards: a counter, and a warning at most every 10 s. Its answer is sent.
void Invoker::inlineOverran(const Invocation &inv, const char *routeKey, int64_t ranMs) {
    answers_.countedInlineOverrun();
    int64_t nowMs = monotonicMs();  // the spacing of warnings: a duration (monotonic_clock.h)
    int64_t warnAt = nextInlineWarningMs_.load(std::memory_order_relaxed);
    if (nowMs < warnAt || !nextInlineWarningMs_.compare_exchange_strong(warnAt, nowMs + 10000)) return;
    log::warn("an inline handler held its network thread past its route's timeoutMs: every connection of that "
              "thread waited for it; remove \"inline\" from the handler or make it return at once",
              {log::Field("handler", inv.route->handler->name), log::Field("routeKey", routeKey),
               log::Field("ranMs", ranMs), log::Field("timeoutMs", static_cast<uint64_t>(inv.route->timeoutMs))});
}

// A $disconnect that waited (queued behind a paused process, or adopted by a reaper that was paused in turn)
// may have been run by the node that reaped this one: the table says whose it is now (atomically in Redis)
// before the handler runs. Another node's: not run, and its row left to that node. Unknown: awaits the store.
bool Invoker::disconnectIsOurs(Invocation &inv, bool &finished) {
    if (!inv.removeRowAfter) return true;
    const std::string &id = inv.connection->info.connectionId;
    switch (inv.removeRowAfter->disconnectOwner(id)) {
        case ConnectionStore::DisconnectOwner::Ours: return true;
        case ConnectionStore::DisconnectOwner::Elsewhere:
            log::warn("$disconnect not run here: another node reaped this one (it did not heartbeat) and runs it",
                      {log::Field("connectionId", id)});
            inv.removeRowAfter = nullptr;
            finished = true;
            return false;
        case ConnectionStore::DisconnectOwner::Unknown: break;
    }
    awaitingStore_->await(std::move(inv));
    finished = false;
    return false;
}

// Under slot.mutex (the watchdog's).
void Invoker::deadlinePassed(WorkerSlot &slot) {
    answers_.timeout(slot);
    // An isolated invocation returns at its deadline by itself (its worker process is killed).
    if (slot.isolated) return;
    // A handler cannot be stopped in process: its worker is written off until it returns. The
    // invocation ends now (its message no longer holds its lane back), the connection's later
    // messages move to another worker, and a new worker keeps the pool's size.
    slot.retired = true;
    stuck_.writtenOff({slot.handlerId, slot.routeKey});
    if (slot.invocation && slot.invocation->pendingCounted) {
        answers_.releasePending(*slot.invocation);
        slot.invocation->pendingCounted = false;  // the worker sees this under slot.mutex
    }
    if (slot.invocation) InvocationAnswers::removeRowIfOwed(*slot.invocation);
    lanes_.finished();
    if (slot.lane) lanes_.reschedule(slot.lane);
}

// No worker is left (every one is stuck in a handler and no thread can be created): what is queued gets
// the integration error now instead of waiting for a worker that may never come. A $disconnect is not
// answered to anyone and is owed to its connection: it stays queued for the next worker (or, when none
// comes before stop(), its row stays for the next start's clean-up).
void Invoker::noWorkerLeft() {
    for (Invocation &inv : lanes_.takeAllButDisconnects()) {
        answers_.notCalledWithoutWorkers(inv);
        if (inv.pendingCounted) answers_.releasePending(inv);
        lanes_.finished();
    }
}

void Invoker::warnStuck(const char *what, const Invocation &inv, const char *routeKey, size_t stuckHere) {
    int64_t nowMs = monotonicMs();  // the spacing of warnings: a duration (monotonic_clock.h)
    int64_t warnAt = nextStuckWarningMs_.load(std::memory_order_relaxed);
    if (nowMs < warnAt || !nextStuckWarningMs_.compare_exchange_strong(warnAt, nowMs + 10000)) return;
    log::warn(what, {log::Field("handler", inv.route->handler->name), log::Field("routeKey", routeKey),
                     log::Field("stuckThreads", static_cast<uint64_t>(stuckThreads())),
                     log::Field("stuckInThisRoute", static_cast<uint64_t>(stuckHere)),
                     log::Field("maxStuckThreads", static_cast<uint64_t>(maxStuckThreads_))});
}

bool Invoker::failFastWhenStuck(const Invocation &inv, const char *routeKey) {
    size_t stuckHere = stuck_.stuckAtCap({inv.route->handler, routeKey});
    if (stuckHere == 0) return false;
    warnStuck("handler not called: its route's stuck invocations have reached the limit; answering with the timeout",
              inv, routeKey, stuckHere);
    answers_.notCalledWhileStuck(inv, routeKey);
    return true;
}

// A $disconnect is owed to every connection whose $connect ran: at the cap it is not answered but parked,
// still pending, until one of its route's stuck threads returns (StuckRoutes::returned hands it back).
bool Invoker::parkWhenStuck(Invocation &inv, const char *routeKey) {
    StuckRoutes::Route route{inv.route->handler, routeKey};
    size_t stuckHere = stuck_.stuckAtCap(route);
    if (stuckHere == 0) return false;
    warnStuck("$disconnect waits: its route's stuck invocations have reached the limit; it runs when one returns",
              inv, routeKey, stuckHere);
    return stuck_.parkIfAtCap(route, inv);  // rechecked with the release under one lock
}

}  // namespace wsgw
