// Owns: the executable's recv/send/shutdown/close and the transport below them (socket_calls.h).
#include "socket_calls.h"

#include "client_frame_guard.h"
#include "descriptor_table.h"
#include "tls_socket.h"

#include <atomic>
#include <cerrno>
#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace wsgw {

namespace {

using RecvFunction = ssize_t (*)(int, void *, size_t, int);
using SendFunction = ssize_t (*)(int, const void *, size_t, int);
using ShutdownFunction = int (*)(int, int);
using CloseFunction = int (*)(int);

ssize_t recvBySyscall(int fd, void *buf, size_t len, int flags) { return syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr); }
ssize_t sendBySyscall(int fd, const void *buf, size_t len, int flags) { return syscall(SYS_sendto, fd, buf, len, flags, nullptr, 0); }
int shutdownBySyscall(int fd, int how) { return static_cast<int>(syscall(SYS_shutdown, fd, how)); }
int closeBySyscall(int fd) { return static_cast<int>(syscall(SYS_close, fd)); }

// The next definition after this executable's: never this one (that would recurse); without dlsym's
// answer, the system call itself. Every thread that races here stores the same value.
template <typename Function>
Function nextDefinition(std::atomic<Function> &cache, const char *name, Function ours, Function bySyscall) {
    Function next = cache.load(std::memory_order_relaxed);
    if (next) [[likely]]
        return next;
    void *found = dlsym(RTLD_NEXT, name);
    next = found && found != reinterpret_cast<void *>(ours) ? reinterpret_cast<Function>(found) : bySyscall;
    cache.store(next, std::memory_order_relaxed);
    return next;
}

std::atomic<RecvFunction> gNextRecv{nullptr};
std::atomic<SendFunction> gNextSend{nullptr};
std::atomic<ShutdownFunction> gNextShutdown{nullptr};
std::atomic<CloseFunction> gNextClose{nullptr};

RecvFunction nextRecv() { return nextDefinition<RecvFunction>(gNextRecv, "recv", &::recv, &recvBySyscall); }
SendFunction nextSend() { return nextDefinition<SendFunction>(gNextSend, "send", &::send, &sendBySyscall); }
ShutdownFunction nextShutdown() { return nextDefinition<ShutdownFunction>(gNextShutdown, "shutdown", &::shutdown, &shutdownBySyscall); }
CloseFunction nextClose() { return nextDefinition<CloseFunction>(gNextClose, "close", &::close, &closeBySyscall); }

// Resolved before main, when no other thread runs; the functions above cover a call that comes even earlier.
[[maybe_unused]] const bool gResolvedAtStart = nextRecv() && nextSend() && nextShutdown() && nextClose();

}  // namespace

long transportRecv(int fd, void *buf, size_t len, int flags) {
    if (TlsSocket *tls = descriptorSlot(fd).tls.load(std::memory_order_acquire)) return tls->read(buf, len, flags);
    return nextRecv()(fd, buf, len, flags);
}

long transportSendmsg(int fd, const msghdr *msg, int flags) {
    if (TlsSocket *tls = descriptorSlot(fd).tls.load(std::memory_order_acquire)) return tls->writeGathered(msg->msg_iov, msg->msg_iovlen);
    // One piece (a small message's header and payload gathered into one buffer: the usual echo) goes by
    // send(2): the kernel then skips copying in the msghdr and its iovec array (about 60 ns of a message's
    // 7-10 µs at 10,000 connections x 1 in flight, docs/performance.md).
    if (msg->msg_iovlen == 1 && !msg->msg_name && !msg->msg_controllen)
        return nextSend()(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len, flags);
    return ::sendmsg(fd, msg, flags);
}

}  // namespace wsgw

extern "C" ssize_t recv(int fd, void *buf, size_t len, int flags) {
    using namespace wsgw;
    DescriptorSlot &slot = descriptorSlot(fd);
    ClientFrameGuard *guard = slot.guard.load(std::memory_order_acquire);
    if (guard != nullptr && slot.guardOwner.load(std::memory_order_relaxed) == descriptorThreadTag()) [[unlikely]]
        return guard->screenedRecv(fd, buf, len, flags);
    if (TlsSocket *tls = slot.tls.load(std::memory_order_acquire)) [[unlikely]]
        return tls->read(buf, len, flags);
    return nextRecv()(fd, buf, len, flags);
}

extern "C" ssize_t send(int fd, const void *buf, size_t len, int flags) {
    using namespace wsgw;
    if (TlsSocket *tls = descriptorSlot(fd).tls.load(std::memory_order_acquire)) [[unlikely]]
        return tls->write(buf, len);
    return nextSend()(fd, buf, len, flags);
}

extern "C" int shutdown(int fd, int how) {
    using namespace wsgw;
    if (how != SHUT_RD)
        if (TlsSocket *tls = descriptorSlot(fd).tls.load(std::memory_order_acquire)) [[unlikely]]
            tls->sendCloseNotify();
    return nextShutdown()(fd, how);
}

extern "C" int close(int fd) {
    using namespace wsgw;
    DescriptorSlot &slot = descriptorSlot(fd);
    if (slot.tls.load(std::memory_order_relaxed) != nullptr) [[unlikely]]
        if (TlsSocket *tls = slot.tls.exchange(nullptr, std::memory_order_acq_rel)) TlsSocket::release(tls);
    return nextClose()(fd);
}
