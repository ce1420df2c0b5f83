// Loads handler plugins: a private copy of <handlersDir>/<plugin>.so (so that every version gets its own
// dlopen, and `cp` over a file in use is safe), the ABI check of the wsgw_handler descriptor before
// anything else is called, and one initialised instance per entry of the route table's handlers (several
// instances may share one .so with different configs). An isolated instance is hosted by worker processes
// instead of being dlopen'ed here. A PluginSet is immutable; on reload, instances whose .so bytes, config
// and isolation are unchanged are carried over (their state survives), the rest are loaded anew. An
// instance shuts down and is unloaded when the last table and invocation using it let go.
#pragma once

#include "config.h"
#include "host_api.h"
#include "isolated_plugin.h"
#include "lambda_function.h"

#include <wsgw/handler.h>

#include <map>
#include <memory>
#include <string>
#include <variant>

namespace wsgw {

struct PluginInstance {
    std::string name;        // instance name from routes.json
    std::string pluginName;  // the .so's base name
    std::string path;        // the file in the handlers directory
    std::string identity;    // SHA-256 of the .so, config and isolation: equal means reusable on reload
    int privateCopyFd = -1;  // the private copy the code was loaded from (workers of an isolated one load it)
    void *library = nullptr;
    const wsgw_handler *descriptor = nullptr;
    void *state = nullptr;
    bool hasShutdown = false;
    std::unique_ptr<IsolatedPlugin> isolated;  // set when "isolation": "process"
    std::unique_ptr<LambdaFunction> lambda;    // set for a "lambda" handler (no plugin at all)
    wsgw_host host;

    PluginInstance() = default;
    PluginInstance(const PluginInstance &) = delete;
    PluginInstance &operator=(const PluginInstance &) = delete;
    ~PluginInstance();
};

struct PluginSet {
    std::map<std::string, std::shared_ptr<PluginInstance>> instances;
    PluginInstance *find(const std::string &name) const;
};

// Opens one plugin file (its private copy at `loadPath`) and checks its descriptor; errors name
// `shownPath` and say what to do.
std::variant<const wsgw_handler *, std::string> openPluginLibrary(const std::string &loadPath, const std::string &shownPath,
                                                                  void **library);

// Loads every handler instance of `config`, carrying over unchanged instances of `previous` (may be null).
// On failure returns a message naming routes.json, the JSON path that asked for the plugin, the file, and
// what to do; nothing of `previous` is touched then.
std::variant<std::shared_ptr<PluginSet>, std::string> loadPlugins(const ApiConfig &config, const std::string &handlersDir,
                                                                  HostContext *host, const PluginSet *previous = nullptr);

// Calls the plugin's handle(); a non-zero return or an exception becomes rc != 0 with `failure` saying
// which (an exception must never cross into the gateway's or the worker's own code).
int callHandler(const wsgw_handler *descriptor, void *state, const wsgw_event *event, wsgw_response *response,
                std::string &failure);

// Removes the directory of private copies (they are unlinked once loaded; this is for the directory).
void removePrivateCopyDir();

}  // namespace wsgw
