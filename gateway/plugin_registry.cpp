#include "plugin_registry.h"

#include "log.h"

#include <cstddef>
#include <dlfcn.h>
#include <sys/stat.h>

namespace wsgw {

PluginInstance::~PluginInstance() {
    if (descriptor && hasShutdown) {
        try {
            descriptor->shutdown(state);
        } catch (...) {
            log::error("handler shutdown threw an exception", {log::Field("handler", name)});
        }
    }
    if (library) dlclose(library);
}

PluginInstance *PluginSet::find(const std::string &name) const {
    auto it = instances.find(name);
    return it == instances.end() ? nullptr : it->second.get();
}

namespace {

// The JSON path that made us load this instance, so the message points at the line to fix.
std::string whereRequested(const ApiConfig &config, const HandlerSpec &spec) {
    for (const auto &[key, route] : config.routes) {
        (void)key;
        if (route.handler == spec.name) {
            std::string routePath = route.jsonPath.empty() ? "/routes/" + route.key : route.jsonPath;
            if (spec.plugin != spec.name) return "/handlers/" + spec.name + "/plugin";
            return routePath + "/handler";
        }
    }
    return "/handlers/" + spec.name;
}

}  // namespace

std::variant<std::shared_ptr<PluginSet>, std::string> loadPlugins(const ApiConfig &config, const std::string &handlersDir,
                                                                  HostContext *host) {
    auto set = std::make_shared<PluginSet>();
    for (const auto &[name, spec] : config.handlers) {
        std::string where = config.sourcePath + ": " + whereRequested(config, spec) + ": ";
        std::string path = handlersDir + "/" + spec.plugin + ".so";
        struct stat st{};
        if (stat(path.c_str(), &st) != 0) {
            return where + "handler '" + name + "' needs plugin '" + spec.plugin + "', but " + path +
                   " does not exist: build it into the handlers directory (--handlers) or fix the name";
        }
        auto inst = std::make_unique<PluginInstance>();
        inst->name = name;
        inst->pluginName = spec.plugin;
        inst->path = path;
        inst->library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!inst->library) {
            const char *err = dlerror();
            return where + "cannot load " + path + ": " + (err ? err : "unknown dlopen error");
        }
        using Entry = const wsgw_handler *(*)();
        auto entry = reinterpret_cast<Entry>(dlsym(inst->library, "wsgw_handler_v1"));
        if (!entry) {
            return where + path + " does not export wsgw_handler_v1: a wsgw handler defines " +
                   "'WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void)' from <wsgw/handler.h>";
        }
        const wsgw_handler *desc = entry();
        if (!desc) return where + path + ": wsgw_handler_v1() returned NULL";
        if (desc->abi_version != WSGW_ABI_VERSION) {
            return where + path + " was built for handler ABI version " + std::to_string(desc->abi_version) +
                   ", this gateway speaks version " + std::to_string(WSGW_ABI_VERSION) +
                   ": rebuild the plugin against this gateway's <wsgw/handler.h>";
        }
        if (desc->size < offsetof(wsgw_handler, shutdown) || !desc->handle) {
            return where + path + ": its wsgw_handler descriptor is too small or has no handle function";
        }
        inst->descriptor = desc;
        initHostApi(inst->host, host, name);
        // A smaller descriptor than ours has no shutdown field: never read past its end.
        inst->hasShutdown = desc->size >= sizeof(wsgw_handler) && desc->shutdown;
        if (desc->init) {
            try {
                inst->state = desc->init(&inst->host.api, spec.configJson.c_str());
            } catch (const std::exception &e) {
                inst->hasShutdown = false;  // init failed: do not call shutdown on half-made state
                return where + "handler '" + name + "' (" + path + ") threw from init: " + e.what();
            } catch (...) {
                inst->hasShutdown = false;
                return where + "handler '" + name + "' (" + path + ") threw from init";
            }
        }
        log::info("handler loaded", {log::Field("handler", name), log::Field("plugin", path),
                                     log::Field("name", desc->name ? desc->name : "")});
        set->instances.emplace(name, std::move(inst));
    }
    return set;
}

}  // namespace wsgw
