// Owns: the gateway's start-up steps, in the order Gateway::start() runs them (gateway.h). Every error
// ends the start with its message (main prints it and exits 2); nothing is served before the last step.
#include "gateway.h"

#include "access_log.h"
#include "background_log.h"
#include "config_file.h"
#include "console_json.h"
#include "lambda_environment.h"
#include "log.h"
#include "loopback_certificate.h"
#include "lost_connections.h"
#include "plugin_registry.h"
#include "startup_signals.h"
#include "tls_credentials.h"

#include <libwebsockets.h>

#include <pthread.h>
#include <sched.h>
#include <csignal>
#include <algorithm>
#include <thread>

#ifndef WSGW_VERSION
#error "WSGW_VERSION comes from meson.build's project version (-DWSGW_VERSION)"
#endif

namespace wsgw {

namespace {

// The cores this process may run on (taskset, cgroup cpusets), not every core of the machine: one network
// thread per core is the point, and more threads than cores only take turns.
unsigned availableCores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Gateway::Gateway(const Options &opt) : opt_(opt) { hostContext_.registry = &registry_; }

// SIGTERM or SIGINT during the start ends it after the step under way (a wait for another process's lock
// on the database, or the clean-up's wait for a table it cannot read, is cut short): startStoppedBy() then
// says which signal, and nothing that was not claimed has been touched.
std::string Gateway::start() {
    StartupSignals signals;
    using Step = std::string (Gateway::*)();
    static constexpr Step kUntilBound[] = {&Gateway::lockDatabase, &Gateway::readListenAddressAndRoutes,
                                           &Gateway::openConnectionTable, &Gateway::claimClusterNodeId,
                                           &Gateway::openAccessLog, &Gateway::makeNetworkThreadsAndWorkers,
                                           &Gateway::prepareFunctionCallbackTls, &Gateway::buildRoutes};
    for (Step step : kUntilBound) {
        std::string err = (this->*step)();
        if ((startStoppedBy_ = StartupSignals::stopSignal()) != 0) return err.empty() ? "stopped by a signal" : err;
        if (!err.empty()) return err;
    }
    // Binding installs the network loop's signal handlers (the drain's): ours goes back in front of them, the
    // signals held meanwhile, so that none reaches only the loop, which does not run before serving.
    sigset_t stopSignals, previousMask;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGTERM);
    sigaddset(&stopSignals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stopSignals, &previousMask);
    std::string bindError = bindListeners();
    signals.takeOverAgain();
    pthread_sigmask(SIG_SETMASK, &previousMask, nullptr);
    if ((startStoppedBy_ = StartupSignals::stopSignal()) != 0) return bindError.empty() ? "stopped by a signal" : bindError;
    if (!bindError.empty()) return bindError;
    // A signal from here on also reaches the loop's handler: once the rows are read it drains as usual.
    if (!recoverStaleConnections(*store_, opt_.nodeId, table_, *invoker_, &StartupSignals::waitFor)) {
        startStoppedBy_ = StartupSignals::stopSignal();
        return "stopped during the clean-up of an unclean stop";
    }
    startReloader();
    giveManagementApiItsHooks();
    if (std::string err = joinCluster(); !err.empty()) return err;
    logListening();
    return {};
}

// One gateway per database, decided before anything else is touched: a second one started by mistake would
// otherwise take the first one's live rows for leftovers and run their $disconnect.
std::string Gateway::lockDatabase() {
    if (!opt_.cluster.empty()) return {};
    std::string lockError;
    databaseLock_ = DatabaseLock::acquire(opt_.dbPath, &lockError);
    return databaseLock_ ? std::string() : lockError;
}

std::string Gateway::readListenAddressAndRoutes() {
    auto listen = parseHostPort(opt_.listen, "--listen");
    if (auto *err = std::get_if<std::string>(&listen)) return *err;
    publicAddress_ = std::get<HostPort>(listen);
    auto config = loadApiConfig(opt_.routesPath);
    if (auto *err = std::get_if<ConfigError>(&config)) return err->message();
    config_ = std::move(std::get<ApiConfig>(config));
    return {};
}

// SQLite in --db (under the lock), or the cluster's Redis.
std::string Gateway::openConnectionTable() {
    std::string storeError;
    if (!opt_.cluster.empty()) {
        auto address = parseRedisUrl(opt_.cluster);
        if (auto *err = std::get_if<std::string>(&address)) return "--cluster: " + *err;
        clusterSettings_.address = std::get<RedisAddress>(address);
        clusterSettings_.nodeId = opt_.nodeId;
        // Five beats per TTL: a node is reaped only after missing five in a row.
        clusterSettings_.nodeTtlMs = opt_.clusterNodeTtl * 1000;
        clusterSettings_.heartbeatMs = clusterSettings_.nodeTtlMs / 5;
        auto opened = RedisStore::open(clusterSettings_.address, clusterSettings_.keys, opt_.nodeId, &storeError);
        if (!opened) return storeError;
        redisStore_ = opened.get();
        store_ = std::move(opened);
    } else {
        store_ = openSqliteStore(opt_.dbPath, &storeError, databaseLock_.get(), [] { return StartupSignals::stopped(); });
        if (!store_) return storeError;
    }
    return {};
}

// Before recovery: the rows of a live node with our ID are not ours to clean up.
std::string Gateway::claimClusterNodeId() {
    if (!redisStore_) return {};
    cluster_ = std::make_unique<ClusterNode>(clusterSettings_, hostContext_, *redisStore_);
    return cluster_->claimNodeId();
}

std::string Gateway::openAccessLog() {
    if (opt_.accessLog == "off") return {};
    auto opened = AccessLog::open(opt_.accessLog);
    if (auto *err = std::get_if<std::string>(&opened)) return *err;
    accessLog_ = std::move(std::get<std::unique_ptr<AccessLog>>(opened));
    hostContext_.accessLog = accessLog_.get();
    return {};
}

std::string Gateway::makeNetworkThreadsAndWorkers() {
    settings_.listen = publicAddress_;
    settings_.nodeId = opt_.nodeId;
    settings_.drainSeconds = opt_.drainSeconds;
    settings_.tlsCert = opt_.tlsCert;
    settings_.tlsKey = opt_.tlsKey;
    settings_.backendCa = opt_.backendCa;
    if (!opt_.backendCa.empty()) {
        // libwebsockets hands the path to OpenSSL's file loader, which waits for ever on a FIFO: checked here.
        std::string error;
        if (!readConfigFile(opt_.backendCa, "the backend CA file", &error, 1 << 20)) return "--backend-ca " + opt_.backendCa + ": " + error;
    }
    networkThreads_ = opt_.networkThreads > 0 ? static_cast<unsigned>(opt_.networkThreads) : availableCores();
    network_ = std::make_unique<NetworkThreads>(settings_, networkThreads_, registry_, *store_, hostContext_);
    listener_ = &network_->primary();
    hostContext_.control = network_.get();
    workers_ = opt_.workers > 0 ? static_cast<unsigned>(opt_.workers) : std::max(4u, 2 * availableCores());
    invoker_ = std::make_unique<Invoker>(workers_, *network_, hostContext_, static_cast<unsigned>(opt_.maxStuckThreads));
    network_->setInvoker(invoker_.get());
    return {};
}

// Lambda callbacks (docs/lambda.md): function processes start trusting the certificate of the management API's
// loopback TLS endpoint (made in the data directory, or --management-tls-cert), so the routes' functions
// must know it before they start.
std::string Gateway::prepareFunctionCallbackTls() {
    functionTlsCert_ = opt_.managementTlsCert;
    functionTlsKey_ = opt_.managementTlsKey;
    if (opt_.managementListen == "off") return {};
    if (!functionTlsCert_.empty()) {
        setLambdaCallbackTrust({opt_.managementTlsCert, opt_.managementTlsCert});
        return {};
    }
    std::string dataDir = opt_.dbPath.find('/') == std::string::npos ? "." : opt_.dbPath.substr(0, opt_.dbPath.rfind('/'));
    if (dataDir.empty()) dataDir = "/";
    auto made = ensureLoopbackCertificate(dataDir);
    if (auto *err = std::get_if<std::string>(&made))
        return *err + " (lambda functions' callbacks need it: give a writable --db directory, or "
                      "--management-tls-cert/--management-tls-key)";
    const auto &files = std::get<LoopbackCertificateFiles>(made);
    setLambdaCallbackTrust({files.caFile, files.bundleFile});
    functionTlsCert_ = files.certFile;
    functionTlsKey_ = files.keyFile;
    return {};
}

std::string Gateway::buildRoutes() {
    auto built = buildRouteTable(std::move(*config_), opt_.handlersDir, &hostContext_);
    if (auto *err = std::get_if<std::string>(&built)) return *err;
    table_ = std::move(std::get<std::shared_ptr<const RouteTable>>(built));
    network_->setRouteTable(table_);
    return {};
}

// Both listeners are bound (nothing is accepted before run()) before the clean-up: a gateway that cannot
// serve, because its ports are taken, must leave the table and the handlers alone.
std::string Gateway::bindListeners() {
    if (std::string err = network_->start(); !err.empty()) return err;
    if (opt_.managementListen == "off") return {};
    return startManagementApi();
}

std::string Gateway::startManagementApi() {
    auto hp = parseHostPort(opt_.managementListen, "--management-listen");
    if (auto *err = std::get_if<std::string>(&hp)) return *err;
    ManagementCredentials credentials;
    if (!opt_.managementCredentials.empty()) {
        if (std::string err = loadManagementCredentials(opt_.managementCredentials, credentials); !err.empty()) return err;
    }
    // The functions' endpoint: the same API over TLS on 127.0.0.1 (an ephemeral port), accepting the
    // credentials in the functions' environment besides the configured ones (docs/lambda.md).
    ManagementCredentials functionCredentials = credentials;
    const LambdaCredentials &lambdaCreds = lambdaCredentials();
    functionCredentials.sigv4.push_back({lambdaCreds.accessKeyId, lambdaCreds.secretAccessKey});
    management_ = std::make_unique<ManagementApi>(std::get<HostPort>(hp), std::move(credentials), hostContext_, opt_.managementRate);
    if (!opt_.managementTlsCert.empty()) management_->setTls(opt_.managementTlsCert, opt_.managementTlsKey);
    management_->setRequestTimeout(opt_.managementRequestTimeout);
    if (std::string err = management_->start(listener_->loop()); !err.empty()) return err;
    functionEndpoint_ = std::make_unique<ManagementApi>(HostPort{"127.0.0.1", 0}, std::move(functionCredentials), hostContext_,
                                                        opt_.managementRate);
    functionEndpoint_->setTls(functionTlsCert_, functionTlsKey_);
    if (std::string err = functionEndpoint_->start(listener_->loop()); !err.empty())
        return "the management API's loopback TLS endpoint for lambda functions: " + err;
    setLambdaCallbackEndpoint(functionEndpoint_->boundAddress());
    return {};
}

// From here the reloader holds the current table: no other long-lived reference may keep old plugins.
void Gateway::startReloader() {
    for (const auto &[name, inst] : table_->plugins->instances) {
        (void)inst;
        handlerNames_ += (handlerNames_.empty() ? "" : ",") + name;
    }
    reloader_ = std::make_unique<RouteReloader>(
        opt_.routesPath, opt_.handlersDir, hostContext_,
        [n = network_.get()](std::shared_ptr<const RouteTable> t) { return n->replaceRouteTable(std::move(t)); }, std::move(table_));
    listener_->setReloadRequest([r = reloader_.get()] { r->requestReload(); });
    reloader_->alsoOnSighup([] { TlsCredentials::reloadAll(); });  // certificate renewal (docs/operations.md)
    if (std::string err = reloader_->start(); !err.empty())
        log::warn("hot reload: files are not watched; SIGHUP still reloads", {log::Field("error", err)});
}

// /metrics, /health/ready, /@routes and /@info.
void Gateway::giveManagementApiItsHooks() {
    if (!management_) return;
    RouteReloader *r = reloader_.get();
    ConnectionStore *st = store_.get();
    Listener *l = listener_;
    OperationsHooks hooks;
    hooks.metrics = [hostContext = &hostContext_, registry = &registry_, r, st, networkThreads = networkThreads_] {
        Metrics::Gauges g;
        g.connections = registry->size();
        g.connectionsByThread.assign(networkThreads, 0);
        registry->forEach([&g](const std::shared_ptr<LiveConnection> &c) {
            if (c->networkThread < g.connectionsByThread.size()) ++g.connectionsByThread[c->networkThread];
        });
        g.tableWriteQueue = st->queueDepth();
        g.reloads = r->reloads();
        g.reloadFailures = r->failures();
        g.logLinesDropped = BackgroundLog::droppedLines();
        if (hostContext->accessLog) g.accessLogLinesLost = hostContext->accessLog->linesLost();
        return hostContext->metrics.render(g);
    };
    hooks.readinessProblems = [r, st, l, c = cluster_.get()] {
        std::vector<std::string> problems;
        if (c)
            for (auto &p : c->problems()) problems.push_back(std::move(p));
        if (!l->accepting()) problems.push_back("the public listener is not accepting (draining or not started)");
        if (std::string p = st->problem(); !p.empty()) problems.push_back(std::move(p));
        if (!r->current()) problems.push_back("no route table is loaded");
        return problems;
    };
    hooks.routesJson = [r] { return routeTableJson(r->current().get()); };
    hooks.infoJson = [l, opt = &opt_, r] { return infoJson(*l, *opt, r->current().get()); };
    management_->setOperationsHooks(std::move(hooks));
}

// Serving starts in run(): from here other nodes can reach us, and we reap the nodes that die.
std::string Gateway::joinCluster() {
    if (!cluster_) return {};
    RouteReloader *r = reloader_.get();
    ConnectionStore *tableStore = store_.get();
    std::string err = cluster_->start([r, invoker = invoker_.get(), tableStore](const ConnectionRow &row, const std::string &reason) {
        submitLostDisconnect(row, reason, r->current(), *invoker, *tableStore);
    });
    if (!err.empty()) return err;
    hostContext_.cluster = cluster_.get();
    return {};
}

void Gateway::logListening() {
    log::info("listening", {log::Field("address", listener_->boundAddress()),
                            log::Field("management", management_ ? management_->boundAddress() : std::string("off")),
                            log::Field("functionCallbacks", functionEndpoint_ ? "https://" + functionEndpoint_->boundAddress() : std::string("off")),
                            log::Field("version", WSGW_VERSION),
                            log::Field("libwebsockets", lws_get_library_version()),
                            log::Field("routes", opt_.routesPath), log::Field("handlers", handlerNames_),
                            log::Field("db", opt_.cluster.empty() ? opt_.dbPath : opt_.cluster),
                            log::Field("node", opt_.nodeId),
                            log::Field("workers", static_cast<uint64_t>(workers_)),
                            log::Field("networkThreads", static_cast<uint64_t>(networkThreads_))});
}

}  // namespace wsgw
