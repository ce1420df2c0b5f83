// Tests gateway/net/rx_buffer_arena: libwebsockets' receive buffers come from arena slots, everything
// else from the heap, and a freed slot is reused with its pages returned to the kernel.
#include "rx_buffer_arena.h"

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

using namespace wsgw;

namespace {
constexpr std::size_t kBuffer = 64 * 1024 + 16 + 4;  // what libwebsockets asks for: rx_buffer_size + LWS_PRE + 4

bool allZero(const char *p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        if (p[i]) return false;
    return true;
}
}  // namespace

TEST_CASE("receive buffers come from the arena, other allocations from the heap") {
    void *rx = lwsAllocate(nullptr, kBuffer, "rx_ubuf");
    REQUIRE(rx);
    CHECK(inRxBufferArena(rx));
    void *other = lwsAllocate(nullptr, kBuffer, "some other buffer");
    REQUIRE(other);
    CHECK_FALSE(inRxBufferArena(other));
    void *tooBig = lwsAllocate(nullptr, rxBufferArenaSlotBytes() + 1, "rx_ubuf");
    REQUIRE(tooBig);
    CHECK_FALSE(inRxBufferArena(tooBig));
    CHECK(lwsAllocate(other, 0, "lws_free") == nullptr);
    CHECK(lwsAllocate(tooBig, 0, "lws_free") == nullptr);
    CHECK(lwsAllocate(rx, 0, "lws_free") == nullptr);
}

TEST_CASE("a freed slot is reused at once with its pages kept; beyond the kept few, pages go back to the kernel") {
    auto *a = static_cast<char *>(lwsAllocate(nullptr, kBuffer, "rx_ubuf"));
    REQUIRE(a);
    std::memset(a, 0x5a, kBuffer);
    lwsAllocate(a, 0, "lws_free");
    auto *b = static_cast<char *>(lwsAllocate(nullptr, kBuffer, "rx_ubuf"));
    CHECK(b == a);  // the most recently freed slot comes first, not returned to the kernel
    CHECK(static_cast<unsigned char>(b[0]) == 0x5a);
    lwsAllocate(b, 0, "lws_free");

    // Freed in order, the oldest are returned: whatever was kept before, the first `extra` of these are not
    // among the newest kHotSlots freed.
    const std::size_t extra = 8, n = rxBufferArenaHotSlots() + extra;
    std::vector<char *> slots;
    for (std::size_t i = 0; i < n; ++i) {
        slots.push_back(static_cast<char *>(lwsAllocate(nullptr, kBuffer, "rx_ubuf")));
        REQUIRE(slots.back());
        std::memset(slots.back(), 0x6b, kBuffer);
    }
    for (char *p : slots) lwsAllocate(p, 0, "lws_free");
    for (std::size_t i = 0; i < extra; ++i) CHECK(allZero(slots[i], kBuffer));  // the arena never unmaps
    CHECK(static_cast<unsigned char>(slots.back()[0]) == 0x6b);
}

TEST_CASE("thousands of buffers are distinct slots, and growing one moves it to the heap intact") {
    std::set<void *> slots;
    for (int i = 0; i < 3000; ++i) slots.insert(lwsAllocate(nullptr, kBuffer, "rx_ubuf"));
    CHECK(slots.size() == 3000);
    for (void *p : slots) CHECK(inRxBufferArena(p));
    auto *first = static_cast<char *>(*slots.begin());
    std::memcpy(first, "kept", 4);
    void *grown = lwsAllocate(first, rxBufferArenaSlotBytes() * 2, "realloc");
    REQUIRE(grown);
    CHECK_FALSE(inRxBufferArena(grown));
    CHECK(std::memcmp(grown, "kept", 4) == 0);
    lwsAllocate(grown, 0, "lws_free");
    slots.erase(slots.begin());
    for (void *p : slots) lwsAllocate(p, 0, "lws_free");
}

TEST_CASE("realloc of a heap pointer and free of nullptr behave as realloc and free") {
    auto *p = static_cast<char *>(lwsAllocate(nullptr, 10, "x"));
    std::memcpy(p, "0123456789", 10);
    p = static_cast<char *>(lwsAllocate(p, 100000, "x"));
    CHECK(std::memcmp(p, "0123456789", 10) == 0);
    CHECK(lwsAllocate(p, 0, "lws_free") == nullptr);
    CHECK(lwsAllocate(nullptr, 0, "lws_free") == nullptr);
}
