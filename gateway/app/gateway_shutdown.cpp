// Owns: serving and the stop that follows it, in order, within the drain's one deadline (gateway.h): the
// management API and reload watcher, the handlers' last invocations, leaving the cluster, the workers, the
// connection table's last commit, the plugins, then the access log and the listeners. ShutdownWatchdog is
// the last bound on all of it.
#include "gateway.h"

#include "background_log.h"
#include "log.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace wsgw {

namespace {

// The shutdown's last bound, after the drain's deadline (ShutdownWatchdog): more than the stages after the
// deadline take by their own bounds in the usual case (the table's give-up, 5 s; isolated workers' shutdown,
// 5 s), far less than "hung".
constexpr std::chrono::seconds kShutdownMargin{10};
// At the drain's deadline the workers still get this long to see the stop (idle ones leave at once).
constexpr std::chrono::milliseconds kWorkerStopFloor{100};

}  // namespace

void Gateway::serveUntilStopped() {
    // The last bound on the stop: what follows has its own bounds (docs/operations.md, "Shutdown"), this
    // catches a stage none of them foresaw.
    ShutdownWatchdog shutdownWatchdog(settings_.drainDeadline, kShutdownMargin);
    network_->run();
    // One deadline for the whole drain, set when it began: the loops waited for it, and the handlers get
    // what is left of it, not --drain-seconds again.
    settings_.drainDeadline->begin(opt_.drainSeconds);  // begun by the loops' drain; here only if they ended otherwise
    stopManagementApiAndReloads(shutdownWatchdog);
    const bool drained = waitForHandlers(shutdownWatchdog);
    leaveCluster(shutdownWatchdog, drained);
    const size_t stillInHandlers = stopWorkersAndCommitTable(shutdownWatchdog);
    // A thread still stuck in a handler runs plugin code: unloading the plugins under it would crash, so leave.
    if (stillInHandlers > 0) {
        accessLog_.reset();
        log::info("stopped");
        BackgroundLog::stop(std::chrono::seconds(2));
        std::fflush(nullptr);
        std::_Exit(0);
    }
    shutDownHandlersAndListeners(shutdownWatchdog);
    log::info("stopped");
}

std::chrono::milliseconds Gateway::drainLeft() const { return settings_.drainDeadline->remaining(opt_.drainSeconds); }

void Gateway::stopManagementApiAndReloads(ShutdownWatchdog &watchdog) {
    watchdog.stage("stopping the management API and the reload watcher");
    management_.reset();  // its sockets live on the network thread's loop, which the listener owns
    functionEndpoint_.reset();
    reloader_->stop();
}

// Every connection is closed and its $disconnect queued: let the handlers finish, then shut the plugins
// down (they may join threads that still push) before the listener they push to goes away. The last closes
// were submitted without a wake (the loop's prepare watcher wakes the workers, and the loops have ended):
// wake them here, or those $disconnects wait for the drain deadline and are dropped.
bool Gateway::waitForHandlers(ShutdownWatchdog &watchdog) {
    watchdog.stage("waiting for the handlers");
    invoker_->wakeDeferred();
    if (cluster_) cluster_->stopReaping();  // what it adopted is queued now, and counted by the wait below
    bool drained = invoker_->waitIdle(drainLeft());
    if (!drained)
        log::warn("drain: handlers still running at the deadline", {log::Field("pending", static_cast<uint64_t>(invoker_->pending()))});
    return drained;
}

void Gateway::leaveCluster(ShutdownWatchdog &watchdog, bool drained) {
    if (!cluster_) return;
    watchdog.stage("leaving the cluster");
    store_->flush();  // bounded (the Redis store gives up after 5 s)
    hostContext_.cluster = nullptr;
    // Leaves the cluster once our removals are in Redis, unless $disconnects were left undone: then another
    // node reaps this one and runs them.
    cluster_->stop(!drained);
    cluster_.reset();
}

// Returns how many workers are still inside a handler.
size_t Gateway::stopWorkersAndCommitTable(ShutdownWatchdog &watchdog) {
    // Workers between invocations leave at once; one still inside a handler at the deadline is not waited
    // for past it (a moment at least, for the workers to see the stop).
    watchdog.stage("stopping the workers");
    const size_t stillInHandlers = invoker_->stop(std::max(drainLeft(), kWorkerStopFloor));
    // Nothing but a handler still running can write to the table now: its last commit, bounded (a table
    // that stays unwritable is given up after a few seconds, its removals journalled for the next start),
    // before anything that runs plugin code and could hang.
    watchdog.stage("committing the connection table");
    store_->stopWrites();
    return stillInHandlers;
}

void Gateway::shutDownHandlersAndListeners(ShutdownWatchdog &watchdog) {
    watchdog.stage("shutting the handlers down");
    network_->setRouteTable(nullptr);
    reloader_.reset();  // the last table, and with it the plugins, go here
    watchdog.stage("closing the access log and the listeners");
    accessLog_.reset();  // flushes
    listener_ = nullptr;
    network_.reset();
    store_.reset();  // its writer stopped above
}

}  // namespace wsgw
