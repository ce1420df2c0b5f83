#include "accept_shortage.h"

#include "log.h"

#include <cerrno>
#include <cstring>

namespace wsgw {

AcceptShortage::AcceptShortage(std::string listener, std::atomic<uint64_t> *failures)
    : listener_(std::move(listener)), failures_(failures) {}

bool AcceptShortage::isShortage(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

bool AcceptShortage::failed(int err, Clock::time_point now) {
    if (!isShortage(err)) return false;
    if (failures_) failures_->fetch_add(1, std::memory_order_relaxed);
    ++unreported_;
    if (now >= nextWarning_) {
        log::warn("accept failed: out of file descriptors or memory; pausing accepts, live connections are served",
                  {log::Field("listener", listener_), log::Field("error", std::strerror(err)), log::Field("failures", unreported_),
                   log::Field("retryMs", static_cast<uint64_t>(kRetry.count()))});
        nextWarning_ = now + kWarnEvery;
        unreported_ = 0;
    }
    return true;
}

}  // namespace wsgw
