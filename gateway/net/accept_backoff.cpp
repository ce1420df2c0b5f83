#include "accept_backoff.h"

#include "log.h"

#include <cerrno>
#include <cstring>

namespace wsgw {

AcceptBackoff::AcceptBackoff(std::string listener, std::atomic<uint64_t> &failures)
    : listener_(std::move(listener)), failures_(failures) {}

void AcceptBackoff::attach(struct ev_loop *loop, ev_io *acceptWatcher) {
    loop_ = loop;
    watcher_ = acceptWatcher;
    ev_timer_init(&retry_, onRetry, kRetrySeconds, 0.);
    retry_.data = this;
}

bool AcceptBackoff::isShortage(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

bool AcceptBackoff::failed(int err) {
    if (!isShortage(err) || !loop_) return false;
    failures_.fetch_add(1, std::memory_order_relaxed);
    ++unreported_;
    double now = ev_now(loop_);
    if (now - lastWarnAt_ >= kWarnEverySeconds) {
        log::warn("accept failed: out of file descriptors or memory; pausing accepts, live connections are served",
                  {log::Field("listener", listener_), log::Field("error", std::strerror(err)), log::Field("failures", unreported_),
                   log::Field("retryMs", static_cast<uint64_t>(kRetrySeconds * 1000))});
        lastWarnAt_ = now;
        unreported_ = 0;
    }
    if (!paused_) {
        paused_ = true;
        ev_io_stop(loop_, watcher_);
        ev_timer_set(&retry_, kRetrySeconds, 0.);
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
