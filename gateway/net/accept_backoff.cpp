#include "accept_backoff.h"

#include <chrono>

namespace wsgw {

namespace {
constexpr double kAcceptRetrySeconds = std::chrono::duration<double>(AcceptShortage::kRetry).count();
}

AcceptBackoff::AcceptBackoff(std::string listener, std::atomic<uint64_t> &failures) : shortage_(std::move(listener), &failures) {}

void AcceptBackoff::attach(struct ev_loop *loop, ev_io *acceptWatcher) {
    loop_ = loop;
    watcher_ = acceptWatcher;
    ev_timer_init(&retry_, onRetry, kAcceptRetrySeconds, 0.);
    retry_.data = this;
}

bool AcceptBackoff::failed(int err) {
    if (!loop_ || !shortage_.failed(err)) return false;
    if (!paused_) {
        paused_ = true;
        ev_io_stop(loop_, watcher_);
        ev_timer_set(&retry_, kAcceptRetrySeconds, 0.);
        ev_timer_start(loop_, &retry_);
    }
    return true;
}

void AcceptBackoff::onRetry(struct ev_loop *loop, ev_timer *w, int) {
    auto *self = static_cast<AcceptBackoff *>(w->data);
    self->paused_ = false;
    ev_io_start(loop, self->watcher_);  // still no descriptor: the next accept pauses again
}

void AcceptBackoff::stop() {
    if (loop_) ev_timer_stop(loop_, &retry_);
    paused_ = false;
}

}  // namespace wsgw
