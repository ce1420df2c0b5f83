// Owns: the slot arena for libwebsockets' receive buffers (the why is in rx_buffer_arena.h).
#include "rx_buffer_arena.h"

#include <libwebsockets.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
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

std::mutex g_mutex;                 // guards g_free and the mapping of new chunks
std::vector<char *> g_free;         // free slots, most recently freed last (its pages may still be mapped in)
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
    // The pages it touched go back to the kernel (they read as zeros next time, as lws_malloc never promised).
    madvise(slot, kSlotBytes, MADV_DONTNEED);
    std::lock_guard lock(g_mutex);
    g_free.push_back(slot);
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

bool inRxBufferArena(const void *p) { return chunkOf(p) >= 0; }

}  // namespace wsgw
