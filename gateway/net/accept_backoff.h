// What a listener does when accept() fails for lack of descriptors (EMFILE/ENFILE) or memory: the socket
// stays readable, so watching it on would spin a core. AcceptBackoff stops the accept watcher for 100 ms and
// starts it again from a timer, logs one warning per 10 s with the count of failures since the last one,
// and counts every failure in wsgw_accept_errors_total. Used by the public and the management listener.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <ev.h>

namespace wsgw {

class AcceptBackoff {
public:
    static constexpr double kRetrySeconds = 0.1;
    static constexpr double kWarnEverySeconds = 10.0;

    // `listener` names the listener in the warning; `failures` is the counter to add to.
    AcceptBackoff(std::string listener, std::atomic<uint64_t> &failures);
    AcceptBackoff(const AcceptBackoff &) = delete;
    AcceptBackoff &operator=(const AcceptBackoff &) = delete;

    // The loop and the accept watcher to pause; before the first failure can happen.
    void attach(struct ev_loop *loop, ev_io *acceptWatcher);
    // After accept() returned -1 with `err`: true when it was a shortage and accepting is paused (the caller
    // stops its accept loop); false for anything else (EAGAIN, a connection reset before accept, ...).
    bool failed(int err);
    bool paused() const { return paused_; }
    void stop();  // the listener closes: no retry

    static bool isShortage(int err);

private:
    static void onRetry(struct ev_loop *loop, ev_timer *w, int);

    std::string listener_;
    std::atomic<uint64_t> &failures_;
    struct ev_loop *loop_ = nullptr;
    ev_io *watcher_ = nullptr;
    ev_timer retry_{};
    bool paused_ = false;
    double lastWarnAt_ = -1e18;
    uint64_t unreported_ = 0;
};

}  // namespace wsgw
