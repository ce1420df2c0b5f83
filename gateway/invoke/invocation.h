// One handler invocation as the network thread hands it to the Invoker: the route it runs (with the table
// that keeps the route and its plugin alive), the connection, the event's fields, and what is owed once it
// has run (the pending-bounds release, the $disconnect's row removal).
#pragma once

#include "connection_store.h"
#include "host_api.h"
#include "route_table.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace wsgw {

struct Invocation {
    Invocation() = default;
    // A message's: received at `receivedAt`, the network thread's reading for its loop turn (no clock read here).
    explicit Invocation(std::chrono::steady_clock::time_point received) : receivedAt(received) {}

    std::shared_ptr<const RouteTable> table;  // keeps the route and its plugin alive on a worker (inline: unset)
    const CompiledRoute *route = nullptr;
    std::shared_ptr<LiveConnection> connection;
    wsgw_event_type type = WSGW_MESSAGE;
    std::string body;
    bool binary = false;
    std::string requestId, messageId;
    int64_t requestTimeMs = 0;
    int disconnectCode = 0;
    std::string disconnectReason;
    // A message counted against its connection's pending bounds (docs/limits.md, maxPendingMessages) until its
    // handler returns.
    size_t pendingBytes = 0;
    bool pendingCounted = false;
    // $disconnect: the connection's row is deleted once its handler has run, not before, so that a kill -9
    // in between leaves the row for start-up recovery to run $disconnect from (issue 17).
    ConnectionStore *removeRowAfter = nullptr;
    std::chrono::steady_clock::time_point receivedAt = std::chrono::steady_clock::now();  // for end-to-end latency
    // An Azure Web PubSub client's event (docs/webpubsub.md): answered with its ack (and the route's response
    // as a message from the server) instead of AWS's frames.
    std::shared_ptr<WpsClientState> wpsClient;
    std::shared_ptr<const WpsClientMessage> wpsRequest;
};

// The route key the invocation reports: its route's, or the event's own when it has no route.
inline const char *routeKeyOf(const Invocation &inv) {
    if (inv.route) return inv.route->key.c_str();
    return inv.type == WSGW_CONNECT ? "$connect" : inv.type == WSGW_DISCONNECT ? "$disconnect" : "$default";
}

}  // namespace wsgw
