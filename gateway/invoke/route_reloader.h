// Hot reload: watches routes.json, the handlers directory and the lambda functions' directories (inotify)
// and reloads on SIGHUP. A change is
// let settle (a file still being written produces more events), then routes.json is parsed and validated,
// the plugins it names are loaded (unchanged instances carried over, changed .so files loaded from fresh
// private copies) and the new RouteTable is swapped in on the network thread between two events.
// Connections stay open; running invocations finish on the table they started with, and a replaced plugin
// is shut down when its last invocation ends. An invalid change keeps the running table and logs why.
#pragma once

#include "host_api.h"
#include "route_table.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <set>
#include <thread>

namespace wsgw {

class RouteReloader {
public:
    // `install` puts a table in place on every network thread and returns the one it replaced.
    using Installer = std::function<std::shared_ptr<const RouteTable>(std::shared_ptr<const RouteTable>)>;
    RouteReloader(std::string routesPath, std::string handlersDir, HostContext &host, Installer install,
                  std::shared_ptr<const RouteTable> initial);
    ~RouteReloader();
    RouteReloader(const RouteReloader &) = delete;
    RouteReloader &operator=(const RouteReloader &) = delete;

    // Starts watching; returns "" or why the files cannot be watched (SIGHUP still reloads then).
    std::string start();
    void requestReload();  // thread-safe; what SIGHUP calls
    // Also run, on the reloader's thread, at every SIGHUP after the route table's reload (the TLS
    // certificates: their files are not watched). Set before start().
    void alsoOnSighup(std::function<void()> work) { alsoOnSighup_ = std::move(work); }
    void stop();
    std::shared_ptr<const RouteTable> current() const;
    uint64_t reloads() const { return reloads_.load(); }
    uint64_t failures() const { return failures_.load(); }

private:
    void loop();
    bool reload(const char *cause);
    // Apigee's revocation: connections admitted with a key the new table no longer accepts close with 1008.
    size_t revokeWithdrawnCredentials(const RouteTable &table);
    void noteAuthorizerFiles(const RouteTable &table);
    // The directories of the table's lambda functions (docs/lambda.md): a change under one reloads, which
    // starts new processes for that function (its files are part of its identity).
    void watchFunctionDirectories(const RouteTable &table);

    std::string routesPath_, handlersDir_, routesDir_, routesName_;
    HostContext &host_;
    Installer install_;
    std::function<void()> alsoOnSighup_;
    mutable std::mutex mutex_;
    std::shared_ptr<const RouteTable> current_;
    int inotifyFd_ = -1, wakeFd_ = -1;
    int routesWatch_ = -1, handlersWatch_ = -1;
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> reloads_{0}, failures_{0};
    std::thread thread_;
    std::set<std::string> watchedFiles_;  // authorizer files in the routes.json directory
    std::map<int, std::string> functionWatches_;  // inotify watch -> a lambda function's (sub)directory
};

}  // namespace wsgw
