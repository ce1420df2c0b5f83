#include "route_table.h"

namespace wsgw {

const CompiledRoute *RouteTable::route(std::string_view body, bool isBinary, std::string &scratchKey,
                                       bool *bodyIsUtf8) const {
    if (selector.select(body, isBinary, scratchKey, bodyIsUtf8)) {
        auto it = routes.find(scratchKey);
        if (it != routes.end()) return &it->second;
    }
    return fallback;
}

std::variant<std::shared_ptr<const RouteTable>, std::string> buildRouteTable(ApiConfig config, const std::string &handlersDir,
                                                                             HostContext *host, const RouteTable *previous) {
    std::string error;
    // A proxy-only API may have no expression: its messages never reach a route, and a static key that no
    // body can select (keys starting with '$' are never selected) sends anything else to $default.
    bool proxyOnly = config.routeSelectionExpression.empty() && !config.proxy.url.empty();
    auto selector = RouteSelector::compile(proxyOnly ? "\\$default" : config.routeSelectionExpression, &error);
    if (!selector) {
        return config.sourcePath + ": /routeSelectionExpression: " + error +
               " (use $request.body.PATH, ${request.body.PATH} parts joined with text, or a static key)";
    }
    auto plugins = loadPlugins(config, handlersDir, host, previous ? previous->plugins.get() : nullptr);
    if (auto *err = std::get_if<std::string>(&plugins)) return *err;

    auto table = std::make_shared<RouteTable>(RouteTable{std::move(config), std::move(*selector),
                                                         std::get<std::shared_ptr<PluginSet>>(plugins), {}, nullptr,
                                                         nullptr, nullptr, SharedTokenBucket{}, nullptr});
    table->throttle = SharedTokenBucket(table->config.throttle);
    if (!table->config.proxy.url.empty()) {
        auto url = WsUrl::parse(table->config.proxy.url);
        if (auto *err = std::get_if<std::string>(&url)) return table->config.sourcePath + ": /proxy/url: " + *err;
        table->proxy = std::make_shared<const WsUrl>(std::get<WsUrl>(url));
    }
    for (const auto &[key, spec] : table->config.routes) {
        CompiledRoute r;
        r.key = key;
        r.handler = table->plugins->find(spec.handler);
        r.routeResponse = spec.routeResponse;
        r.timeoutMs = spec.timeoutMs;
        r.metrics = host->metrics.route(key);
        r.throttle = SharedTokenBucket(spec.throttle);
        r.connectionThrottle = spec.connectionThrottle;
        if (!spec.authorizer.type.empty()) {
            auto built = Authorizer::build(spec.authorizer, table->config.sourcePath);
            if (auto *err = std::get_if<std::string>(&built)) return *err;
            r.authorizer = std::move(std::get<std::unique_ptr<Authorizer>>(built));
        }
        if (!spec.http.empty()) {
            auto url = HttpUrl::parse(spec.http);
            if (auto *err = std::get_if<std::string>(&url)) return table->config.sourcePath + ": " + spec.jsonPath + "/http: " + *err;
            r.http = std::make_shared<HttpIntegration>(std::move(std::get<HttpUrl>(url)));
            table->routes.emplace(key, std::move(r));
            continue;
        }
        if (spec.handler.empty()) {  // a $connect with only an authorizer
            table->routes.emplace(key, std::move(r));
            continue;
        }
        if (!r.handler) {
            return table->config.sourcePath + ": /routes/" + key + "/handler: handler '" + spec.handler +
                   "' was not loaded";
        }
        // The configuration refuses "inline" on anything but an in-process plugin; checked again where it counts.
        r.runsInline = table->config.handlers.at(spec.handler).runsInline && !r.handler->isolated && !r.handler->lambda;
        table->routes.emplace(key, std::move(r));
    }
    auto find = [&](const char *k) -> const CompiledRoute * {
        auto it = table->routes.find(k);
        return it == table->routes.end() ? nullptr : &it->second;
    };
    table->connect = find("$connect");
    table->disconnect = find("$disconnect");
    table->fallback = find("$default");
    return std::shared_ptr<const RouteTable>(std::move(table));
}

}  // namespace wsgw
