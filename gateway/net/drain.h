// Owns: the end of a network thread's service: SIGTERM and SIGINT (which start the drain) and SIGHUP (which
// asks for a reload), watched on the primary thread only; the drain itself (stop accepting, close every
// connection with 1001 and let its $disconnect run) and its timer, which ends at the drain's one deadline
// (settings.drainDeadline, shared by every thread: drain_deadline.h).
#pragma once

#include <ev.h>

#include <functional>

namespace wsgw {

struct NetworkThreadState;

class Drain {
public:
    explicit Drain(NetworkThreadState &thread) : t_(thread) {}

    void watchSignals();  // on the primary thread's loop (a signal is watched by one loop only)
    void stop();          // the signal watchers and the drain's deadline, once the loop has ended
    void beginDrain();

    // Called on the network thread at SIGHUP; it must only hand the work on.
    std::function<void()> onReloadRequest;
    // The primary thread calls this when a signal starts the drain (it tells the other threads).
    std::function<void()> drainHook;

private:
    static void onSignal(struct ev_loop *, ev_signal *w, int);
    static void onHangup(struct ev_loop *, ev_signal *w, int);
    static void onDrainTimeout(struct ev_loop *l, ev_timer *w, int);

    NetworkThreadState &t_;
    ev_signal sigterm_{}, sigint_{}, sighup_{};
    ev_timer drainTimer_{};
};

}  // namespace wsgw
