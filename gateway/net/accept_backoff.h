// What a listener on a libev loop does when accept() fails for lack of descriptors (EMFILE/ENFILE) or memory:
// the socket stays readable, so watching it on would spin a core. AcceptBackoff stops the accept watcher for
// AcceptShortage::kRetry (100 ms) and starts it again from a timer; AcceptShortage (core) decides what is a
// shortage, logs one warning per 10 s with the count of failures since the last one, and counts every
// failure in wsgw_accept_errors_total. Used by the public and the management listener.
#pragma once

#include "accept_shortage.h"

#include <atomic>
#include <cstdint>
#include <string>

#include <ev.h>

namespace wsgw {

class AcceptBackoff {
public:
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

private:
    static void onRetry(struct ev_loop *loop, ev_timer *w, int);

    AcceptShortage shortage_;
    struct ev_loop *loop_ = nullptr;
    ev_io *watcher_ = nullptr;
    ev_timer retry_{};
    bool paused_ = false;
};

}  // namespace wsgw
