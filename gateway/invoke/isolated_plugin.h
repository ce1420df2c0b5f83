// "isolation": "process": a handler instance served by a small pool of worker processes
// (`wsgw --plugin-host`, plugin_host.cpp), each talking to the gateway over a socketpair. One supervisor
// thread per worker reads its frames, answers its host API calls and restarts it when it dies, so a
// crash (SIGSEGV, abort, exit) costs the one invocation it was running. A timed-out invocation kills its
// worker. maxWorkerMemoryMb is a hard limit during the invocation: the worker sets RLIMIT_DATA to its
// start-up memory plus that budget, so an allocation past it fails at once inside the worker (the handler
// fails or the process dies: an integration error). A worker left holding over 3/4 of its budget (half,
// after a failed invocation) is replaced after the invocation, so the next one gets the whole budget.
//
// Owns the pool: its workers, starting them and waiting for the first to load the plugin, handing an
// invocation to an idle worker and waiting for its result, the kill at the deadline, the replacement of a
// worker near its memory limit, and the shutdown; and each worker's conversation (the Hello/Ready
// handshake, results, host API calls). The supervisor's restart back-off is restart_backoff's; the process
// itself (spawn, output, reaping, memory) is isolated_worker_process's; the host API calls it answers are
// isolated_host_calls'.
#pragma once

#include "config.h"
#include "host_api.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <thread>
#include <variant>
#include <vector>

namespace wsgw {

struct IsolatedReply {
    int rc = 0;  // 0 ok, else an integration error described by `failure`
    int status = 200;
    std::string body;
    bool binary = false;
    bool hasBody = false;       // the handler gave a body (NULL: nothing is sent; empty: an empty message)
    std::string failure;
    bool timedOut = false;      // the deadline passed; the worker was killed
    bool workerDied = false;    // the worker process ended during the invocation (crash, abort, exit)
};

class IsolatedWorkerProcess;

class IsolatedPlugin {
public:
    // Starts spec.workers processes hosting the plugin whose private copy is open as `pluginFd` (borrowed:
    // it must stay open while this lives) and waits for the first to load it. The error is the worker's
    // own: missing symbol, ABI version, init failure.
    static std::variant<std::unique_ptr<IsolatedPlugin>, std::string> start(const HandlerSpec &spec, const std::string &shownPath,
                                                                           int pluginFd, wsgw_host *host);
    ~IsolatedPlugin();
    IsolatedPlugin(const IsolatedPlugin &) = delete;
    IsolatedPlugin &operator=(const IsolatedPlugin &) = delete;

    // Runs one invocation in an idle worker; blocks until its result, its worker's death or `deadline`.
    IsolatedReply invoke(const InvocationEvent &event, std::chrono::steady_clock::time_point deadline);
    const std::string &descriptorName() const { return descriptorName_; }

private:
    struct Worker;
    IsolatedPlugin(const HandlerSpec &spec, std::string shownPath, int pluginFd, wsgw_host *host);
    std::string startSupervisors();
    void supervise(Worker &w);
    bool serve(Worker &w);  // one process's life; false when it never became ready
    bool handshake(Worker &w, IsolatedWorkerProcess &process);
    void relayFrames(Worker &w, IsolatedWorkerProcess &process);
    void takeResult(Worker &w, std::string_view payload);
    void endProcess(Worker &w, IsolatedWorkerProcess &process, bool wasReady);
    Worker *idleWorker();  // with mutex_ held
    IsolatedReply killTimedOut(std::unique_lock<std::mutex> &lock, Worker &w, pid_t pid);
    void replaceIfNearMemoryLimit(Worker &w, const IsolatedReply &r);  // with mutex_ held

    std::string instance_, shownPath_, configJson_;
    int pluginFd_;
    size_t maxMemoryBytes_;
    wsgw_host *host_;
    std::string descriptorName_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::string startError_;
    unsigned startFailures_ = 0;
    std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace wsgw
