#include "options.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unistd.h>

namespace wsgw {

namespace {

struct FlagSpec {
    const char *flag;
    const char *env;
    const char *help;
};

constexpr FlagSpec kFlags[] = {
    {"--routes", "WSGW_ROUTES", "FILE  route table (default ./routes.json)"},
    {"--handlers", "WSGW_HANDLERS", "DIR   directory of handler plugins <name>.so (default: the build's handlers/)"},
    {"--runtimes", "WSGW_RUNTIMES",
     "DIR   wsgw's Lambda runtime clients (nodejs/, python/; default: share/wsgw/runtimes beside the binary, else the source tree's runtimes/)"},
    {"--db", "WSGW_DB", "FILE  SQLite connection table (default ./data/wsgw.db)"},
    {"--listen", "WSGW_LISTEN", "HOST:PORT  public WebSocket listener (default 0.0.0.0:8080; IPv6 in brackets, [::1]:8080; port 0 picks a free one)"},
    {"--management-listen", "WSGW_MANAGEMENT_LISTEN", "HOST:PORT  management API listener (default 127.0.0.1:9001; 'off' disables it)"},
    {"--management-credentials", "WSGW_MANAGEMENT_CREDENTIALS",
     "FILE  {\"tokens\": [...], \"sigv4\": [{\"accessKeyId\", \"secretAccessKey\"}]}; required off loopback"},
    {"--management-rate", "WSGW_MANAGEMENT_RATE",
     "N     management requests per second (burst N) before 429 LimitExceededException (default 0: no limit)"},
    {"--management-request-timeout", "WSGW_MANAGEMENT_REQUEST_TIMEOUT",
     "N     seconds a management request may take to arrive whole before 408, and an idle management connection stays open (default 15)"},
    {"--node-id", "WSGW_NODE_ID", "ID    this node's name in the connection table and the cluster (default: the host name)"},
    {"--cluster", "WSGW_CLUSTER",
     "redis://HOST:PORT[/DB]  join a cluster of nodes: the connection table, groups and pushes go through Redis"},
    {"--cluster-node-ttl", "WSGW_CLUSTER_NODE_TTL",
     "N     seconds a node may go without a heartbeat (sent every N/5 s) before the others reap it (default 5)"},
    {"--workers", "WSGW_WORKERS", "N     handler worker threads (default 2 x cores, at least 4)"},
    {"--network-threads", "WSGW_NETWORK_THREADS",
     "N     network threads sharing the public port with SO_REUSEPORT (default: one per core)"},
    {"--log-level", "WSGW_LOG_LEVEL", "LEVEL debug|info|warn|error (default info)"},
    {"--drain-seconds", "WSGW_DRAIN_SECONDS", "N     how long SIGTERM waits for connections and handlers (default 10)"},
    {"--max-stuck-threads", "WSGW_MAX_STUCK_THREADS", "N  handler threads written off after a timeout before such routes fail fast (default 16)"},
    {"--access-log", "WSGW_ACCESS_LOG", "off|stdout|FILE  one JSON line per connect, message and disconnect (default stdout)"},
    {"--tls-cert", "WSGW_TLS_CERT", "FILE  PEM certificate chain: the public listener speaks wss:// (with --tls-key)"},
    {"--tls-key", "WSGW_TLS_KEY", "FILE  PEM private key of --tls-cert"},
    {"--management-tls-cert", "WSGW_MANAGEMENT_TLS_CERT", "FILE  PEM certificate chain: the management API speaks https://"},
    {"--management-tls-key", "WSGW_MANAGEMENT_TLS_KEY", "FILE  PEM private key of --management-tls-cert"},
    {"--backend-ca", "WSGW_BACKEND_CA", "FILE  PEM CA certificates trusted for wss:// proxy backends (besides the system's)"},
};

bool parseInt(const std::string &s, int lo, int hi, int &out) {
    if (s.empty()) return false;
    char *end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (*end != '\0' || v < lo || v > hi) return false;
    out = static_cast<int>(v);
    return true;
}

std::string apply(Options &o, const std::string &flag, const std::string &value) {
    if (flag == "--routes") o.routesPath = value;
    else if (flag == "--handlers") o.handlersDir = value;
    else if (flag == "--runtimes") o.runtimesDir = value;
    else if (flag == "--db") o.dbPath = value;
    else if (flag == "--listen") {
        auto hp = parseHostPort(value, flag);
        if (auto *err = std::get_if<std::string>(&hp)) return *err;
        o.listen = value;
    } else if (flag == "--management-listen") {
        if (value != "off") {
            auto hp = parseHostPort(value, flag);
            if (auto *err = std::get_if<std::string>(&hp)) return *err;
        }
        o.managementListen = value;
    } else if (flag == "--management-rate") {
        if (!parseInt(value, 0, 10000000, o.managementRate))
            return "--management-rate: expected requests per second from 0 (no limit) to 10000000, got '" + value + "'";
    } else if (flag == "--management-credentials") {
        o.managementCredentials = value;
    } else if (flag == "--node-id") {
        if (value.empty() || value.size() > 128) return "--node-id: give 1 to 128 characters";
        for (unsigned char c : value)
            if (c <= ' ' || c == 0x7f) return "--node-id: no spaces or control characters (it names Redis keys and log fields)";
        o.nodeId = value;
    } else if (flag == "--cluster") {
        if (value.rfind("redis://", 0) != 0) return "--cluster: expected redis://HOST:PORT, got '" + value + "'";
        o.cluster = value;
    } else if (flag == "--cluster-node-ttl") {
        if (!parseInt(value, 1, 300, o.clusterNodeTtl)) return "--cluster-node-ttl: expected 1 to 300 seconds, got '" + value + "'";
    } else if (flag == "--network-threads") {
        if (!parseInt(value, 1, 64, o.networkThreads)) return "--network-threads: expected a number from 1 to 64, got '" + value + "'";
    } else if (flag == "--workers") {
        if (!parseInt(value, 1, 1024, o.workers)) return "--workers: expected a number from 1 to 1024, got '" + value + "'";
    } else if (flag == "--log-level") {
        if (value != "debug" && value != "info" && value != "warn" && value != "error")
            return "--log-level: expected debug, info, warn or error, got '" + value + "'";
        o.logLevel = value;
    } else if (flag == "--backend-ca") {
        o.backendCa = value;
    } else if (flag == "--tls-cert") {
        o.tlsCert = value;
    } else if (flag == "--tls-key") {
        o.tlsKey = value;
    } else if (flag == "--management-tls-cert") {
        o.managementTlsCert = value;
    } else if (flag == "--management-tls-key") {
        o.managementTlsKey = value;
    } else if (flag == "--access-log") {
        if (value.empty()) return "--access-log: give off, stdout or a file path";
        o.accessLog = value;
    } else if (flag == "--max-stuck-threads") {
        if (!parseInt(value, 0, 4096, o.maxStuckThreads)) return "--max-stuck-threads: expected 0 to 4096, got '" + value + "'";
    } else if (flag == "--management-request-timeout") {
        if (!parseInt(value, 1, 3600, o.managementRequestTimeout))
            return "--management-request-timeout: expected 1 to 3600 seconds, got '" + value + "'";
    } else if (flag == "--drain-seconds") {
        if (!parseInt(value, 0, 3600, o.drainSeconds)) return "--drain-seconds: expected 0 to 3600, got '" + value + "'";
    }
    return {};
}

bool isIpv6Address(const std::string &text) {
    in6_addr address{};
    return inet_pton(AF_INET6, text.c_str(), &address) == 1;
}

// An IPv6 address has colons of its own, so without brackets where it ends and the port starts is a guess
// (::1:9001 is an address too): say how to write it, with the likely split when there is one.
std::string ipv6WithoutBrackets(const std::string &text, const std::string &flag) {
    auto colon = text.rfind(':');
    std::string head = text.substr(0, colon), tail = text.substr(colon + 1);
    int port = 0;
    bool splits = isIpv6Address(head) && parseInt(tail, 0, 65535, port);
    std::string start = flag + ": '" + text + "' ";
    if (splits)
        return start + "has an IPv6 address without brackets: write [" + head + "]:" + tail +
               (isIpv6Address(text) ? " (or [" + text + "]:PORT if all of it is the address)" : "");
    if (isIpv6Address(text)) return start + "is an IPv6 address without a port: write it in brackets, [" + text + "]:PORT, e.g. [" + text + "]:8080";
    return start + "is not HOST:PORT: write an IPv6 address in brackets, [IPV6]:PORT, e.g. [::1]:8080";
}

// The address a host names, in a form two hosts compare by; nothing for a host that is not an IP address
// (the listener says so when it binds).
struct ListenAddress {
    bool v6 = false;
    unsigned char bytes[16] = {};
};

std::optional<ListenAddress> listenAddressOf(const std::string &host) {
    ListenAddress a;
    if (host == "localhost" || inet_pton(AF_INET, host.c_str(), a.bytes) == 1) {
        if (host == "localhost") inet_pton(AF_INET, "127.0.0.1", a.bytes);  // as the listener binds it
        return a;
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return std::nullopt;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {  // ::ffff:a.b.c.d is the IPv4 address a.b.c.d
        std::memcpy(a.bytes, v6.s6_addr + 12, 4);
        return a;
    }
    a.v6 = true;
    std::memcpy(a.bytes, v6.s6_addr, 16);
    return a;
}

bool isAnyAddress(const ListenAddress &a) {
    return std::all_of(a.bytes, a.bytes + (a.v6 ? 16 : 4), [](unsigned char b) { return b == 0; });
}

// Whether two listeners on these hosts and one port would take the same sockets: the same address, the
// IPv4 wildcard and any IPv4 address, or the IPv6 wildcard (dual-stack: the listener does not set
// IPV6_V6ONLY) and anything.
bool addressesOverlap(const std::string &hostA, const std::string &hostB) {
    auto a = listenAddressOf(hostA), b = listenAddressOf(hostB);
    if (!a || !b) return hostA == hostB;
    if ((a->v6 && isAnyAddress(*a)) || (b->v6 && isAnyAddress(*b))) return true;
    if (a->v6 != b->v6) return false;
    return isAnyAddress(*a) || isAnyAddress(*b) || std::memcmp(a->bytes, b->bytes, 16) == 0;
}

}  // namespace

std::variant<HostPort, std::string> parseHostPort(const std::string &text, const std::string &flag) {
    HostPort hp;
    std::string portText;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return flag + ": expected [IPV6]:PORT, got '" + text + "'";
        hp.host = text.substr(1, close - 1);
        portText = text.substr(close + 2);
    } else {
        if (std::count(text.begin(), text.end(), ':') > 1) return ipv6WithoutBrackets(text, flag);
        auto colon = text.rfind(':');
        if (colon == std::string::npos) {
            portText = text;  // ":8080" style without host, or just a port
            hp.host = "0.0.0.0";
        } else {
            hp.host = text.substr(0, colon);
            portText = text.substr(colon + 1);
        }
        if (hp.host.empty()) hp.host = "0.0.0.0";
    }
    if (!parseInt(portText, 0, 65535, hp.port))
        return flag + ": expected HOST:PORT with a port from 0 to 65535, got '" + text + "'";
    return hp;
}

std::variant<Options, std::string> parseOptions(int argc, const char *const *argv, const char *defaultHandlersDir) {
    Options o;
    o.handlersDir = defaultHandlersDir ? defaultHandlersDir : "handlers";
    for (const auto &f : kFlags) {
        if (const char *v = std::getenv(f.env)) {
            std::string err = apply(o, f.flag, v);
            if (!err.empty()) return "environment " + std::string(f.env) + ": " + err;
        }
    }
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") { o.help = true; continue; }
        if (arg == "--version") { o.version = true; continue; }
        std::string value;
        bool hasValue = false;
        auto eq = arg.find('=');
        if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            hasValue = true;
        }
        const FlagSpec *spec = nullptr;
        for (const auto &f : kFlags)
            if (arg == f.flag) spec = &f;
        if (!spec) return "unknown option '" + arg + "': see wsgw --help";
        if (!hasValue) {
            if (i + 1 >= argc) return arg + ": needs a value: see wsgw --help";
            value = argv[++i];
        }
        std::string err = apply(o, arg, value);
        if (!err.empty()) return err;
    }
    if (o.nodeId.empty()) {
        char host[256] = {};
        if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "local");
        o.nodeId = host;
    }
    // Checked here, before anything binds: binding would only say the port is "in use by another process",
    // when it is this one's. Port 0 picks a free port for each.
    if (o.managementListen != "off") {
        auto publicAddress = parseHostPort(o.listen, "--listen");
        auto managementAddress = parseHostPort(o.managementListen, "--management-listen");
        if (auto *pub = std::get_if<HostPort>(&publicAddress)) {
            if (auto *mgmt = std::get_if<HostPort>(&managementAddress);
                mgmt && pub->port != 0 && pub->port == mgmt->port && addressesOverlap(pub->host, mgmt->host))
                return "--management-listen " + o.managementListen + ": port " + std::to_string(mgmt->port) +
                       " is the public listener's (--listen " + o.listen +
                       "); the management API needs a port of its own: choose another with --management-listen "
                       "(or move the public listener with --listen)";
        }
    }
    if (o.tlsCert.empty() != o.tlsKey.empty()) return "--tls-cert and --tls-key go together: give both (PEM files) or neither";
    if (o.managementTlsCert.empty() != o.managementTlsKey.empty())
        return "--management-tls-cert and --management-tls-key go together: give both (PEM files) or neither";
    return o;
}

std::string usageText() {
    std::string s =
        "usage: wsgw [options]\n"
        "Self-hosted WebSocket API gateway: routes each message by the route selection expression of\n"
        "routes.json to handler plugins, keeps live connections in SQLite.\n\noptions (each also as an\n"
        "environment variable):\n";
    for (const auto &f : kFlags) {
        std::string line = "  " + std::string(f.flag) + " " + f.help;
        s += line + "  [" + f.env + "]\n";
    }
    s += "  --help            this text\n  --version         print the version\n";
    return s;
}

}  // namespace wsgw
