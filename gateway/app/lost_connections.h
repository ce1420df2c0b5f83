// Owns: the $disconnect of connections whose node is gone (this node after an unclean stop, or a dead node
// of the cluster), run here from the rows the connection table kept, and the start-up's clean-up of the
// rows this node left behind.
#pragma once

#include "connection_store.h"
#include "invoker.h"
#include "route_table.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace wsgw {

// Runs the row's $disconnect with `reason`; the row is removed once it has run (or at once when there is no
// $disconnect to run), not before: a crash or a stop meanwhile leaves it for the next recovery.
void submitLostDisconnect(const ConnectionRow &row, const std::string &reason, const std::shared_ptr<const RouteTable> &table,
                          Invoker &invoker, ConnectionStore &store);

// Rows `nodeId` left behind after an unclean stop: their $disconnect is submitted (serving does not wait for
// it). A table that cannot be read yet is tried again until it can, or until a stop is asked for: each
// pause between attempts is `sleepUnlessStopped(d)`, which returns true when the start is to stop. Returns
// false when it stopped: then no $disconnect was submitted and every row is left for the next start.
bool recoverStaleConnections(ConnectionStore &store, const std::string &nodeId, const std::shared_ptr<const RouteTable> &table,
                             Invoker &invoker, const std::function<bool(std::chrono::milliseconds)> &sleepUnlessStopped);

}  // namespace wsgw
