// Command-line flags and their WSGW_* environment variables: runtime settings that are not part of the API
// definition (routes.json). Parsing is pure so that --help and every error message can be tested.
#pragma once

#include <string>
#include <variant>

namespace wsgw {

struct Options {
    std::string routesPath = "routes.json";
    std::string handlersDir;          // default: the build's handlers directory
    std::string runtimesDir;          // Lambda runtime clients; "": found beside the binary (app/main.cpp)
    std::string dbPath = "data/wsgw.db";
    std::string listen = "0.0.0.0:8080";
    std::string managementListen = "127.0.0.1:9001";
    std::string managementCredentials;  // a JSON file of bearer tokens and SigV4 keys
    int managementRate = 0;             // requests per second over all management clients; 0: unlimited
    int managementRequestTimeout = 15;  // seconds a management request may take to arrive (then 408)
    std::string nodeId;               // default: the host name
    std::string cluster;              // redis://HOST:PORT[/DB]: join a cluster (the table lives in Redis)
    int clusterNodeTtl = 5;           // seconds without a heartbeat before other nodes reap this one
    std::string logLevel = "info";
    int workers = 0;                  // 0: 2 x cores, at least 4
    int networkThreads = 0;           // 0: one per core
    int drainSeconds = 10;
    int maxStuckThreads = 16;  // in-process handler threads written off after a timeout (then fail fast)
    std::string accessLog = "stdout";  // "off", "stdout" or a file path
    std::string tlsCert, tlsKey;                      // wss:// on the public listener
    std::string managementTlsCert, managementTlsKey;  // https:// on the management listener
    std::string backendCa;                            // extra CAs trusted for wss:// proxy backends
    bool help = false;
    bool version = false;
};

struct HostPort {
    std::string host;
    int port = 0;
};

// Returns the options, or a message saying which flag is wrong and how to fix it.
std::variant<Options, std::string> parseOptions(int argc, const char *const *argv, const char *defaultHandlersDir);
std::variant<HostPort, std::string> parseHostPort(const std::string &text, const std::string &flag);
std::string usageText();

}  // namespace wsgw
