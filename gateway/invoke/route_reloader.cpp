#include "route_reloader.h"

#include "config.h"
#include "lambda_directory.h"
#include "log.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <set>

namespace wsgw {

namespace {

constexpr int kSettleMs = 150;  // quiet time after the last change before reading the files

bool endsWith(const std::string &s, const char *suffix) {
    size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

RouteReloader::RouteReloader(std::string routesPath, std::string handlersDir, HostContext &host, Installer install,
                             std::shared_ptr<const RouteTable> initial)
    : routesPath_(std::move(routesPath)), handlersDir_(std::move(handlersDir)), host_(host), install_(std::move(install)),
      current_(std::move(initial)) {
    auto slash = routesPath_.rfind('/');
    routesDir_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : routesPath_.substr(0, slash));
    routesName_ = slash == std::string::npos ? routesPath_ : routesPath_.substr(slash + 1);
}

RouteReloader::~RouteReloader() {
    stop();
    if (inotifyFd_ >= 0) close(inotifyFd_);
    if (wakeFd_ >= 0) close(wakeFd_);
}

std::string RouteReloader::start() {
    if (current_) noteAuthorizerFiles(*current_);
    wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakeFd_ < 0) return std::string("eventfd: ") + std::strerror(errno);
    std::string problem;
    inotifyFd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (inotifyFd_ < 0) {
        problem = std::string("inotify: ") + std::strerror(errno);
    } else {
        // Directories, not files: editors and `mv` replace a file, which a watch on the file itself loses.
        const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE;
        routesWatch_ = inotify_add_watch(inotifyFd_, routesDir_.c_str(), mask);
        if (routesWatch_ < 0) problem = "cannot watch " + routesDir_ + ": " + std::strerror(errno);
        handlersWatch_ = inotify_add_watch(inotifyFd_, handlersDir_.c_str(), mask);
        if (handlersWatch_ < 0) problem = "cannot watch " + handlersDir_ + ": " + std::strerror(errno);
    }
    if (current_ && inotifyFd_ >= 0) watchFunctionDirectories(*current_);
    thread_ = std::thread([this] { loop(); });
    return problem;
}

void RouteReloader::requestReload() {
    uint64_t one = 1;
    if (wakeFd_ >= 0) (void)!write(wakeFd_, &one, sizeof one);
}

void RouteReloader::stop() {
    if (stopping_.exchange(true)) return;
    requestReload();
    if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const RouteTable> RouteReloader::current() const {
    std::lock_guard lock(mutex_);
    return current_;
}

void RouteReloader::loop() {
    using Clock = std::chrono::steady_clock;
    bool pending = false;
    Clock::time_point settleAt{};
    alignas(inotify_event) char buf[8192];
    while (!stopping_.load()) {
        int timeout = -1;
        if (pending) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(settleAt - Clock::now()).count();
            timeout = left > 0 ? static_cast<int>(left) : 0;
        }
        pollfd fds[2] = {{wakeFd_, POLLIN, 0}, {inotifyFd_, POLLIN, 0}};
        int n = poll(fds, inotifyFd_ >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            log::error("reload watcher: poll failed", {log::Field("error", std::strerror(errno))});
            return;
        }
        if (stopping_.load()) return;
        if (n > 0 && (fds[0].revents & POLLIN)) {
            uint64_t count;
            (void)!read(wakeFd_, &count, sizeof count);
            if (!stopping_.load()) {
                reload("SIGHUP");
                if (alsoOnSighup_) alsoOnSighup_();
            }
            pending = false;
            continue;
        }
        if (n > 0 && inotifyFd_ >= 0 && (fds[1].revents & POLLIN)) {
            for (;;) {
                ssize_t len = read(inotifyFd_, buf, sizeof buf);
                if (len <= 0) break;
                for (char *p = buf; p < buf + len;) {
                    auto *ev = reinterpret_cast<inotify_event *>(p);
                    std::string name = ev->len ? std::string(ev->name) : std::string();
                    bool relevant = (ev->wd == routesWatch_ && (name == routesName_ || watchedFiles_.count(name))) ||
                                    (ev->wd == handlersWatch_ && endsWith(name, ".so")) || functionWatches_.count(ev->wd);
                    if (relevant) {
                        pending = true;
                        settleAt = Clock::now() + std::chrono::milliseconds(kSettleMs);
                    }
                    p += sizeof(inotify_event) + ev->len;
                }
            }
            continue;
        }
        if (pending && Clock::now() >= settleAt) {
            pending = false;
            reload("file change");
        }
    }
}

void RouteReloader::watchFunctionDirectories(const RouteTable &table) {
    if (inotifyFd_ < 0) return;
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE;
    std::map<int, std::string> now;
    for (const auto &[name, spec] : table.config.handlers) {
        if (!spec.isLambda) continue;
        for (const std::string &dir : lambdaWatchedDirectories(spec.lambda.directory)) {
            int wd = inotify_add_watch(inotifyFd_, dir.c_str(), mask);  // the same wd again for a watched directory
            if (wd < 0) {
                log::warn("hot reload: a function's directory is not watched; SIGHUP still reloads it",
                          {log::Field("handler", name), log::Field("directory", dir), log::Field("error", std::strerror(errno))});
                continue;
            }
            now[wd] = dir;
        }
    }
    for (const auto &[wd, dir] : functionWatches_)
        if (!now.count(wd) && wd != routesWatch_ && wd != handlersWatch_) inotify_rm_watch(inotifyFd_, wd);
    functionWatches_ = std::move(now);  // read by the watcher loop, which is this thread (or start(), before it)
}

// Key files, public keys and JWKS files beside routes.json are watched with it: editing keys.txt reloads.
void RouteReloader::noteAuthorizerFiles(const RouteTable &table) {
    std::set<std::string> names;
    for (const auto &[key, route] : table.config.routes) {
        (void)key;
        for (const std::string *p : {&route.authorizer.keyFile, &route.authorizer.publicKeyFile, &route.authorizer.jwksFile}) {
            auto slash = p->rfind('/');
            std::string dir = slash == std::string::npos ? "." : p->substr(0, slash);
            if (!p->empty() && dir == routesDir_) names.insert(p->substr(slash + 1));
        }
    }
    watchedFiles_ = std::move(names);  // read by the watcher loop, which is this thread
}

size_t RouteReloader::revokeWithdrawnCredentials(const RouteTable &table) {
    const Authorizer *authorizer = table.connect ? table.connect->authorizer.get() : nullptr;
    if (!authorizer) return 0;  // the API is open now: nobody is shut out by the change
    std::vector<std::string> revoke;
    host_.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
        const ConnectionInfo &info = c->info;
        if (!c->upgraded.load() || !info.admission) return;
        if (!authorizer->stillAccepts(info.admission->authorizerType, info.admission->principalId)) revoke.push_back(info.connectionId);
    });
    for (const auto &id : revoke) {
        log::info("credential revoked by reload; closing", {log::Field("connectionId", id)});
        host_.control->closeConnection(id, 1008, "API key revoked");
    }
    return revoke.size();
}

bool RouteReloader::reload(const char *cause) {
    auto began = std::chrono::steady_clock::now();
    auto refuse = [&](const std::string &why) {
        failures_.fetch_add(1);
        log::error("reload refused; the running route table stays",
                   {log::Field("cause", cause), log::Field("error", why)});
        return false;
    };
    auto config = loadApiConfig(routesPath_);
    if (auto *err = std::get_if<ConfigError>(&config)) return refuse(err->message());
    std::shared_ptr<const RouteTable> previous = current();
    std::variant<std::shared_ptr<const RouteTable>, std::string> built;
    try {
        built = buildRouteTable(std::move(std::get<ApiConfig>(config)), handlersDir_, &host_, previous.get());
    } catch (const std::exception &e) {
        // Out of threads or memory while loading (each loader turns what it expects into an error of its
        // own; this is the rest): this thread must not end the gateway over a reload.
        return refuse(std::string("loading the new table failed: ") + e.what());
    }
    if (auto *err = std::get_if<std::string>(&built)) return refuse(*err);
    auto table = std::get<std::shared_ptr<const RouteTable>>(built);

    std::string loaded, kept;
    for (const auto &[name, inst] : table->plugins->instances) {
        bool carried = previous && previous->plugins->instances.count(name) && previous->plugins->instances.at(name) == inst;
        std::string &list = carried ? kept : loaded;
        list += (list.empty() ? "" : ",") + name;
    }
    auto replaced = install_(table);
    if (replaced == table) return refuse("the network thread did not take the new table (stopping?)");
    {
        std::lock_guard lock(mutex_);
        current_ = table;
    }
    noteAuthorizerFiles(*table);
    watchFunctionDirectories(*table);
    reloads_.fetch_add(1);
    size_t revoked = revokeWithdrawnCredentials(*table);
    auto us = static_cast<int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - began).count());
    log::info("route table reloaded", {log::Field("cause", cause), log::Field("loaded", loaded), log::Field("kept", kept),
                                       log::Field("routes", static_cast<uint64_t>(table->routes.size())),
                                       log::Field("revoked", static_cast<uint64_t>(revoked)),
                                       log::Field("reloadUs", us)});
    // `replaced` and `previous` go here, off the network thread: a plugin no table uses any more shuts
    // down now, or when its last running invocation ends.
    return true;
}

}  // namespace wsgw
