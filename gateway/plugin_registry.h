// Loads handler plugins: dlopen of <handlersDir>/<plugin>.so, the ABI check of the wsgw_handler descriptor
// before anything else is called, and one initialised instance per entry of the route table's handlers
// (several instances may share one .so with different configs). A PluginSet is immutable once loaded and
// shared by the route table that uses it; its instances shut down when the last user lets go.
#pragma once

#include "config.h"
#include "host_api.h"

#include <wsgw/handler.h>

#include <map>
#include <memory>
#include <string>
#include <variant>

namespace wsgw {

struct PluginInstance {
    std::string name;        // instance name from routes.json
    std::string pluginName;  // the .so's base name
    std::string path;
    void *library = nullptr;
    const wsgw_handler *descriptor = nullptr;
    void *state = nullptr;
    bool hasShutdown = false;
    wsgw_host host;

    PluginInstance() = default;
    PluginInstance(const PluginInstance &) = delete;
    PluginInstance &operator=(const PluginInstance &) = delete;
    ~PluginInstance();
};

struct PluginSet {
    std::map<std::string, std::unique_ptr<PluginInstance>> instances;
    PluginInstance *find(const std::string &name) const;
};

// Loads every handler instance of `config`. On failure returns a message naming routes.json, the JSON
// path that asked for the plugin, the file, and what to do.
std::variant<std::shared_ptr<PluginSet>, std::string> loadPlugins(const ApiConfig &config, const std::string &handlersDir,
                                                                  HostContext *host);

}  // namespace wsgw
