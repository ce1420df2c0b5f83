// routes.json: read, parsed, validated against schema/routes.schema.json (embedded at build time) and
// turned into an ApiConfig. Pure: no plugins are loaded here. Every error names the file, the JSON path
// and what to do, because it is the first thing a user sees when the gateway refuses to start.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "webpubsub_config.h"

namespace wsgw {

// "lambda" (docs/lambda.md): a pool of function processes speaking the Lambda Runtime API.
struct LambdaSpec {
    std::string runtime;               // "nodejs" or "python" (our runtime client); "" with a command
    std::string handler;               // "file.export" (runtime only)
    std::vector<std::string> command;  // argv of any Runtime API client (instead of runtime)
    std::string directory;             // resolved against the directory of routes.json
    unsigned concurrency = 2;          // processes, one invocation each at a time
    size_t memoryMb = 0;               // 0: resident memory not checked (128 is reported, Lambda's default)
    std::vector<std::pair<std::string, std::string>> environment;  // in the order written
    std::string stage = "local";       // routes.json's "stage", copied here: requestContext.stage of its events
};

struct HandlerSpec {
    std::string name;
    std::string plugin;
    std::string configJson;  // compact JSON text of "config", "{}" when absent
    bool isolated = false;   // "isolation": "process"
    unsigned workers = 2;    // worker processes when isolated
    size_t maxWorkerMemoryMb = 0;  // 0: no limit
    bool isLambda = false;         // "lambda": no plugin; `lambda` says what to run
    LambdaSpec lambda;
    // "inline": true: messages routed to it run on the network thread when their connection has nothing
    // waiting for or inside a worker (an in-process plugin only; its timeoutMs is not enforced then).
    bool runsInline = false;
};

// A token bucket's settings: `rate` tokens a second, at most `burst` saved up.
struct RateSpec {
    double rate = 0;  // 0: no limit
    double burst = 0;
    bool enabled() const { return rate > 0; }
};

// A $connect authorizer (docs/routes-json.md, "Authorizer"). Paths are resolved against the directory of
// routes.json.
struct AuthorizerSpec {
    std::string type;  // "apiKey" or "jwt"; "" = none
    std::vector<std::string> sources;  // "header:NAME" / "query:NAME", tried in order
    std::vector<std::pair<std::string, std::string>> keys;  // apiKey: (id or "", key)
    std::string keyFile;
    std::vector<std::string> algorithms;  // jwt
    std::string secret, publicKeyFile, jwksFile, issuer;
    std::vector<std::string> audience;
    int64_t clockSkewSeconds = 60;
    std::string jsonPath;  // "/routes/$connect/authorizer", for messages
};

struct RouteSpec {
    std::string key;
    std::string handler;  // "" for an http route, or a $connect that has just an authorizer
    std::string http;     // "http://host:port/path": the event JSON is POSTed there
    bool routeResponse = false;
    uint32_t timeoutMs = 29000;
    RateSpec throttle, connectionThrottle;
    AuthorizerSpec authorizer;  // $connect only
    std::string jsonPath;  // "/routes/<key>"
};

// AWS API Gateway's quotas are the defaults.
struct Limits {
    size_t maxMessageBytes = 131072;
    size_t maxFrameBytes = 32768;
    int handshakeTimeoutSeconds = 10;
    int idleTimeoutSeconds = 600;
    int maxConnectionSeconds = 7200;
    size_t maxConnectionsPerIp = 0;  // 0: no limit
    // docs/limits.md: what one connection can make the gateway hold.
    size_t maxSendQueueBytes = 1048576;
    size_t maxPendingMessages = 64;
    size_t maxPendingBytes = 1048576;
    // SO_SNDBUF of each client socket: what the kernel may hold towards a client that does not read, outside
    // maxSendQueueBytes. 0: the kernel's autotuning (up to net.ipv4.tcp_wmem's maximum, 4 MiB by default).
    size_t socketSendBufferBytes = 0;
    std::vector<std::string> allowedOrigins;  // empty: any
};

// routes.json "proxy": the whole API is a WebSocket passthrough to a backend.
struct ProxySpec {
    std::string url;  // "" = no proxy
    std::vector<std::string> forwardHeaders;
    bool forwardQuery = true;
};

struct ApiConfig {
    std::string sourcePath;
    std::string routeSelectionExpression;
    std::vector<std::string> subprotocols;  // accepted Sec-WebSocket-Protocol values, in no order
    bool compression = true;                // permessage-deflate when the client offers it
    std::string stage = "local";            // requestContext.stage of lambda events, the callback URL's path
    std::map<std::string, HandlerSpec> handlers;  // every instance a route names, plus those listed in "handlers"
    std::map<std::string, RouteSpec> routes;
    Limits limits;
    RateSpec throttle;  // every message of the API
    ProxySpec proxy;
    WebPubSubSpec webPubSub;  // docs/webpubsub.md; hubs empty = off
};

struct ConfigError {
    std::string file;
    std::string jsonPath;  // JSON pointer; "" for whole-file problems
    std::string reason;
    std::string message() const;
};

std::variant<ApiConfig, ConfigError> parseApiConfig(std::string_view text, const std::string &sourceName);
std::variant<ApiConfig, ConfigError> loadApiConfig(const std::string &path);

}  // namespace wsgw
