// Owns: the per-descriptor table of socket_calls' special cases (descriptor_table.h).
#include "descriptor_table.h"

#include "log.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <sys/mman.h>
#include <sys/resource.h>

namespace wsgw {

namespace {

thread_local const char tThreadTag = 0;

// Until the table exists every descriptor maps to this slot, which is never set. Constant-initialised, so a
// socket call during static initialisation finds it too.
DescriptorSlot gNoTable;
std::atomic<DescriptorSlot *> gSlots{&gNoTable};
std::atomic<size_t> gLastSlot{0};  // the highest index; it stays empty, as every descriptor beyond maps to it
std::once_flag gTableOnce;

constexpr size_t kMaxSlots = size_t{1} << 22;  // 4M descriptors: 96 MB of address space at most

void makeTable() {
    rlimit lim{};
    size_t slots = 65536;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max != RLIM_INFINITY)
        slots = std::max<size_t>(static_cast<size_t>(lim.rlim_max), slots);
    else
        slots = kMaxSlots;
    slots = std::min(slots + 1, kMaxSlots);  // + 1: the last slot stays empty
    void *mem = mmap(nullptr, slots * sizeof(DescriptorSlot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (mem == MAP_FAILED) {
        log::error("cannot map the table of descriptors: unmasked client frames go undetected and wss:// is refused",
                   {log::Field("slots", static_cast<uint64_t>(slots))});
        return;
    }
    static_assert(std::atomic<ClientFrameGuard *>::is_always_lock_free && std::atomic<const void *>::is_always_lock_free &&
                  std::atomic<TlsSocket *>::is_always_lock_free);
    gSlots.store(static_cast<DescriptorSlot *>(mem), std::memory_order_relaxed);
    gLastSlot.store(slots - 1, std::memory_order_release);  // a reader that sees this bound sees the table
}

}  // namespace

DescriptorSlot &descriptorSlot(int fd) {
    size_t last = gLastSlot.load(std::memory_order_acquire);
    DescriptorSlot *slots = gSlots.load(std::memory_order_relaxed);
    return slots[std::min<size_t>(static_cast<unsigned>(fd), last)];  // a negative fd maps to the last slot too
}

bool descriptorFitsTable(int fd) {
    std::call_once(gTableOnce, makeTable);
    return fd >= 0 && static_cast<size_t>(fd) < gLastSlot.load(std::memory_order_acquire);
}

const void *descriptorThreadTag() { return &tThreadTag; }

}  // namespace wsgw
