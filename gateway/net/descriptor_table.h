// Owns: the table, indexed by descriptor, of what this binary's socket calls (socket_calls.h) do differently
// for a descriptor: screen its reads for client frames that must fail the connection (ClientFrameGuard),
// and carry TLS on the descriptor itself (TlsSocket). Every other descriptor costs a call one load and one
// branch. The table is a flat array sized at first use to RLIMIT_NOFILE's hard limit, in anonymous pages
// (untouched pages cost nothing; zero bytes are empty slots).
#pragma once

#include <atomic>

namespace wsgw {

class ClientFrameGuard;
class TlsSocket;

struct DescriptorSlot {
    // Screened reads. `guardOwner` tags the thread that registered the guard: a descriptor libwebsockets
    // closed before its session unregistered may already be another thread's new connection, whose reads
    // must neither be screened nor touch the old session.
    std::atomic<ClientFrameGuard *> guard{nullptr};
    std::atomic<const void *> guardOwner{nullptr};
    // TLS on the descriptor: set after the handshake, taken off by close() before the descriptor can be
    // reused, so no other connection ever sees it.
    std::atomic<TlsSocket *> tls{nullptr};
};

// The slot of `fd`. Descriptors beyond the table (and negative ones) share one slot that is never set.
DescriptorSlot &descriptorSlot(int fd);

// Makes the table if need be; false when `fd` is beyond it (a limit raised past the hard limit seen first).
bool descriptorFitsTable(int fd);

// Tells the calling thread apart from the others (the address of a thread-local).
const void *descriptorThreadTag();

}  // namespace wsgw
