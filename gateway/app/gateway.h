// Owns: the wiring of one gateway process, as named steps in the order they run. start() takes the
// database lock, reads the routes, opens the connection table, claims the cluster node ID, opens the access
// log, makes the network threads and workers, prepares the lambda callbacks' TLS, builds the route table,
// binds the listeners and the management API, cleans up after an unclean stop, starts the reloader, gives
// the management API its operations hooks, joins the cluster and logs "listening" (gateway_startup.cpp).
// serveUntilStopped() serves, then drains and stops in order within the drain's deadline
// (gateway_shutdown.cpp). The members are declared in the order they are made: on a failed start they go
// in reverse.
#pragma once

#include "access_log.h"
#include "cluster_node.h"
#include "config.h"
#include "connection_registry.h"
#include "host_api.h"
#include "invoker.h"
#include "listener.h"
#include "management_api.h"
#include "network_threads.h"
#include "options.h"
#include "redis_store.h"
#include "route_reloader.h"
#include "route_table.h"
#include "shutdown_watchdog.h"
#include "sqlite_store.h"

#include <memory>
#include <optional>
#include <string>

namespace wsgw {

class Gateway {
public:
    explicit Gateway(const Options &opt);  // opt outlives the gateway
    Gateway(const Gateway &) = delete;
    Gateway &operator=(const Gateway &) = delete;

    // Every start-up step in order; the first that fails ends it with its error (nothing is served). A
    // SIGTERM or SIGINT during the start ends it too (startStoppedBy() names the signal).
    std::string start();
    int startStoppedBy() const { return startStoppedBy_; }
    // Serves until a stop is asked for, then drains and stops. May end the process itself (_Exit(0)) when a
    // thread is still inside a handler whose plugin cannot be unloaded under it.
    void serveUntilStopped();

private:
    // Start-up, in order (gateway_startup.cpp). Each returns the error that ends the start, or "".
    std::string lockDatabase();
    std::string readListenAddressAndRoutes();
    std::string openConnectionTable();
    std::string claimClusterNodeId();
    std::string openAccessLog();
    std::string makeNetworkThreadsAndWorkers();
    std::string prepareFunctionCallbackTls();
    std::string buildRoutes();
    std::string bindListeners();
    std::string startManagementApi();
    void startReloader();
    void giveManagementApiItsHooks();
    std::string joinCluster();
    void logListening();

    // The stop, in order (gateway_shutdown.cpp).
    void stopManagementApiAndReloads(ShutdownWatchdog &watchdog);
    bool waitForHandlers(ShutdownWatchdog &watchdog);
    void leaveCluster(ShutdownWatchdog &watchdog, bool drained);
    size_t stopWorkersAndCommitTable(ShutdownWatchdog &watchdog);
    void shutDownHandlersAndListeners(ShutdownWatchdog &watchdog);
    std::chrono::milliseconds drainLeft() const;

    const Options &opt_;
    std::unique_ptr<DatabaseLock> databaseLock_;
    HostPort publicAddress_;
    std::optional<ApiConfig> config_;
    std::unique_ptr<ConnectionStore> store_;
    RedisStore *redisStore_ = nullptr;
    ClusterSettings clusterSettings_;
    ConnectionRegistry registry_;
    HostContext hostContext_;
    std::unique_ptr<ClusterNode> cluster_;
    std::unique_ptr<AccessLog> accessLog_;
    ListenerSettings settings_;
    unsigned networkThreads_ = 0;
    std::unique_ptr<NetworkThreads> network_;
    Listener *listener_ = nullptr;
    unsigned workers_ = 0;
    std::unique_ptr<Invoker> invoker_;
    std::string functionTlsCert_, functionTlsKey_;
    std::shared_ptr<const RouteTable> table_;  // until the reloader holds it: no copy may outlive a reload
    std::unique_ptr<ManagementApi> management_, functionEndpoint_;
    std::string handlerNames_;
    std::unique_ptr<RouteReloader> reloader_;
    int startStoppedBy_ = 0;
};

}  // namespace wsgw
