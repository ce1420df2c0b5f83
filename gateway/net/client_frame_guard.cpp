// Owns: screening what a client sent for frames that must fail the connection (client_frame_guard.h).
#include "client_frame_guard.h"

#include "descriptor_table.h"
#include "log.h"
#include "socket_calls.h"

#include <atomic>
#include <cerrno>
#include <sys/socket.h>
#include <time.h>

namespace wsgw {

namespace {

// Coarse is enough for a budget of frames per second, and costs no system call.
int64_t coarseMonotonicMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

ClientFrameLimits clientFrameLimitsOf(const Limits &limits) {
    ClientFrameLimits l;
    l.maxFrameBytes = limits.maxFrameBytes;
    l.maxMessageBytes = limits.maxMessageBytes;
    l.controlFrameBurst = ClientFrameLimits::kControlFrameBurst;
    l.controlFramesPerSecond = ClientFrameLimits::kControlFramesPerSecond;
    l.nowMs = coarseMonotonicMs;
    return l;
}

bool ClientFrameGuard::watch(int fd, Session *s) {
    unwatch();
    if (!descriptorFitsTable(fd)) {
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true))
            log::warn("descriptor beyond the table of screened descriptors: unmasked client frames go undetected on it",
                      {log::Field("fd", static_cast<int64_t>(fd))});
        return false;
    }
    fd_ = fd;
    session_ = s;
    DescriptorSlot &slot = descriptorSlot(fd);
    slot.guardOwner.store(descriptorThreadTag(), std::memory_order_relaxed);
    slot.guard.store(this, std::memory_order_release);
    return true;
}

void ClientFrameGuard::unwatch() {
    if (fd_ < 0) return;
    ClientFrameGuard *mine = this;
    // Only if still ours: another thread may have registered the descriptor again since it was closed.
    descriptorSlot(fd_).guard.compare_exchange_strong(mine, nullptr, std::memory_order_acq_rel);
    fd_ = -1;
}

size_t ClientFrameGuard::screenPreloaded(Session *s, char *bytes, size_t len) {
    // Unmasked only when the descriptor is watched: a frame that goes on past these bytes is read on
    // through screenedRecv, which unmasks the rest of it. Unwatched, libwebsockets unmasks it all.
    auto *data = reinterpret_cast<uint8_t *>(bytes);
    size_t at = fd_ >= 0 ? scanner_.scanUnmasking(data, len) : scanner_.scan(data, len);
    if (at == ClientFrameScanner::kAllMasked) return len;
    onBadClientFrame(s);
    return at;
}

long ClientFrameGuard::screenedRecv(int fd, void *buf, size_t len, int flags) {
    if (scanner_.failed()) {  // drain and discard; report the client's end
        long n = transportRecv(fd, buf, len, flags);
        if (n <= 0) return n;
        errno = EAGAIN;
        return -1;
    }
    long n = transportRecv(fd, buf, len, flags);
    if (n <= 0 || (flags & MSG_PEEK)) return n;  // a peek is looked at when it is read (libwebsockets never peeks)
    size_t at = scanner_.scanUnmasking(static_cast<uint8_t *>(buf), static_cast<size_t>(n));
    if (at == ClientFrameScanner::kAllMasked) return n;
    onBadClientFrame(session_);
    if (at > 0) return static_cast<long>(at);  // the frames before it are delivered
    errno = EAGAIN;
    return -1;
}

}  // namespace wsgw
