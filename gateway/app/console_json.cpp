// Owns: the management API's GET /@routes and GET /@info bodies (console_json.h).
#include "console_json.h"

#include "listener.h"
#include "options.h"
#include "plugin_registry.h"
#include "route_table.h"

#include <libwebsockets.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdlib>

#ifndef WSGW_VERSION
#error "WSGW_VERSION comes from meson.build's project version (-DWSGW_VERSION)"
#endif

namespace wsgw {

// GET /@routes: the running table as the console shows it.
std::string routeTableJson(const RouteTable *table) {
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
            const HandlerSpec &h = table->config.handlers.at(spec.handler);
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
std::string infoJson(const Listener &listener, const Options &opt, const RouteTable *table) {
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

}  // namespace wsgw
