// Owns: idle, lifetime, expiry and close deadlines of open connections (session_timers.h).
#include "session_timers.h"

#include "log.h"
#include "network_thread_state.h"
#include "session_closer.h"
#include "session_writer.h"

#include <algorithm>

namespace wsgw {

void SessionTimers::start(Session *s) {
    double now = t_.loopSeconds();
    s->lastActivity = now;
    if (!t_.table) return;
    const Limits &limits = t_.table->config.limits;
    // Opened here: lived by the loop's clock. A connection that began before (a resumed one keeps its
    // connectedAt) has only the wall clock to go by.
    bool openedHere = s->openedAtEpochMs != 0 && s->live->info.connectedAtMs == s->openedAtEpochMs;
    double lived = openedHere ? now - s->openedAt : static_cast<double>(nowEpochMs() - s->live->info.connectedAtMs) / 1000.0;
    s->lifetimeEndsAt = now + std::max(0.0, limits.maxConnectionSeconds - lived);
    if (int64_t exp = s->live->info.admission ? s->live->info.admission->expiresAt : 0)
        s->expiresAt = now + std::max(0.0, static_cast<double>(exp * 1000 - nowEpochMs()) / 1000.0);
    ev_timer_init(&s->deadlineTimer, onDeadline, nextDeadline(s, limits.idleTimeoutSeconds) - now, 0.);
    s->deadlineTimer.data = s;
    ev_timer_start(t_.loop, &s->deadlineTimer);
}

void SessionTimers::stop(Session *s) { ev_timer_stop(t_.loop, &s->deadlineTimer); }

void SessionTimers::armCloseDeadline(Session *s) {
    if (s->state != Session::State::Open) return;  // established() arms it
    ev_timer_stop(t_.loop, &s->deadlineTimer);
    ev_timer_set(&s->deadlineTimer, kCloseDeadlineSeconds, 0.);
    ev_timer_start(t_.loop, &s->deadlineTimer);
}

// The earliest of the idle deadline, the end of the lifetime and the credential's expiry (loop time).
double SessionTimers::nextDeadline(const Session *s, double idleLimit) {
    double at = std::min(s->lastActivity + idleLimit, s->lifetimeEndsAt);
    return s->expiresAt > 0 ? std::min(at, s->expiresAt) : at;
}

// The idle deadline moves with every message; the timer is set again for what is left when it fires
// rather than restarted per message, so a message costs one store.
void SessionTimers::onDeadline(struct ev_loop *l, ev_timer *w, int) {
    auto *s = static_cast<Session *>(w->data);
    NetworkThreadState &t = *s->thread;
    if (s->closeRequested) {
        t.writer->dropAtDeadline(s);
        return;
    }
    double now = t.loopSeconds() + 0.001;
    double idleLimit = t.table ? t.table->config.limits.idleTimeoutSeconds : 600;
    if (s->expiresAt > 0 && now >= s->expiresAt) {
        log::info("credential expired", {log::Field("connectionId", s->id)});
        t.closer->requestClose(s, 1008, "Token expired");
    } else if (now >= s->lifetimeEndsAt) {
        log::info("connection lifetime reached", {log::Field("connectionId", s->id)});
        t.closer->requestClose(s, 1001, "Going away");
    } else if (now >= s->lastActivity + idleLimit) {
        log::info("idle timeout", {log::Field("connectionId", s->id)});
        t.closer->requestClose(s, 1001, "Going away");
    } else {
        ev_timer_set(w, nextDeadline(s, idleLimit) - (now - 0.001), 0.);
        ev_timer_start(l, w);
    }
}

}  // namespace wsgw
