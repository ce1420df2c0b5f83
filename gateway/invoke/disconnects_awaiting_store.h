// $disconnects whose connection table could not say whether this node may run them (a shared store that is
// unreachable, or that sees this node's heartbeat lapsed: ConnectionStore::disconnectOwner). They are not
// run blind: run here while another node reaps this one would run them twice. Each waits, still pending
// (a drain counts it), until the store has reached its backend again, and is then queued once more (on a
// lane of its own; it is its connection's last event) to be asked again. What still waits at stop() is
// dropped with its row kept, so the node that reaps this one, or this node's next start, runs it.
#pragma once

#include "invocation.h"
#include "invocation_lanes.h"

#include <memory>
#include <mutex>
#include <vector>

namespace wsgw {

class DisconnectsAwaitingStore : public std::enable_shared_from_this<DisconnectsAwaitingStore> {
public:
    explicit DisconnectsAwaitingStore(InvocationLanes &lanes) : lanes_(&lanes) {}

    // Holds `inv` (a $disconnect with removeRowAfter set) until its store calls back.
    void await(Invocation &&inv);
    // No call back reaches the lanes after this; returns how many were still waiting (never run).
    size_t close();

private:
    void release();

    std::mutex mutex_;
    InvocationLanes *lanes_;  // null once closed
    std::vector<Invocation> waiting_;
};

}  // namespace wsgw
