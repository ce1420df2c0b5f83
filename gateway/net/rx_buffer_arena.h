// Owns: where libwebsockets' per-connection receive buffers live (its allocator, set once per process).
//
// libwebsockets gives every established WebSocket connection a frame buffer of the protocol's
// rx_buffer_size (64 KiB here, so that a read can take a whole 16 KiB message and more) from malloc. On the
// heap each of those buffers makes at least the page holding its malloc header resident: about 4 KB per
// idle connection, two thirds of what an idle connection cost. Here they come from slots of an anonymous
// mapping instead, with their bookkeeping outside the slots, so a buffer costs memory only for the pages
// that data was really written to, and those are returned to the kernel once more than a few dozen slots
// are free (the most recently freed stay resident for the next connections: returning pages costs a TLB
// flush on every CPU, too much to pay on every close).
// Every other libwebsockets allocation goes to realloc/free as before.
#pragma once

#include <cstddef>

namespace wsgw {

// Installs the allocator with lws_set_allocator (once; later calls do nothing). Call before any
// libwebsockets context exists.
void installLwsRxBufferArena();

// Slots of the arena in use and resident bytes are not tracked here; for tests: bytes one slot spans.
std::size_t rxBufferArenaSlotBytes();
// For tests: how many freed slots keep their pages.
std::size_t rxBufferArenaHotSlots();

// For tests: whether `p` lies in the arena.
bool inRxBufferArena(const void *p);

// The allocator itself (what lws_set_allocator receives), exposed for unit tests.
void *lwsAllocate(void *ptr, std::size_t size, const char *reason);

}  // namespace wsgw
