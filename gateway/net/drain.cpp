// Owns: signals and the drain of a network thread (drain.h).
#include "drain.h"
#include "drain_deadline.h"

#include "webpubsub_endpoint.h"

#include "log.h"
#include "network_thread_state.h"
#include "session_closer.h"
#include "upgrade_reader.h"

#include <chrono>
#include <csignal>
#include <vector>

namespace wsgw {

void Drain::watchSignals() {
    ev_signal_init(&sigterm_, onSignal, SIGTERM);
    sigterm_.data = this;
    ev_signal_start(t_.loop, &sigterm_);
    ev_signal_init(&sighup_, onHangup, SIGHUP);
    sighup_.data = this;
    ev_signal_start(t_.loop, &sighup_);
    ev_signal_init(&sigint_, onSignal, SIGINT);
    sigint_.data = this;
    ev_signal_start(t_.loop, &sigint_);
}

void Drain::stop() {
    ev_signal_stop(t_.loop, &sigterm_);
    ev_signal_stop(t_.loop, &sigint_);
    ev_signal_stop(t_.loop, &sighup_);
    ev_timer_stop(t_.loop, &drainTimer_);
    // The loop has ended and the rest of the stop (handlers finishing, at most --drain-seconds) follows. With
    // the watchers gone these signals would take their default action: a second SIGTERM or Ctrl-C would kill
    // the process mid-drain, leaving its $disconnects unrun and its rows behind. SIGKILL still ends it.
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGHUP, SIG_IGN);
}

void Drain::onSignal(struct ev_loop *, ev_signal *w, int) {
    auto *drain = static_cast<Drain *>(w->data);
    if (drain->drainHook && !drain->t_.draining) drain->drainHook();
    drain->beginDrain();
}

void Drain::onHangup(struct ev_loop *, ev_signal *w, int) {
    auto *drain = static_cast<Drain *>(w->data);
    log::info("SIGHUP: reloading");
    if (drain->onReloadRequest) drain->onReloadRequest();
}

void Drain::beginDrain() {
    if (t_.draining) return;
    t_.draining = true;
    // The deadline is the drain's, not this thread's: set by the first thread to begin, so a thread told
    // later (drainHook) ends with the others, and main's wait for the handlers gets only what is left.
    const DrainDeadline::Clock::time_point deadline = t_.settings.drainDeadline->begin(t_.settings.drainSeconds);
    log::info("draining", {log::Field("connections", static_cast<uint64_t>(t_.sessions.size()))});
    wpsEndRecoveryWindows(t_);  // reliable Web PubSub clients waiting to come back will not: their $disconnect runs
    t_.upgradeReader->stopAccepting();
    std::vector<Session *> all;
    for (auto &[id, s] : t_.sessions) all.push_back(s.get());
    for (Session *s : all) {
        if (s->state == Session::State::ReadingHead) t_.upgradeReader->dropUnaccepted(s, nullptr);
        else if (s->state == Session::State::Open) t_.closer->requestClose(s, 1001, "Going away");
        // Connecting sessions finish their $connect; an accepted one is closed right after upgrade.
    }
    if (t_.sessions.empty()) {
        ev_break(t_.loop, EVBREAK_ALL);
        return;
    }
    double left = std::chrono::duration<double>(deadline - DrainDeadline::Clock::now()).count();
    ev_timer_init(&drainTimer_, onDrainTimeout, left > 0 ? left : 0., 0.);
    drainTimer_.data = this;
    ev_timer_start(t_.loop, &drainTimer_);
}

void Drain::onDrainTimeout(struct ev_loop *l, ev_timer *w, int) {
    auto *drain = static_cast<Drain *>(w->data);
    log::warn("drain timeout: closing the remaining connections",
              {log::Field("connections", static_cast<uint64_t>(drain->t_.sessions.size()))});
    ev_break(l, EVBREAK_ALL);
}

}  // namespace wsgw
