// Owns: an open connection's one deadline timer. Until it closes, it fires at the earliest of the idle
// timeout, the end of its lifetime (AWS: 10 minutes, 2 hours; both close with 1001) and its credential's
// expiry (1008); once a close is requested, it is the close's deadline (5 s, after which the session writer
// drops the connection: docs/limits.md, "Every close has a deadline").
#pragma once

#include <ev.h>

namespace wsgw {

struct NetworkThreadState;
struct Session;

class SessionTimers {
public:
    static constexpr double kCloseDeadlineSeconds = 5.0;  // a close frame the socket has not taken by then: TCP is dropped

    explicit SessionTimers(NetworkThreadState &thread) : t_(thread) {}

    void start(Session *s);  // the connection is open
    void stop(Session *s);
    // Every close has a deadline: 5 s. The deadline timer (idle, lifetime, expiry until now) is set for it.
    void armCloseDeadline(Session *s);

private:
    static double nextDeadline(const Session *s, double idleLimit);
    static void onDeadline(struct ev_loop *l, ev_timer *w, int);

    NetworkThreadState &t_;
};

}  // namespace wsgw
