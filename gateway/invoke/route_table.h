// The compiled, immutable route table: the selection expression compiled once, each route key bound to its
// loaded handler instance. The network thread holds a shared_ptr to the current table; in-flight
// invocations keep the table (and so its plugins) alive until they finish.
#pragma once

#include "authorizer.h"
#include "config.h"
#include "ws_url.h"
#include "http_integration.h"
#include "throttle.h"
#include "plugin_registry.h"
#include "route_selector.h"

#include <memory>
#include <string>
#include <unordered_map>
#include <variant>

namespace wsgw {

struct CompiledRoute {
    std::string key;
    PluginInstance *handler = nullptr;
    bool routeResponse = false;
    uint32_t timeoutMs = 29000;
    RouteMetrics *metrics = nullptr;  // never null in a built table
    std::shared_ptr<const Authorizer> authorizer;  // $connect only
    std::shared_ptr<HttpIntegration> http;         // instead of a handler: POST the event to a backend
    SharedTokenBucket throttle;    // this route over all connections, shared by every network thread
    RateSpec connectionThrottle;   // a bucket per connection, kept by the listener
    // Its handler is "inline" (an in-process plugin): a message may run on the network thread (Invoker::runInline).
    bool runsInline = false;
};

struct RouteTable {
    ApiConfig config;
    RouteSelector selector;
    std::shared_ptr<PluginSet> plugins;
    std::unordered_map<std::string, CompiledRoute> routes;
    const CompiledRoute *connect = nullptr;
    const CompiledRoute *disconnect = nullptr;
    const CompiledRoute *fallback = nullptr;  // $default
    SharedTokenBucket throttle;               // every message of the API, shared by every network thread
    std::shared_ptr<const WsUrl> proxy;       // "proxy": every connection is relayed to this backend

    // The route for one message: its selected key's route, else $default, else nullptr (AWS: Forbidden).
    const CompiledRoute *route(std::string_view body, bool isBinary, std::string &scratchKey,
                               bool *bodyIsUtf8 = nullptr) const;
};

// Compiles the expression and loads the plugins, carrying over unchanged instances of `previous` (a reload).
// Errors name the file, the JSON path and what to do.
std::variant<std::shared_ptr<const RouteTable>, std::string> buildRouteTable(ApiConfig config, const std::string &handlersDir,
                                                                             HostContext *host, const RouteTable *previous = nullptr);

}  // namespace wsgw
