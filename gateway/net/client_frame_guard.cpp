// Owns: this binary's recv(2) and the table of descriptors whose reads are screened for unmasked client
// frames (client_frame_guard.h).
#include "client_frame_guard.h"

#include "log.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <dlfcn.h>
#include <mutex>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace wsgw {

namespace {

using RecvFunction = ssize_t (*)(int, void *, size_t, int);

// One per descriptor. `owner` tags the thread that registered it: a descriptor closed by libwebsockets
// before its session unregistered (adoption failed: WSI_DESTROY comes after close) may already be another
// thread's new connection, whose reads must neither be screened nor touch the old session.
struct Slot {
    std::atomic<ClientFrameGuard *> guard{nullptr};
    std::atomic<const void *> owner{nullptr};
};

thread_local const char tThreadTag = 0;  // its address tells the threads apart

// Until the table exists every descriptor maps to this slot, which is never registered. Constant-initialised,
// so a recv() during static initialisation finds it too.
Slot gNoTable;
std::atomic<Slot *> gSlots{&gNoTable};
std::atomic<size_t> gLastSlot{0};  // the highest index; it stays empty, as every descriptor beyond maps to it
std::atomic<RecvFunction> gNextRecv{nullptr};
std::once_flag gTableOnce;

constexpr size_t kMaxSlots = size_t{1} << 22;  // 4M descriptors: 64 MB of address space at most

ssize_t recvBySyscall(int fd, void *buf, size_t len, int flags) {
    return syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
}

// The next recv() after this executable's: a sanitizer runtime's interceptor (which calls libc's) or
// libc's. Never this one (that would recurse); without dlsym's answer, the system call itself.
RecvFunction nextRecv() {
    RecvFunction next = gNextRecv.load(std::memory_order_relaxed);
    if (next) [[likely]]
        return next;
    void *found = dlsym(RTLD_NEXT, "recv");
    next = found && found != reinterpret_cast<void *>(&::recv) ? reinterpret_cast<RecvFunction>(found) : &recvBySyscall;
    gNextRecv.store(next, std::memory_order_relaxed);  // every thread that races here stores the same value
    return next;
}

// Resolved before main, when no other thread runs; nextRecv() covers a recv() that comes even earlier.
[[maybe_unused]] const RecvFunction gResolvedAtStart = nextRecv();

void makeTable() {
    rlimit lim{};
    size_t slots = 65536;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max != RLIM_INFINITY)
        slots = std::max<size_t>(static_cast<size_t>(lim.rlim_max), slots);
    else
        slots = kMaxSlots;
    slots = std::min(slots + 1, kMaxSlots);  // + 1: the last slot stays empty
    // Anonymous pages: zero (no guard) until a descriptor that high is registered.
    void *mem = mmap(nullptr, slots * sizeof(Slot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        log::error("cannot map the table of screened descriptors: unmasked client frames go undetected",
                   {log::Field("slots", static_cast<uint64_t>(slots))});
        return;
    }
    // Zero bytes are valid empty slots (null pointers in lock-free atomics).
    static_assert(std::atomic<ClientFrameGuard *>::is_always_lock_free && std::atomic<const void *>::is_always_lock_free);
    gSlots.store(static_cast<Slot *>(mem), std::memory_order_relaxed);
    gLastSlot.store(slots - 1, std::memory_order_release);  // a reader that sees this bound sees the table
}

Slot &slotOf(int fd) {
    size_t last = gLastSlot.load(std::memory_order_acquire);
    Slot *slots = gSlots.load(std::memory_order_relaxed);
    return slots[std::min<size_t>(static_cast<unsigned>(fd), last)];  // a negative fd maps to the last slot too
}

}  // namespace

bool ClientFrameGuard::watch(int fd, Session *s) {
    std::call_once(gTableOnce, makeTable);
    unwatch();
    if (fd < 0 || static_cast<size_t>(fd) >= gLastSlot.load(std::memory_order_acquire)) {
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true))
            log::warn("descriptor beyond the table of screened descriptors: unmasked client frames go undetected on it",
                      {log::Field("fd", static_cast<int64_t>(fd))});
        return false;
    }
    fd_ = fd;
    session_ = s;
    Slot &slot = slotOf(fd);
    slot.owner.store(&tThreadTag, std::memory_order_relaxed);
    slot.guard.store(this, std::memory_order_release);
    return true;
}

void ClientFrameGuard::unwatch() {
    if (fd_ < 0) return;
    ClientFrameGuard *mine = this;
    // Only if still ours: another thread may have registered the descriptor again since it was closed.
    slotOf(fd_).guard.compare_exchange_strong(mine, nullptr, std::memory_order_acq_rel);
    fd_ = -1;
}

size_t ClientFrameGuard::screenPreloaded(Session *s, const char *bytes, size_t len) {
    size_t at = scanner_.scan(reinterpret_cast<const uint8_t *>(bytes), len);
    if (at == ClientFrameScanner::kAllMasked) return len;
    onBadClientFrame(s);
    return at;
}

long ClientFrameGuard::screenedRecv(int fd, void *buf, size_t len, int flags) {
    RecvFunction next = nextRecv();
    if (scanner_.failed()) {  // drain and discard; report the client's end
        ssize_t n = next(fd, buf, len, flags);
        if (n <= 0) return n;
        errno = EAGAIN;
        return -1;
    }
    ssize_t n = next(fd, buf, len, flags);
    if (n <= 0 || (flags & MSG_PEEK)) return n;  // a peek is looked at when it is read (libwebsockets never peeks)
    size_t at = scanner_.scan(static_cast<const uint8_t *>(buf), static_cast<size_t>(n));
    if (at == ClientFrameScanner::kAllMasked) return n;
    onBadClientFrame(session_);
    if (at > 0) return static_cast<long>(at);  // the frames before it are delivered
    errno = EAGAIN;
    return -1;
}

}  // namespace wsgw

// The executable's recv(): libwebsockets' reads of client sockets come here (see client_frame_guard.h).
extern "C" ssize_t recv(int fd, void *buf, size_t len, int flags) {
    using namespace wsgw;
    Slot &slot = slotOf(fd);
    ClientFrameGuard *guard = slot.guard.load(std::memory_order_acquire);
    if (guard == nullptr || slot.owner.load(std::memory_order_relaxed) != &tThreadTag) [[likely]]
        return nextRecv()(fd, buf, len, flags);
    return guard->screenedRecv(fd, buf, len, flags);
}
