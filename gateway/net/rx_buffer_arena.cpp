// Owns: the slot arena for libwebsockets' receive buffers (the why is in rx_buffer_arena.h).
#include "rx_buffer_arena.h"

#include <libwebsockets.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

namespace wsgw {
namespace {

// libwebsockets asks for rx_buffer_size + LWS_PRE + 4; slots are 68 KiB, enough for a 64 KiB buffer and
// its padding. A larger request (or any other) goes to the heap.
constexpr std::size_t kSlotBytes = 68 * 1024;
constexpr std::size_t kSlotsPerChunk = 1024;              // 68 MiB of address space, reserved, not resident
constexpr std::size_t kChunkBytes = kSlotBytes * kSlotsPerChunk;
constexpr std::size_t kMaxChunks = 1024;                   // up to 1,048,576 connections

// Chunks are mapped once and never unmapped, so their bases can be read without the lock.
std::atomic<char *> g_chunks[kMaxChunks];
std::atomic<std::size_t> g_chunkCount{0};

// Slots freed most recently stay resident, up to this many: a connection that closes hands its pages to the
// next one. Returning a slot's pages to the kernel (MADV_DONTNEED) flushes the TLB of every CPU the process
// runs on; done on every close it was 13 % of the gateway's CPU under connect/close churn. Idle memory is
// what counts, and this many slots cost at most kHotSlots x 68 KiB, usually a page or two each.
constexpr std::size_t kHotSlots = 64;

std::mutex g_mutex;                 // guards g_hot, g_free and the mapping of new chunks
std::deque<char *> g_hot;           // freed, pages kept; oldest first
std::vector<char *> g_free;         // freed, pages returned to the kernel (or never touched)
std::once_flag g_installed;

bool isRxBuffer(const char *reason) { return reason && std::strcmp(reason, "rx_ubuf") == 0; }

// The chunk that holds p, or -1.
long chunkOf(const void *p) {
    auto *c = static_cast<const char *>(p);
    std::size_t n = g_chunkCount.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i) {
        const char *base = g_chunks[i].load(std::memory_order_relaxed);
        if (c >= base && c < base + kChunkBytes) return static_cast<long>(i);
    }
    return -1;
}

char *takeSlot() {
    std::lock_guard lock(g_mutex);
    if (!g_hot.empty()) {
        char *slot = g_hot.back();
        g_hot.pop_back();
        return slot;
    }
    if (g_free.empty()) {
        std::size_t n = g_chunkCount.load(std::memory_order_relaxed);
        if (n == kMaxChunks) return nullptr;
        void *m = mmap(nullptr, kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return nullptr;
        auto *base = static_cast<char *>(m);
        g_chunks[n].store(base, std::memory_order_relaxed);
        g_chunkCount.store(n + 1, std::memory_order_release);
        g_free.reserve(g_free.size() + kSlotsPerChunk);
        for (std::size_t i = kSlotsPerChunk; i-- > 0;) g_free.push_back(base + i * kSlotBytes);
    }
    char *slot = g_free.back();
    g_free.pop_back();
    return slot;
}

void returnSlot(char *slot) {
    char *evicted = nullptr;
    {
        std::lock_guard lock(g_mutex);
        g_hot.push_back(slot);
        if (g_hot.size() <= kHotSlots) return;
        evicted = g_hot.front();
        g_hot.pop_front();
    }
    // The oldest kept slot's pages go back to the kernel (they read as zeros next time, as lws_malloc never
    // promised), outside the lock.
    madvise(evicted, kSlotBytes, MADV_DONTNEED);
    std::lock_guard lock(g_mutex);
    g_free.push_back(evicted);
}

}  // namespace

void *lwsAllocate(void *ptr, std::size_t size, const char *reason) {
    if (ptr && chunkOf(ptr) >= 0) {
        auto *slot = static_cast<char *>(ptr);
        if (size == 0) {
            returnSlot(slot);
            return nullptr;
        }
        if (size <= kSlotBytes) return ptr;
        void *moved = std::malloc(size);  // grown past a slot (libwebsockets does not do this): to the heap
        if (!moved) return nullptr;
        std::memcpy(moved, slot, kSlotBytes);
        returnSlot(slot);
        return moved;
    }
    if (!ptr && size && size <= kSlotBytes && isRxBuffer(reason)) {
        if (char *slot = takeSlot()) return slot;
    }
    if (size == 0) {
        std::free(ptr);
        return nullptr;
    }
    return std::realloc(ptr, size);
}

void installLwsRxBufferArena() {
    std::call_once(g_installed, [] { lws_set_allocator(lwsAllocate); });
}

std::size_t rxBufferArenaSlotBytes() { return kSlotBytes; }
std::size_t rxBufferArenaHotSlots() { return kHotSlots; }

bool inRxBufferArena(const void *p) { return chunkOf(p) >= 0; }

}  // namespace wsgw
