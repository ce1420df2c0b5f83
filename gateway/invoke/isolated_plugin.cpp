// Owns: an isolated handler's worker pool, its workers' supervision and conversation (isolated_plugin.h).
#include "isolated_plugin.h"

#include "exit_status.h"
#include "isolated_host_calls.h"
#include "isolated_worker_process.h"
#include "log.h"
#include "plugin_wire.h"
#include "restart_backoff.h"
#include "thread_shortage.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

namespace wsgw {

struct IsolatedPlugin::Worker {
    unsigned index = 0;
    std::thread supervisor;
    std::mutex writeMutex;
    // Guarded by IsolatedPlugin::mutex_.
    pid_t pid = -1;
    int fd = -1;
    bool ready = false;
    bool busy = false;
    bool retiring = false;  // no new invocations: it is being replaced
    bool haveResult = false;
    uint64_t seq = 0;
    IsolatedReply result;
};

IsolatedPlugin::IsolatedPlugin(const HandlerSpec &spec, std::string shownPath, int pluginFd, wsgw_host *host)
    : instance_(spec.name), shownPath_(std::move(shownPath)), configJson_(spec.configJson), pluginFd_(pluginFd),
      maxMemoryBytes_(spec.maxWorkerMemoryMb << 20), host_(host) {}

std::variant<std::unique_ptr<IsolatedPlugin>, std::string> IsolatedPlugin::start(const HandlerSpec &spec, const std::string &shownPath,
                                                                                int pluginFd, wsgw_host *host) {
    std::unique_ptr<IsolatedPlugin> pool(new IsolatedPlugin(spec, shownPath, pluginFd, host));
    unsigned n = std::max(1u, spec.workers);
    for (unsigned i = 0; i < n; ++i) {
        pool->workers_.push_back(std::make_unique<Worker>());
        pool->workers_.back()->index = i;
    }
    if (std::string error = pool->startSupervisors(); !error.empty()) return error;
    std::unique_lock lock(pool->mutex_);
    bool decided = pool->cv_.wait_for(lock, std::chrono::seconds(15), [&] {
        for (auto &w : pool->workers_)
            if (w->ready) return true;
        return pool->startFailures_ > 0;
    });
    std::string error = pool->startError_;
    bool anyReady = false;
    for (auto &w : pool->workers_) anyReady = anyReady || w->ready;
    lock.unlock();
    if (anyReady) return pool;
    if (!decided) error = "its worker process did not become ready within 15 s";
    return error;  // ~IsolatedPlugin stops the supervisors
}

std::string IsolatedPlugin::startSupervisors() {
    for (auto &w : workers_) {
        Worker *wp = w.get();
        try {
            w->supervisor = std::thread([this, wp] { supervise(*wp); });
        } catch (const std::system_error &e) {
            // EAGAIN from a pids cgroup or RLIMIT_NPROC: refused, never an abort (~IsolatedPlugin stops the
            // supervisors already started).
            return threadShortage("a supervisor thread for its worker processes", e);
        }
    }
    return "";
}

IsolatedPlugin::~IsolatedPlugin() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    // Ask each worker to run the plugin's shutdown; kill what has not gone after a grace period.
    for (auto &w : workers_) {
        int fd;
        {
            std::lock_guard lock(mutex_);
            fd = w->fd;
        }
        if (fd < 0) continue;
        wire::Writer bye(wire::Kind::Shutdown);
        std::lock_guard wlock(w->writeMutex);
        wire::writeAll(fd, bye.frame());
    }
    {
        std::unique_lock lock(mutex_);
        bool gone = cv_.wait_for(lock, std::chrono::seconds(5), [&] {
            for (auto &w : workers_)
                if (w->pid > 0) return false;
            return true;
        });
        if (!gone) {
            for (auto &w : workers_)
                if (w->pid > 0) kill(-w->pid, SIGKILL);  // its process group: what the plugin forked goes too
        }
    }
    for (auto &w : workers_)
        if (w->supervisor.joinable()) w->supervisor.join();
}

void IsolatedPlugin::supervise(Worker &w) {
    bool everReady = false;
    superviseWithBackoff(mutex_, cv_, stopping_, [&] { return serve(w); }, [&](bool becameReady) {
        everReady = everReady || becameReady;
        if (!becameReady && !everReady) {
            ++startFailures_;
            cv_.notify_all();
            if (startFailures_ >= workers_.size()) return false;  // nobody can load it: start() reports why
        }
        return true;
    });
}

bool IsolatedPlugin::serve(Worker &w) {
    std::unique_ptr<IsolatedWorkerProcess> process = IsolatedWorkerProcess::spawn(instance_, maxMemoryBytes_, pluginFd_);
    if (!process) return false;
    bool stoppedMeanwhile;
    {
        std::lock_guard lock(mutex_);
        w.pid = process->pid();
        w.fd = process->socket();
        w.retiring = false;
        // The destructor may have looked at the workers before this one existed (a start that failed
        // part-way, e.g. for want of threads): it would neither shut it down nor kill it, so it goes now.
        stoppedMeanwhile = stopping_;
    }
    bool ready = !stoppedMeanwhile && handshake(w, *process);
    if (ready) {
        log::info("isolated worker started", {log::Field("handler", instance_), log::Field("worker", static_cast<uint64_t>(w.index)),
                                               log::Field("pid", static_cast<int64_t>(process->pid()))});
        relayFrames(w, *process);
    }
    endProcess(w, *process, ready);
    return ready;
}

// Hello (the plugin's path and config) and the worker's Ready: true when it loaded the plugin; its error
// otherwise becomes the start error.
bool IsolatedPlugin::handshake(Worker &w, IsolatedWorkerProcess &process) {
    wire::Writer hello(wire::Kind::Hello);
    hello.bytes(shownPath_).bytes(configJson_);
    {
        std::lock_guard wlock(w.writeMutex);
        if (!wire::writeAll(process.socket(), hello.frame())) return false;
    }
    if (!process.awaitFrame()) return false;
    auto frame = wire::readFrame(process.socket());
    if (!frame || frame->kind != wire::Kind::Ready) return false;
    wire::Reader r(frame->payload);
    bool ok = r.u8() != 0;
    std::string error(r.bytes());
    std::string descName(r.bytes());
    std::lock_guard lock(mutex_);
    if (ok) {
        w.ready = true;
        if (descriptorName_.empty()) descriptorName_ = descName;
    } else if (startError_.empty()) {
        startError_ = error;
    }
    cv_.notify_all();
    return ok;
}

// A ready worker's frames until it ends: results, and host API calls answered.
void IsolatedPlugin::relayFrames(Worker &w, IsolatedWorkerProcess &process) {
    std::string reply;
    for (;;) {
        if (!process.awaitFrame()) {  // the worker ended (its process group goes with it)
            kill(-process.pid(), SIGKILL);
            return;
        }
        auto frame = wire::readFrame(process.socket());
        if (!frame) return;
        if (frame->kind == wire::Kind::Result) {
            takeResult(w, frame->payload);
        } else if (frame->kind == wire::Kind::Call) {
            if (!answerHostCall(host_->operations.get(), frame->payload, reply)) return;
            if (reply.empty()) continue;
            std::lock_guard wlock(w.writeMutex);
            if (!wire::writeAll(process.socket(), reply)) return;
        }
    }
}

void IsolatedPlugin::takeResult(Worker &w, std::string_view payload) {
    wire::Reader r(payload);
    IsolatedReply reply;
    uint64_t seq = r.u64();
    reply.rc = static_cast<int>(r.i64());
    reply.status = static_cast<int>(r.i64());
    reply.body = r.bytes();
    uint8_t bodyFlags = r.u8();
    reply.binary = (bodyFlags & 1) != 0;
    reply.hasBody = (bodyFlags & 2) != 0;
    reply.failure = r.bytes();
    std::lock_guard lock(mutex_);
    if (w.busy && seq == w.seq && !w.haveResult) {
        w.result = std::move(reply);
        w.haveResult = true;
        cv_.notify_all();
    }
}

// The process is gone or going: reap it and fail the invocation it was running, if any.
void IsolatedPlugin::endProcess(Worker &w, IsolatedWorkerProcess &process, bool wasReady) {
    pid_t pid = process.pid();
    std::string how = describeExit(process.reap());
    bool expected, stopping;
    {
        std::lock_guard lock(mutex_);
        stopping = stopping_;  // read under the lock: the destructor sets it from another thread
        expected = stopping || w.retiring;
        if (w.busy && !w.haveResult) {
            w.result = IsolatedReply{};
            w.result.rc = -1;
            w.result.failure = "isolated worker process " + how;
            w.result.workerDied = true;
            w.haveResult = true;
        }
        w.ready = false;
        w.pid = -1;
        {
            std::lock_guard wlock(w.writeMutex);
            process.closeSocket();
            w.fd = -1;
        }
        cv_.notify_all();
    }
    if (wasReady && !expected) {
        log::warn("isolated worker ended; starting a new one",
                  {log::Field("handler", instance_), log::Field("pid", static_cast<int64_t>(pid)), log::Field("how", how)});
    } else if (!wasReady && !stopping) {
        log::error("isolated worker could not load its plugin", {log::Field("handler", instance_), log::Field("how", how)});
    }
}

IsolatedPlugin::Worker *IsolatedPlugin::idleWorker() {
    for (auto &c : workers_)
        if (c->ready && !c->busy && !c->retiring) return c.get();
    return nullptr;
}

IsolatedReply IsolatedPlugin::invoke(const InvocationEvent &event, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    Worker *w = nullptr;
    auto pick = [&] {
        w = idleWorker();
        return w || stopping_;
    };
    if (!cv_.wait_until(lock, deadline, pick) || !w) {
        IsolatedReply r;
        r.rc = -1;
        r.failure = stopping_ ? "the gateway is stopping" : "no isolated worker became free before the deadline";
        r.timedOut = !stopping_;
        return r;
    }
    w->busy = true;
    w->haveResult = false;
    uint64_t seq = ++w->seq;
    int fd = w->fd;
    pid_t pid = w->pid;
    lock.unlock();

    std::string eventJson = buildEventJson(*event.connection, event.fields);
    wire::Writer frame(wire::Kind::Invoke);
    frame.u64(seq).u8(static_cast<uint8_t>(event.ev.type)).bytes(event.ev.route_key ? event.ev.route_key : "")
        .bytes(event.ev.connection_id ? event.ev.connection_id : "")
        .bytes(event.ev.body ? std::string_view(event.ev.body, event.ev.body_len) : std::string_view())
        .u8(event.ev.is_binary ? 1 : 0)
        .bytes(eventJson);
    {
        std::lock_guard wlock(w->writeMutex);
        // A failed write means the worker died; its supervisor fills in the result below.
        if (w->fd == fd) wire::writeAll(fd, frame.frame());
    }

    lock.lock();
    if (!cv_.wait_until(lock, deadline, [&] { return w->haveResult; })) return killTimedOut(lock, *w, pid);
    IsolatedReply r = std::move(w->result);
    w->busy = false;
    w->haveResult = false;
    replaceIfNearMemoryLimit(*w, r);
    cv_.notify_all();
    return r;
}

// Killing the worker is the only way to take back a handler that does not return; its supervisor reaps it,
// drops this invocation's late result and starts a new process.
IsolatedReply IsolatedPlugin::killTimedOut(std::unique_lock<std::mutex> &lock, Worker &w, pid_t pid) {
    w.retiring = true;
    if (w.pid == pid && pid > 0) {
        kill(-pid, SIGKILL);  // its process group: a child the plugin forked holds the worker's socket open
        log::warn("isolated worker killed: its invocation ran past the route's timeout",
                  {log::Field("handler", instance_), log::Field("pid", static_cast<int64_t>(pid))});
    }
    IsolatedReply r;
    r.rc = -1;
    r.failure = "timed out; isolated worker process " + std::to_string(pid) + " killed";
    r.timedOut = true;
    // busy stays set until the supervisor has reaped it, so nobody else is handed the dying worker.
    cv_.wait(lock, [&] { return w.haveResult; });
    w.busy = false;
    w.haveResult = false;
    cv_.notify_all();
    return r;
}

void IsolatedPlugin::replaceIfNearMemoryLimit(Worker &w, const IsolatedReply &r) {
    if (!maxMemoryBytes_ || !w.ready || w.pid <= 0) return;
    // RLIMIT_DATA already stopped the invocation at the limit. What the plugin kept counts against the next
    // invocations, so a worker left holding most of its budget is replaced and the next one starts with all
    // of it: over 3/4 of the budget in use, or over half after a failed invocation (it likely failed for want
    // of memory). Where the limit cannot be read, resident memory past it decides.
    WorkerMemoryUse use = workerMemoryUse(w.pid, maxMemoryBytes_);
    bool replace = use.limit ? use.used > maxMemoryBytes_ / 4 * 3 || (r.rc != 0 && use.used > maxMemoryBytes_ / 2)
                             : use.resident > maxMemoryBytes_;
    if (!replace) return;
    w.retiring = true;
    log::warn("isolated worker near its memory limit; replacing it",
              {log::Field("handler", instance_), log::Field("pid", static_cast<int64_t>(w.pid)),
               log::Field("usedMb", static_cast<uint64_t>(use.used >> 20)),
               log::Field("residentMb", static_cast<uint64_t>(use.resident >> 20)),
               log::Field("maxWorkerMemoryMb", static_cast<uint64_t>(maxMemoryBytes_ >> 20)),
               log::Field("invocationFailed", r.rc != 0)});
    wire::Writer bye(wire::Kind::Shutdown);
    std::lock_guard wlock(w.writeMutex);
    if (w.fd >= 0) wire::writeAll(w.fd, bye.frame());
}

}  // namespace wsgw
