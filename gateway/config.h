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

namespace wsgw {

struct HandlerSpec {
    std::string name;
    std::string plugin;
    std::string configJson;  // compact JSON text of "config", "{}" when absent
    bool isolated = false;   // "isolation": "process"
    unsigned workers = 2;    // worker processes when isolated
    size_t maxWorkerMemoryMb = 0;  // 0: no limit
};

struct RouteSpec {
    std::string key;
    std::string handler;
    bool routeResponse = false;
    uint32_t timeoutMs = 29000;
    std::string jsonPath;  // "/routes/<key>"
};

struct Limits {
    size_t maxMessageBytes = 131072;
    int handshakeTimeoutSeconds = 10;
};

struct ApiConfig {
    std::string sourcePath;
    std::string routeSelectionExpression;
    std::vector<std::string> subprotocols;  // accepted Sec-WebSocket-Protocol values, in no order
    std::map<std::string, HandlerSpec> handlers;  // every instance a route names, plus those listed in "handlers"
    std::map<std::string, RouteSpec> routes;
    Limits limits;
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
