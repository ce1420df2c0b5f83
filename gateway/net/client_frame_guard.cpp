// Owns: screening what a client sent for frames that must fail the connection (client_frame_guard.h).
#include "client_frame_guard.h"

#include "descriptor_table.h"
#include "log.h"
#include "message_receiver.h"
#include "network_thread_state.h"
#include "session.h"
#include "session_writer.h"
#include "socket_calls.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <time.h>

namespace wsgw {

namespace {

// A whole unfragmented text or binary frame at p (n bytes from there), already unmasked (key zeroed): its
// header's length and its payload's, or false for anything else (a control frame, a fragment, RSV bits, a
// frame that goes on past n).
bool wholeMessageFrame(const uint8_t *p, size_t n, size_t &headerBytes, uint64_t &payloadBytes, bool &binary) {
    if (n < 6) return false;
    uint8_t opcode = p[0] & 0x0f;
    if ((p[0] & 0xf0) != 0x80 || (opcode != 0x1 && opcode != 0x2)) return false;  // FIN, no RSV bits
    uint64_t len = p[1] & 0x7f;
    size_t at = 2;
    if (len == 126 || len == 127) {
        size_t extended = len == 126 ? 2 : 8;
        if (n < at + extended + 4) return false;
        len = 0;
        for (size_t i = 0; i < extended; ++i) len = len << 8 | p[at + i];
        at += extended;
    }
    if ((p[at] | p[at + 1] | p[at + 2] | p[at + 3]) != 0) return false;  // still masked: libwebsockets unmasks it
    at += 4;
    if (len > n - at) return false;
    headerBytes = at;
    payloadBytes = len;
    binary = opcode == 0x2;
    return true;
}

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
    if (session_) prefetchForMessage(session_);
    long n = transportRecv(fd, buf, len, flags);
    if (n <= 0 || (flags & MSG_PEEK)) return n;  // a peek is looked at when it is read (libwebsockets never peeks)
    bool betweenFrames = scanner_.atFrameBoundary();
    size_t at = scanner_.scanUnmasking(static_cast<uint8_t *>(buf), static_cast<size_t>(n));
    if (at == ClientFrameScanner::kAllMasked) {
        if (betweenFrames && scanner_.atFrameBoundary() && session_) return takeWholeMessages(static_cast<uint8_t *>(buf), static_cast<size_t>(n));
        return n;
    }
    onBadClientFrame(session_);
    if (at > 0) return static_cast<long>(at);  // the frames before it are delivered
    errno = EAGAIN;
    return -1;
}

long ClientFrameGuard::takeWholeMessages(uint8_t *buf, size_t n) {
    MessageReceiver *receiver = session_->thread ? session_->thread->receiver : nullptr;
    if (!receiver) return static_cast<long>(n);
    size_t header;
    uint64_t payload;
    bool binary;
    // All or nothing: every frame of the read must qualify, so libwebsockets gets either the whole read or
    // whole frames from a frame boundary on.
    for (size_t pos = 0; pos < n; pos += header + payload)
        if (!wholeMessageFrame(buf + pos, n - pos, header, payload, binary) || !receiver->takesWhole(session_, payload))
            return static_cast<long>(n);
    size_t pos = 0;
    while (pos < n) {
        wholeMessageFrame(buf + pos, n - pos, header, payload, binary);
        if (receiver->takeWhole(session_, reinterpret_cast<const char *>(buf + pos + header), payload, binary)) {
            // Closed at once (1007): a failed read closes as a -1 from the receive callback would, reading
            // left on for the client's close; the frames after it are not read.
            errno = ECONNABORTED;
            return -1;
        }
        pos += header + payload;
        if (pos < n && !receiver->takesWhole(session_, 0)) break;  // paused or closing
    }
    if (pos < n && !session_->closeRequested && !session_->closing && session_->state == Session::State::Open) {
        // Paused: the rest waits in libwebsockets, which holds what it reads while reading is off.
        std::memmove(buf, buf + pos, n - pos);
        return static_cast<long>(n - pos);
    }
    if (pos == n && session_->thread->writer) session_->thread->writer->flushListedNow(session_);
    errno = EAGAIN;  // all taken (or the connection is closing and the rest is of no use)
    return -1;
}

}  // namespace wsgw
