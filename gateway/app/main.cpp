// wsgw: flags, wiring and the order of start-up and shutdown. Everything else lives in one file per concern.
#include "cluster_node.h"
#include "config.h"
#include "config_file.h"
#include "connection_id.h"
#include "connection_registry.h"
#include "fatal_exception.h"
#include "host_api.h"
#include "invoker.h"
#include "listener.h"
#include "network_threads.h"
#include "log.h"
#include "loopback_certificate.h"
#include "management_api.h"
#include "options.h"
#include "plugin_host.h"
#include "lambda_environment.h"
#include "plugin_registry.h"
#include "redis_store.h"
#include "route_reloader.h"
#include "route_table.h"
#include "serverless_import.h"
#include "shutdown_watchdog.h"
#include "sqlite_store.h"
#include "tls_credentials.h"

#include <libwebsockets.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <csignal>
#include <sys/resource.h>
#include <malloc.h>
#include <sched.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>
#include <thread>
#include <unistd.h>

#ifndef WSGW_DEFAULT_HANDLERS_DIR
#define WSGW_DEFAULT_HANDLERS_DIR "handlers"
#endif
#ifndef WSGW_VERSION
#error "WSGW_VERSION comes from meson.build's project version (-DWSGW_VERSION)"
#endif

namespace {

// The shutdown's last bound, after the drain's deadline (ShutdownWatchdog): more than the stages after the
// deadline take by their own bounds in the usual case (the table's give-up, 5 s; isolated workers' shutdown,
// 5 s), far less than "hung".
constexpr std::chrono::seconds kShutdownMargin{10};
// At the drain's deadline the workers still get this long to see the stop (idle ones leave at once).
constexpr std::chrono::milliseconds kWorkerStopFloor{100};

// The cores this process may run on (taskset, cgroup cpusets), not every core of the machine: one network
// thread per core is the point, and more threads than cores only take turns.
unsigned availableCores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

int fail(const std::string &message) {
    std::fprintf(stderr, "wsgw: %s\n", message.c_str());
    wsgw::log::error("start-up failed", {wsgw::log::Field("error", message)});
    return 2;
}

wsgw::log::Level levelFromName(const std::string &n) {
    if (n == "debug") return wsgw::log::Level::Debug;
    if (n == "warn") return wsgw::log::Level::Warn;
    if (n == "error") return wsgw::log::Level::Error;
    return wsgw::log::Level::Info;
}

// The $disconnect of a connection whose node is gone (this node after an unclean stop, or a dead node of
// the cluster): it runs here, from the row the table kept, with a reason that says what happened. The row
// is removed once it has run (or at once when there is no $disconnect to run), not before: a crash or a
// stop meanwhile leaves it for the next recovery.
void submitLostDisconnect(const wsgw::ConnectionRow &row, const std::string &reason,
                          const std::shared_ptr<const wsgw::RouteTable> &table, wsgw::Invoker &invoker, wsgw::ConnectionStore &store) {
    if (!table || !table->disconnect) {
        store.remove(row.connectionId);
        return;
    }
    auto live = std::make_shared<wsgw::LiveConnection>();
    live->info.connectionId = row.connectionId;
    live->info.connectedAtMs = row.connectedAtMs;
    live->info.sourceIp = row.sourceIp;
    live->info.userAgent = row.userAgent;
    live->info.authorizerJson = row.authorizerJson;
    live->lastActiveAtMs = row.lastActiveAtMs;
    wsgw::Invocation inv;
    inv.table = table;
    inv.route = table->disconnect;
    inv.connection = live;
    inv.type = WSGW_DISCONNECT;
    inv.requestId = wsgw::newRequestId();
    inv.requestTimeMs = wsgw::nowEpochMs();
    inv.disconnectCode = 1006;
    inv.disconnectReason = reason;
    inv.removeRowAfter = &store;
    invoker.submit(invoker.newLane(), std::move(inv));
}

// Rows this node left behind after an unclean stop: their connections are gone, so their $disconnect runs,
// on the workers beside the new traffic (serving does not wait for it: a liveness probe, a SIGTERM and new
// clients are answered meanwhile). Each row is removed after its $disconnect; what a crash or a stop cuts
// off is found again by the next start. A table that cannot be read yet is tried again (with backoff, one
// log line per 10 s) until it can, however long it stays locked.
void recoverStaleConnections(wsgw::ConnectionStore &store, const std::string &nodeId,
                             const std::shared_ptr<const wsgw::RouteTable> &table, wsgw::Invoker &invoker) {
    using Clock = std::chrono::steady_clock;
    std::chrono::milliseconds delay{50};
    const Clock::time_point started = Clock::now();
    Clock::time_point lastLog{};
    uint64_t attempts = 0;
    std::vector<wsgw::ConnectionRow> rows;
    for (;;) {
        std::string error;
        rows = store.rowsLeftByNode(nodeId, &error);
        ++attempts;
        if (error.empty()) break;
        if (Clock::now() - lastLog >= std::chrono::seconds(10)) {
            lastLog = Clock::now();
            wsgw::log::error("cleaning up after an unclean stop: the connection table cannot be read yet; retrying",
                             {wsgw::log::Field("node", nodeId), wsgw::log::Field("error", error),
                              wsgw::log::Field("attempts", attempts)});
        }
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, std::chrono::milliseconds(2000));
    }
    if (attempts > 1)
        wsgw::log::info("cleaning up after an unclean stop: the connection table was read",
                        {wsgw::log::Field("attempts", attempts),
                         wsgw::log::Field("waitedMs", static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                                Clock::now() - started).count()))});
    if (rows.empty()) return;
    wsgw::log::warn("cleaning up connections left by an unclean stop",
                    {wsgw::log::Field("node", nodeId), wsgw::log::Field("connections", static_cast<uint64_t>(rows.size()))});
    for (auto &row : rows)
        submitLostDisconnect(row, "Gateway node '" + nodeId + "' stopped uncleanly; connection lost", table, invoker, store);
}

// GET /@routes: the running table as the console shows it.
std::string routeTableJson(const wsgw::RouteTable *table) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    if (table) {
        w.Key("source");
        w.String(table->config.sourcePath);
        w.Key("routeSelectionExpression");
        w.String(table->config.routeSelectionExpression);
        w.Key("routes");
        w.StartArray();
        for (const auto &[key, spec] : table->config.routes) {
            const wsgw::HandlerSpec &h = table->config.handlers.at(spec.handler);
            w.StartObject();
            w.Key("key");
            w.String(key);
            w.Key("handler");
            w.String(spec.handler);
            w.Key("plugin");
            w.String(h.plugin);
            w.Key("isolation");
            w.String(h.isolated ? "process" : "in-process");
            w.Key("routeResponse");
            w.Bool(spec.routeResponse);
            w.Key("timeoutMs");
            w.Uint(spec.timeoutMs);
            w.EndObject();
        }
        w.EndArray();
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

// GET /@info: what the console needs to connect and what an operator asks first.
std::string infoJson(const wsgw::Listener &listener, const wsgw::Options &opt, const wsgw::RouteTable *table) {
    std::string address = listener.boundAddress();
    size_t colon = address.rfind(':');
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("version");
    w.String(WSGW_VERSION);
    w.Key("libwebsockets");
    w.String(lws_get_library_version());
    w.Key("node");
    w.String(opt.nodeId);
    w.Key("publicScheme");
    w.String(listener.tlsEnabled() ? "wss" : "ws");
    w.Key("publicAddress");
    w.String(address);
    w.Key("publicHost");
    w.String(colon == std::string::npos ? address : address.substr(0, colon));
    w.Key("publicPort");
    w.Int(colon == std::string::npos ? 0 : std::atoi(address.c_str() + colon + 1));
    w.Key("handlers");
    w.StartArray();
    if (table)
        for (const auto &[name, inst] : table->plugins->instances) w.String(name);
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

// Every connection is a descriptor: the soft limit (often 1024) is raised to the hard one. What happens at
// the limit is AcceptBackoff's.
static void raiseFileLimit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t was = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
            wsgw::log::warn("cannot raise the file descriptor limit", {wsgw::log::Field("soft", static_cast<uint64_t>(was)),
                                                                       wsgw::log::Field("error", std::strerror(errno))});
            lim.rlim_cur = was;
        }
    }
    // libwebsockets 4.1.6 as Debian builds it (with its debug checks) scans a table of one pointer per
    // descriptor of this limit at every connection close: 7 % of a connection's cost at 20,000 here, and
    // linear in the limit (docs/limits.md). A limit far above what the host will use costs every close.
    constexpr rlim_t kCloseScanWarning = 262144;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur > kCloseScanWarning)
        wsgw::log::warn("the file descriptor limit is very high: libwebsockets scans a table of that size at every connection "
                        "close (about 0.3 us per 1,000 descriptors); set the hard limit to about twice the connections you "
                        "expect (docs/limits.md)",
                        {wsgw::log::Field("limit", static_cast<uint64_t>(lim.rlim_cur))});
}

// wsgw's Lambda runtime clients: installed beside the binary (<prefix>/bin/wsgw and
// <prefix>/share/wsgw/runtimes), else the source tree's runtimes/ (a build directory's binary).
static std::string defaultRuntimesDir() {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        std::string dir(exe, static_cast<size_t>(n));
        dir.erase(dir.rfind('/'));
        std::string installed = dir + "/../share/wsgw/runtimes";
        if (access((installed + "/nodejs/bootstrap.mjs").c_str(), R_OK) == 0) return installed;
    }
    return WSGW_DEFAULT_RUNTIMES_DIR;
}

// `wsgw import serverless.yml`: prints the routes.json of a Serverless Framework project (SPEC 11); what it
// leaves out goes to stderr. Exit 2 with file:line:column and what to do on bad input.
static int runImport(int argc, char **argv) {
    if (argc != 3 || std::string_view(argv[2]).rfind("-", 0) == 0) {
        std::fprintf(stderr, "usage: wsgw import serverless.yml > routes.json   (write routes.json beside serverless.yml: "
                             "the functions' \"directory\" is \".\")\n");
        return 2;
    }
    std::string path = argv[2];
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        std::fprintf(stderr, "wsgw import: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
        return 2;
    }
    std::string text;
    char buf[65536];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
    std::fclose(f);
    std::map<std::string, std::string> environment;
    for (char **e = environ; *e; ++e) {
        std::string_view kv = *e;
        if (auto eq = kv.find('='); eq != std::string_view::npos) environment.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    auto imported = wsgw::importServerlessYaml(text, path, environment);
    if (auto *err = std::get_if<std::string>(&imported)) {
        std::fprintf(stderr, "wsgw import: %s\n", err->c_str());
        return 2;
    }
    const auto &result = std::get<wsgw::ServerlessImport>(imported);
    for (const auto &w : result.warnings) std::fprintf(stderr, "wsgw import: warning: %s\n", w.c_str());
    std::fwrite(result.routesJson.data(), 1, result.routesJson.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    wsgw::installFatalExceptionHandler();
    // An isolated handler's worker process is this binary too (see isolated_plugin.h).
    if (argc > 1 && std::string_view(argv[1]) == "--plugin-host") return wsgw::runPluginHost(argc, argv);
    if (argc > 1 && std::string_view(argv[1]) == "import") return runImport(argc, argv);
    auto parsed = wsgw::parseOptions(argc, argv, WSGW_DEFAULT_HANDLERS_DIR);
    if (auto *err = std::get_if<std::string>(&parsed)) {
        std::fprintf(stderr, "wsgw: %s\n", err->c_str());
        return 2;
    }
    const wsgw::Options &opt = std::get<wsgw::Options>(parsed);
    if (opt.help) {
        std::fputs(wsgw::usageText().c_str(), stdout);
        return 0;
    }
    if (opt.version) {
        std::printf("wsgw %s (libwebsockets %s)\n", WSGW_VERSION, lws_get_library_version());
        return 0;
    }
    std::signal(SIGPIPE, SIG_IGN);
    raiseFileLimit();
    // Messages of many kilobytes are allocated on one thread and freed on another all the time. glibc
    // would give each arena's top back to the kernel after every burst and take page faults to get it
    // again (a quarter of a 16 KiB echo), and one arena per thread multiplies what is kept. So: a few
    // arenas, and up to 16 MiB of freed heap kept in each.
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    wsgw::log::setMinLevel(levelFromName(opt.logLevel));
    wsgw::setLambdaRuntimesDir(opt.runtimesDir.empty() ? defaultRuntimesDir() : opt.runtimesDir);

    // One gateway per database, decided before anything else is touched: a second one started by mistake
    // would otherwise take the first one's live rows for leftovers and run their $disconnect.
    std::unique_ptr<wsgw::DatabaseLock> databaseLock;
    if (opt.cluster.empty()) {
        std::string lockError;
        databaseLock = wsgw::DatabaseLock::acquire(opt.dbPath, &lockError);
        if (!databaseLock) return fail(lockError);
    }

    auto listen = wsgw::parseHostPort(opt.listen, "--listen");
    if (auto *err = std::get_if<std::string>(&listen)) return fail(*err);

    auto config = wsgw::loadApiConfig(opt.routesPath);
    if (auto *err = std::get_if<wsgw::ConfigError>(&config)) return fail(err->message());

    std::string storeError;
    std::unique_ptr<wsgw::ConnectionStore> store;
    wsgw::RedisStore *redisStore = nullptr;
    wsgw::ClusterSettings clusterSettings;
    if (!opt.cluster.empty()) {
        auto address = wsgw::parseRedisUrl(opt.cluster);
        if (auto *err = std::get_if<std::string>(&address)) return fail("--cluster: " + *err);
        clusterSettings.address = std::get<wsgw::RedisAddress>(address);
        clusterSettings.nodeId = opt.nodeId;
        auto opened = wsgw::RedisStore::open(clusterSettings.address, clusterSettings.keys, opt.nodeId, &storeError);
        if (!opened) return fail(storeError);
        redisStore = opened.get();
        store = std::move(opened);
    } else {
        store = wsgw::openSqliteStore(opt.dbPath, &storeError, databaseLock.get());
        if (!store) return fail(storeError);
    }

    wsgw::ConnectionRegistry registry;
    wsgw::HostContext hostContext;
    hostContext.registry = &registry;
    std::unique_ptr<wsgw::ClusterNode> cluster;
    if (redisStore) {
        cluster = std::make_unique<wsgw::ClusterNode>(clusterSettings, hostContext, *redisStore);
        // Before recovery: the rows of a live node with our ID are not ours to clean up.
        if (std::string err = cluster->claimNodeId(); !err.empty()) return fail(err);
    }
    std::unique_ptr<wsgw::AccessLog> accessLog;
    if (opt.accessLog != "off") {
        auto opened = wsgw::AccessLog::open(opt.accessLog);
        if (auto *err = std::get_if<std::string>(&opened)) return fail(*err);
        accessLog = std::move(std::get<std::unique_ptr<wsgw::AccessLog>>(opened));
        hostContext.accessLog = accessLog.get();
    }

    wsgw::ListenerSettings settings;
    settings.listen = std::get<wsgw::HostPort>(listen);
    settings.nodeId = opt.nodeId;
    settings.drainSeconds = opt.drainSeconds;
    settings.tlsCert = opt.tlsCert;
    settings.tlsKey = opt.tlsKey;
    settings.backendCa = opt.backendCa;
    if (!opt.backendCa.empty()) {
        // libwebsockets hands the path to OpenSSL's file loader, which waits for ever on a FIFO: checked here.
        std::string error;
        if (!wsgw::readConfigFile(opt.backendCa, "the backend CA file", &error, 1 << 20)) return fail("--backend-ca " + opt.backendCa + ": " + error);
    }
    unsigned networkThreads = opt.networkThreads > 0 ? static_cast<unsigned>(opt.networkThreads)
                                                     : availableCores();
    auto network = std::make_unique<wsgw::NetworkThreads>(settings, networkThreads, registry, *store, hostContext);
    wsgw::Listener *listener = &network->primary();
    hostContext.control = network.get();
    unsigned workers = opt.workers > 0 ? static_cast<unsigned>(opt.workers)
                                       : std::max(4u, 2 * availableCores());
    wsgw::Invoker invoker(workers, *network, hostContext, static_cast<unsigned>(opt.maxStuckThreads));
    network->setInvoker(&invoker);

    // Lambda callbacks (SPEC 11): function processes start trusting the certificate of the management API's
    // loopback TLS endpoint (made in the data directory, or --management-tls-cert), so the routes' functions
    // must know it before they start.
    std::string functionTlsCert = opt.managementTlsCert, functionTlsKey = opt.managementTlsKey;
    if (opt.managementListen != "off") {
        if (functionTlsCert.empty()) {
            std::string dataDir = opt.dbPath.find('/') == std::string::npos ? "." : opt.dbPath.substr(0, opt.dbPath.rfind('/'));
            if (dataDir.empty()) dataDir = "/";
            auto made = wsgw::ensureLoopbackCertificate(dataDir);
            if (auto *err = std::get_if<std::string>(&made))
                return fail(*err + " (lambda functions' callbacks need it: give a writable --db directory, or "
                                   "--management-tls-cert/--management-tls-key)");
            const auto &files = std::get<wsgw::LoopbackCertificateFiles>(made);
            wsgw::setLambdaCallbackTrust({files.caFile, files.bundleFile});
            functionTlsCert = files.certFile;
            functionTlsKey = files.keyFile;
        } else {
            wsgw::setLambdaCallbackTrust({opt.managementTlsCert, opt.managementTlsCert});
        }
    }

    auto built = wsgw::buildRouteTable(std::move(std::get<wsgw::ApiConfig>(config)), opt.handlersDir, &hostContext);
    if (auto *err = std::get_if<std::string>(&built)) return fail(*err);
    auto table = std::move(std::get<std::shared_ptr<const wsgw::RouteTable>>(built));  // no copy may outlive a reload
    network->setRouteTable(table);

    // Both listeners are bound (nothing is accepted before run()) before the clean-up: a gateway that cannot
    // serve, because its ports are taken, must leave the table and the handlers alone.
    if (std::string err = network->start(); !err.empty()) return fail(err);
    std::unique_ptr<wsgw::ManagementApi> management, functionEndpoint;
    if (opt.managementListen != "off") {
        auto hp = wsgw::parseHostPort(opt.managementListen, "--management-listen");
        if (auto *err = std::get_if<std::string>(&hp)) return fail(*err);
        wsgw::ManagementCredentials credentials;
        if (!opt.managementCredentials.empty()) {
            if (std::string err = wsgw::loadManagementCredentials(opt.managementCredentials, credentials); !err.empty())
                return fail(err);
        }
        // The functions' endpoint: the same API over TLS on 127.0.0.1 (an ephemeral port), accepting the
        // credentials in the functions' environment besides the configured ones (SPEC 11).
        wsgw::ManagementCredentials functionCredentials = credentials;
        const wsgw::LambdaCredentials &lambdaCreds = wsgw::lambdaCredentials();
        functionCredentials.sigv4.push_back({lambdaCreds.accessKeyId, lambdaCreds.secretAccessKey});
        management = std::make_unique<wsgw::ManagementApi>(std::get<wsgw::HostPort>(hp), std::move(credentials), hostContext,
                                                             opt.managementRate);
        if (!opt.managementTlsCert.empty()) management->setTls(opt.managementTlsCert, opt.managementTlsKey);
        if (std::string err = management->start(listener->loop()); !err.empty()) return fail(err);
        functionEndpoint = std::make_unique<wsgw::ManagementApi>(wsgw::HostPort{"127.0.0.1", 0}, std::move(functionCredentials),
                                                                   hostContext, opt.managementRate);
        functionEndpoint->setTls(functionTlsCert, functionTlsKey);
        if (std::string err = functionEndpoint->start(listener->loop()); !err.empty())
            return fail("the management API's loopback TLS endpoint for lambda functions: " + err);
        wsgw::setLambdaCallbackEndpoint(functionEndpoint->boundAddress());
    }
    recoverStaleConnections(*store, opt.nodeId, table, invoker);
    std::string handlerNames;
    for (const auto &[name, inst] : table->plugins->instances) {
        (void)inst;
        handlerNames += (handlerNames.empty() ? "" : ",") + name;
    }
    // From here the reloader holds the current table: no other long-lived reference may keep old plugins.
    auto reloader = std::make_unique<wsgw::RouteReloader>(
        opt.routesPath, opt.handlersDir, hostContext,
        [n = network.get()](std::shared_ptr<const wsgw::RouteTable> t) { return n->replaceRouteTable(std::move(t)); }, std::move(table));
    listener->setReloadRequest([r = reloader.get()] { r->requestReload(); });
    reloader->alsoOnSighup([] { wsgw::TlsCredentials::reloadAll(); });  // certificate renewal (docs/operations.md)
    if (std::string err = reloader->start(); !err.empty())
        wsgw::log::warn("hot reload: files are not watched; SIGHUP still reloads", {wsgw::log::Field("error", err)});
    if (management) {
        wsgw::RouteReloader *r = reloader.get();
        wsgw::ConnectionStore *st = store.get();
        wsgw::Listener *l = listener;
        wsgw::OperationsHooks hooks;
        hooks.metrics = [&hostContext, &registry, r, st, networkThreads] {
            wsgw::Metrics::Gauges g;
            g.connections = registry.size();
            g.connectionsByThread.assign(networkThreads, 0);
            registry.forEach([&g](const std::shared_ptr<wsgw::LiveConnection> &c) {
                if (c->networkThread < g.connectionsByThread.size()) ++g.connectionsByThread[c->networkThread];
            });
            g.tableWriteQueue = st->queueDepth();
            g.reloads = r->reloads();
            g.reloadFailures = r->failures();
            return hostContext.metrics.render(g);
        };
        hooks.readinessProblems = [r, st, l, c = cluster.get()] {
            std::vector<std::string> problems;
            if (c)
                for (auto &p : c->problems()) problems.push_back(std::move(p));
            if (!l->accepting()) problems.push_back("the public listener is not accepting (draining or not started)");
            if (std::string p = st->problem(); !p.empty()) problems.push_back(std::move(p));
            if (!r->current()) problems.push_back("no route table is loaded");
            return problems;
        };
        hooks.routesJson = [r] { return routeTableJson(r->current().get()); };
        hooks.infoJson = [l, &opt, r] { return infoJson(*l, opt, r->current().get()); };
        management->setOperationsHooks(std::move(hooks));
    }
    if (cluster) {
        // Serving starts in run(): from here other nodes can reach us, and we reap the nodes that die.
        wsgw::RouteReloader *r = reloader.get();
        wsgw::ConnectionStore *tableStore = store.get();
        std::string err = cluster->start([r, &invoker, tableStore](const wsgw::ConnectionRow &row, const std::string &reason) {
            submitLostDisconnect(row, reason, r->current(), invoker, *tableStore);
        });
        if (!err.empty()) return fail(err);
        hostContext.cluster = cluster.get();
    }
    wsgw::log::info("listening", {wsgw::log::Field("address", listener->boundAddress()),
                                  wsgw::log::Field("management", management ? management->boundAddress() : std::string("off")),
                                  wsgw::log::Field("functionCallbacks", functionEndpoint ? "https://" + functionEndpoint->boundAddress() : std::string("off")),
                                  wsgw::log::Field("version", WSGW_VERSION),
                                  wsgw::log::Field("libwebsockets", lws_get_library_version()),
                                  wsgw::log::Field("routes", opt.routesPath), wsgw::log::Field("handlers", handlerNames),
                                  wsgw::log::Field("db", opt.cluster.empty() ? opt.dbPath : opt.cluster),
                                  wsgw::log::Field("node", opt.nodeId),
                                  wsgw::log::Field("workers", static_cast<uint64_t>(workers)),
                                  wsgw::log::Field("networkThreads", static_cast<uint64_t>(networkThreads))});
    // The last bound on the stop: what follows has its own bounds (docs/operations.md, "Shutdown"), this
    // catches a stage none of them foresaw.
    wsgw::ShutdownWatchdog shutdownWatchdog(settings.drainDeadline, kShutdownMargin);
    network->run();
    // One deadline for the whole drain, set when it began: the loops waited for it, and the handlers get
    // what is left of it, not --drain-seconds again.
    settings.drainDeadline->begin(opt.drainSeconds);  // begun by the loops' drain; here only if they ended otherwise
    auto drainLeft = [&] { return settings.drainDeadline->remaining(opt.drainSeconds); };
    shutdownWatchdog.stage("stopping the management API and the reload watcher");
    management.reset();  // its sockets live on the network thread's loop, which the listener owns
    functionEndpoint.reset();
    reloader->stop();

    // Every connection is closed and its $disconnect queued: let the handlers finish, then shut the
    // plugins down (they may join threads that still push) before the listener they push to goes away.
    // The last closes were submitted without a wake (the loop's prepare watcher wakes the workers, and the
    // loops have ended): wake them here, or those $disconnects wait for the drain deadline and are dropped.
    shutdownWatchdog.stage("waiting for the handlers");
    invoker.wakeDeferred();
    if (cluster) cluster->stopReaping();  // what it adopted is queued now, and counted by the wait below
    bool drained = invoker.waitIdle(drainLeft());
    if (!drained)
        wsgw::log::warn("drain: handlers still running at the deadline", {wsgw::log::Field("pending", static_cast<uint64_t>(invoker.pending()))});
    if (cluster) {
        shutdownWatchdog.stage("leaving the cluster");
        store->flush();  // bounded (the Redis store gives up after 5 s)
        hostContext.cluster = nullptr;
        // Leaves the cluster once our removals are in Redis, unless $disconnects were left undone: then
        // another node reaps this one and runs them.
        cluster->stop(!drained);
        cluster.reset();
    }
    // Workers between invocations leave at once; one still inside a handler at the deadline is not waited
    // for past it (a moment at least, for the workers to see the stop).
    shutdownWatchdog.stage("stopping the workers");
    const size_t stillInHandlers = invoker.stop(std::max(drainLeft(), kWorkerStopFloor));
    // Nothing but a handler still running can write to the table now: its last commit, bounded (a table
    // that stays unwritable is given up after a few seconds, its removals journalled for the next start),
    // before anything that runs plugin code and could hang.
    shutdownWatchdog.stage("committing the connection table");
    store->stopWrites();
    // A thread still stuck in a handler runs plugin code: unloading the plugins under it would crash, so leave.
    if (stillInHandlers > 0) { accessLog.reset(); wsgw::log::info("stopped"); std::fflush(nullptr); std::_Exit(0); }
    shutdownWatchdog.stage("shutting the handlers down");
    network->setRouteTable(nullptr);
    reloader.reset();  // the last table, and with it the plugins, go here
    shutdownWatchdog.stage("closing the access log and the listeners");
    accessLog.reset();  // flushes
    listener = nullptr;
    network.reset();
    store.reset();  // its writer stopped above
    wsgw::log::info("stopped");
    return 0;
}
