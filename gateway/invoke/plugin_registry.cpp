#include "plugin_registry.h"

#include "digest.h"
#include "elf_image.h"
#include "lambda_directory.h"
#include "log.h"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

namespace wsgw {

PluginInstance::~PluginInstance() {
    isolated.reset();  // its workers run the plugin's shutdown themselves
    bool wasLambda = lambda != nullptr;
    lambda.reset();  // its processes are stopped
    if (descriptor && hasShutdown) {
        try {
            descriptor->shutdown(state);
        } catch (...) {
            log::error("handler shutdown threw an exception", {log::Field("handler", name)});
        }
    }
    if (library) dlclose(library);
    if (privateCopyFd >= 0) close(privateCopyFd);
    if (descriptor || isolated) log::info("handler unloaded", {log::Field("handler", name), log::Field("plugin", path)});
    if (wasLambda) log::info("handler unloaded", {log::Field("handler", name), log::Field("lambda", true)});
}

PluginInstance *PluginSet::find(const std::string &name) const {
    auto it = instances.find(name);
    return it == instances.end() ? nullptr : it->second.get();
}

std::variant<const wsgw_handler *, std::string> openPluginLibrary(const std::string &loadPath, const std::string &shownPath,
                                                                  void **library) {
    *library = dlopen(loadPath.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!*library) {
        const char *err = dlerror();
        return "cannot load " + shownPath + ": " + (err ? err : "unknown dlopen error");
    }
    using Entry = const wsgw_handler *(*)();
    auto entry = reinterpret_cast<Entry>(dlsym(*library, "wsgw_handler_v1"));
    if (!entry) {
        return shownPath + " does not export wsgw_handler_v1: a wsgw handler defines " +
               "'WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void)' from <wsgw/handler.h>";
    }
    const wsgw_handler *desc = entry();
    if (!desc) return shownPath + ": wsgw_handler_v1() returned NULL";
    if (desc->abi_version != WSGW_ABI_VERSION) {
        return shownPath + " was built for handler ABI version " + std::to_string(desc->abi_version) +
               ", this gateway speaks version " + std::to_string(WSGW_ABI_VERSION) +
               ": rebuild the plugin against this gateway's <wsgw/handler.h>";
    }
    if (desc->size < offsetof(wsgw_handler, shutdown) || !desc->handle)
        return shownPath + ": its wsgw_handler descriptor is too small or has no handle function";
    return desc;
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

std::mutex g_copyDirMutex;
std::string g_copyDir;
std::atomic<uint64_t> g_copyCounter{0};

// One directory per gateway process for private copies: dlopen keys loaded objects by path, so each
// version must have a path never used before, or the old code would be handed back.
std::string privateCopyDir(std::string *error) {
    std::lock_guard lock(g_copyDirMutex);
    if (!g_copyDir.empty()) return g_copyDir;
    const char *tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/wsgw-plugins-XXXXXX";
    if (!mkdtemp(templ.data())) {
        *error = "cannot create a directory for private plugin copies (" + templ + "): " + std::strerror(errno);
        return {};
    }
    g_copyDir = templ;
    std::atexit(removePrivateCopyDir);  // copies are unlinked once loaded; this is for the directory
    return g_copyDir;
}

bool readWholeFile(const std::string &path, std::string &out, std::string *error) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = std::strerror(errno);
        return false;
    }
    out.clear();
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *error = std::strerror(errno);
            close(fd);
            return false;
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return true;
}


std::string identityOf(const HandlerSpec &spec, const std::string &bytesHash) {
    std::string isolation = spec.isolated ? "process:" + std::to_string(spec.workers) + ":" + std::to_string(spec.maxWorkerMemoryMb)
                                          : "in-process";
    return bytesHash + '\n' + spec.configJson + '\n' + isolation;
}

std::string lambdaIdentity(const HandlerSpec &spec) {
    const LambdaSpec &l = spec.lambda;
    std::string id = "lambda\n" + l.runtime + '\n' + l.handler + '\n' + l.directory + '\n' + std::to_string(l.concurrency) + '\n' +
                     std::to_string(l.memoryMb) + '\n';
    for (const auto &a : l.command) id += "arg:" + a + '\n';
    for (const auto &[k, v] : l.environment) id += "env:" + k + '=' + v + '\n';
    id += "stage:" + l.stage + '\n';
    // Its files too: an edited function starts new processes on the next reload (docs/lambda.md, "Hot reload").
    id += "files:" + lambdaDirectoryFingerprint(l.directory) + '\n';
    return sha256Hex(id);
}

// Writes the bytes to a fresh path of their own; returns that path with `fd` open on it for reading.
std::string writePrivateCopy(const std::string &bytes, const std::string &pluginName, int &fd, std::string *error) {
    std::string dir = privateCopyDir(error);
    if (dir.empty()) return {};
    std::string path = dir + "/" + pluginName + "." + std::to_string(++g_copyCounter) + ".so";
    int out = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    if (out < 0) {
        *error = "cannot write the private copy " + path + ": " + std::strerror(errno);
        return {};
    }
    size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = write(out, bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *error = "cannot write the private copy " + path + ": " + std::strerror(errno);
            close(out);
            unlink(path.c_str());
            return {};
        }
        off += static_cast<size_t>(n);
    }
    close(out);
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = "cannot reopen the private copy " + path + ": " + std::strerror(errno);
        unlink(path.c_str());
        return {};
    }
    return path;
}

}  // namespace

int callHandler(const wsgw_handler *descriptor, void *state, const wsgw_event *event, wsgw_response *response,
                std::string &failure) {
    try {
        int rc = descriptor->handle(state, event, response);
        if (rc != 0) failure = "handler returned " + std::to_string(rc);
        return rc;
    } catch (const std::exception &e) {
        failure = std::string("handler threw: ") + e.what();
    } catch (...) {
        failure = "handler threw a non-standard exception";
    }
    return -1;
}

void removePrivateCopyDir() {
    std::lock_guard lock(g_copyDirMutex);
    if (!g_copyDir.empty()) rmdir(g_copyDir.c_str());
    g_copyDir.clear();
}

namespace {

using LoadedHandler = std::variant<std::shared_ptr<PluginInstance>, std::string>;

// The instance `name` of the previous set, when `reusable` says it can serve unchanged (or null).
template <typename Reusable>
std::shared_ptr<PluginInstance> previousInstance(const PluginSet *previous, const std::string &name, Reusable reusable) {
    if (!previous) return nullptr;
    auto it = previous->instances.find(name);
    return it != previous->instances.end() && reusable(*it->second) ? it->second : nullptr;
}

// A "lambda" handler: no plugin file; the identity is the function's settings (a change to its entry
// starts new processes; the old ones finish what they run).
LoadedHandler loadLambdaHandler(const ApiConfig &config, const std::string &name, const HandlerSpec &spec, HostContext *host,
                                const PluginSet *previous) {
    std::string identity = lambdaIdentity(spec);
    if (auto same = previousInstance(previous, name, [&](const PluginInstance &p) { return p.lambda && p.identity == identity; }))
        return same;
    auto inst = std::make_shared<PluginInstance>();
    inst->name = name;
    inst->identity = identity;
    initHostApi(inst->host, host, name);
    auto started = LambdaFunction::start(spec);
    if (auto *err = std::get_if<std::string>(&started))
        return config.sourcePath + ": /handlers/" + name + "/lambda: function '" + name + "': " + *err;
    inst->lambda = std::move(std::get<std::unique_ptr<LambdaFunction>>(started));
    log::info("handler loaded", {log::Field("handler", name), log::Field("lambda", spec.lambda.runtime.empty() ? "command" : spec.lambda.runtime),
                                 log::Field("directory", spec.lambda.directory),
                                 log::Field("concurrency", static_cast<uint64_t>(spec.lambda.concurrency))});
    return inst;
}

// Loads the private copy into this process and runs the plugin's init. "" or what went wrong (after
// `where`); `descriptorName` is the name the plugin gives itself.
std::string openInProcess(PluginInstance &inst, const HandlerSpec &spec, const std::string &copy, std::string &descriptorName) {
    const std::string &name = inst.name, &path = inst.path;
    auto opened = openPluginLibrary(copy, path, &inst.library);
    unlink(copy.c_str());  // mapped now; nothing is left on disk if we are killed
    close(inst.privateCopyFd);
    inst.privateCopyFd = -1;
    if (auto *err = std::get_if<std::string>(&opened)) return *err;
    const wsgw_handler *desc = std::get<const wsgw_handler *>(opened);
    inst.descriptor = desc;
    // A smaller descriptor than ours has no shutdown field: never read past its end.
    inst.hasShutdown = desc->size >= sizeof(wsgw_handler) && desc->shutdown;
    if (desc->init) {
        try {
            inst.state = desc->init(&inst.host.api, spec.configJson.c_str());
        } catch (const std::exception &e) {
            inst.hasShutdown = false;  // init failed: do not call shutdown on half-made state
            return "handler '" + name + "' (" + path + ") threw from init: " + e.what();
        } catch (...) {
            inst.hasShutdown = false;
            return "handler '" + name + "' (" + path + ") threw from init";
        }
    }
    descriptorName = desc->name ? desc->name : "";
    return "";
}

// A plugin handler (in-process or isolated): reads and checks the .so, and loads a private copy of it
// unless the previous set has the same plugin with the same settings.
LoadedHandler loadPluginHandler(const ApiConfig &config, const std::string &name, const HandlerSpec &spec,
                                const std::string &handlersDir, HostContext *host, const PluginSet *previous) {
    std::string where = config.sourcePath + ": " + whereRequested(config, spec) + ": ";
    std::string path = handlersDir + "/" + spec.plugin + ".so";
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT)  // a symlink loop, a directory we may not enter: saying "does not exist" misleads
            return where + "handler '" + name + "' needs plugin '" + spec.plugin + "', but " + path +
                   " cannot be opened: " + std::strerror(errno) + " (fix the file or the link it names)";
        return where + "handler '" + name + "' needs plugin '" + spec.plugin + "', but " + path +
               " does not exist: build it into the handlers directory (--handlers) or fix the name";
    }
    std::string bytes, error;
    if (!readWholeFile(path, bytes, &error)) return where + "cannot read " + path + ": " + error;
    if (std::string wrong = checkSharedObjectImage(bytes); !wrong.empty()) return where + path + " " + wrong;
    std::string identity = identityOf(spec, sha256Hex(bytes));
    if (auto same = previousInstance(previous, name, [&](const PluginInstance &p) { return p.identity == identity && p.path == path; }))
        return same;

    auto inst = std::make_shared<PluginInstance>();
    inst->name = name;
    inst->pluginName = spec.plugin;
    inst->path = path;
    inst->identity = identity;
    initHostApi(inst->host, host, name);
    std::string copy = writePrivateCopy(bytes, spec.plugin, inst->privateCopyFd, &error);
    if (copy.empty()) return where + error;
    std::string descriptorName;
    if (spec.isolated) {
        unlink(copy.c_str());  // the workers load it through the open descriptor
        auto started = IsolatedPlugin::start(spec, path, inst->privateCopyFd, &inst->host);
        if (auto *err = std::get_if<std::string>(&started)) return where + "isolated handler '" + name + "': " + *err;
        inst->isolated = std::move(std::get<std::unique_ptr<IsolatedPlugin>>(started));
        descriptorName = inst->isolated->descriptorName();
    } else if (std::string err = openInProcess(*inst, spec, copy, descriptorName); !err.empty()) {
        return where + err;
    }
    log::info("handler loaded", {log::Field("handler", name), log::Field("plugin", path), log::Field("name", descriptorName),
                                 log::Field("sha256", identity.substr(0, 16)),
                                 log::Field("isolation", spec.isolated ? "process" : "in-process")});
    return inst;
}

}  // namespace

std::variant<std::shared_ptr<PluginSet>, std::string> loadPlugins(const ApiConfig &config, const std::string &handlersDir,
                                                                  HostContext *host, const PluginSet *previous) {
    auto set = std::make_shared<PluginSet>();
    for (const auto &[name, spec] : config.handlers) {
        LoadedHandler loaded = spec.isLambda ? loadLambdaHandler(config, name, spec, host, previous)
                                             : loadPluginHandler(config, name, spec, handlersDir, host, previous);
        if (auto *err = std::get_if<std::string>(&loaded)) return std::move(*err);
        set->instances.emplace(name, std::move(std::get<std::shared_ptr<PluginInstance>>(loaded)));
    }
    return set;
}

}  // namespace wsgw
