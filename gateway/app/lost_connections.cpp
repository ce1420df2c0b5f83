// Owns: the $disconnect of connections whose node is gone, run from the rows the table kept, and the
// start-up's clean-up of the rows this node left behind after an unclean stop (lost_connections.h).
#include "lost_connections.h"

#include "connection_id.h"
#include "connection_registry.h"
#include "event.h"
#include "log.h"

#include <wsgw/handler.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace wsgw {

// The $disconnect of a connection whose node is gone (this node after an unclean stop, or a dead node of
// the cluster): it runs here, from the row the table kept, with a reason that says what happened. The row
// is removed once it has run (or at once when there is no $disconnect to run), not before: a crash or a
// stop meanwhile leaves it for the next recovery.
void submitLostDisconnect(const ConnectionRow &row, const std::string &reason,
                          const std::shared_ptr<const RouteTable> &table, Invoker &invoker, ConnectionStore &store) {
    if (!table || !table->disconnect) {
        store.remove(row.connectionId);
        return;
    }
    auto live = std::make_shared<LiveConnection>();
    live->info.connectionId = row.connectionId;
    live->info.connectedAtMs = row.connectedAtMs;
    live->info.sourceIp = row.sourceIp;
    live->info.userAgent = row.userAgent;
    live->info.authorizerJson = row.authorizerJson;
    live->lastActiveAtMs = row.lastActiveAtMs;
    Invocation inv;
    inv.table = table;
    inv.route = table->disconnect;
    inv.connection = live;
    inv.type = WSGW_DISCONNECT;
    inv.requestId = newRequestId();
    inv.requestTimeMs = nowEpochMs();
    inv.disconnectCode = 1006;
    inv.disconnectReason = reason;
    inv.removeRowAfter = &store;
    invoker.submit(invoker.newLane(), std::move(inv));
}

// Rows this node left behind after an unclean stop: their connections are gone, so their $disconnect runs,
// on the workers beside the new traffic (serving does not wait for it: a liveness probe, a SIGTERM and new
// clients are answered meanwhile). Each row is removed after its $disconnect; what a crash or a stop cuts
// off is found again by the next start. A table that cannot be read yet is tried again (with backoff, one
// log line per 10 s) until it can, however long that takes, unless a stop (SIGTERM, SIGINT) is asked for
// meanwhile: then nothing is submitted (reading claimed no row) and the next start finds every row.
bool recoverStaleConnections(ConnectionStore &store, const std::string &nodeId,
                             const std::shared_ptr<const RouteTable> &table, Invoker &invoker,
                             const std::function<bool(std::chrono::milliseconds)> &sleepUnlessStopped) {
    using Clock = std::chrono::steady_clock;
    std::chrono::milliseconds delay{50};
    const Clock::time_point started = Clock::now();
    Clock::time_point lastLog{};
    uint64_t attempts = 0;
    std::vector<ConnectionRow> rows;
    for (;;) {
        std::string error;
        rows = store.rowsLeftByNode(nodeId, &error);
        ++attempts;
        if (error.empty()) break;
        if (Clock::now() - lastLog >= std::chrono::seconds(10)) {
            lastLog = Clock::now();
            log::error("cleaning up after an unclean stop: the connection table cannot be read yet; retrying",
                             {log::Field("node", nodeId), log::Field("error", error),
                              log::Field("attempts", attempts)});
        }
        if (sleepUnlessStopped(delay)) {
            log::warn("cleaning up after an unclean stop: stopped before the connection table could be read; its rows "
                      "are left for the next start",
                      {log::Field("node", nodeId), log::Field("attempts", attempts)});
            return false;
        }
        delay = std::min(delay * 2, std::chrono::milliseconds(2000));
    }
    if (attempts > 1)
        log::info("cleaning up after an unclean stop: the connection table was read",
                        {log::Field("attempts", attempts),
                         log::Field("waitedMs", static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                                Clock::now() - started).count()))});
    if (rows.empty()) return true;
    if (sleepUnlessStopped(std::chrono::milliseconds(0))) return false;  // asked to stop: the rows are the next start's
    log::warn("cleaning up connections left by an unclean stop",
                    {log::Field("node", nodeId), log::Field("connections", static_cast<uint64_t>(rows.size()))});
    for (auto &row : rows)
        submitLostDisconnect(row, "Gateway node '" + nodeId + "' stopped uncleanly; connection lost", table, invoker, store);
    return true;
}

}  // namespace wsgw
