#include "isolated_plugin.h"

#include "exit_status.h"
#include "host_api_checks.h"
#include "log.h"
#include "plugin_wire.h"
#include "process_output.h"
#include "proc_status.h"
#include "restart_backoff.h"
#include "thread_shortage.h"
#include "webpubsub_clients.h"

#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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

namespace {

// The worker's environment: ours, with the sanitizers told to leave crashes to the plugin's own fate
// (a plugin that segfaults on purpose must end its process quietly, not as a sanitizer report). An
// allocation refused at maxWorkerMemoryMb must return NULL (or throw bad_alloc) as it does in a plain
// build, not end the worker with a sanitizer's out-of-memory report.
std::vector<std::string> workerEnvironment() {
    std::vector<std::string> env;
    std::string asan = "ASAN_OPTIONS=", tsan = "TSAN_OPTIONS=";
    for (char **e = environ; *e; ++e) {
        if (std::strncmp(*e, "ASAN_OPTIONS=", 13) == 0) {
            asan = *e;
            asan += ':';
        } else if (std::strncmp(*e, "TSAN_OPTIONS=", 13) == 0) {
            tsan = *e;
            tsan += ':';
        } else {
            env.emplace_back(*e);
        }
    }
    asan += "detect_leaks=0:handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:handle_sigill=0:"
            "allocator_may_return_null=1";
    tsan += "allocator_may_return_null=1";
    env.push_back(asan);
    env.push_back(tsan);
    return env;
}

int highFd(int fd) {
    if (fd >= 10) return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return moved;
}

// The RLIMIT_DATA the worker set on itself (its start-up memory plus maxWorkerMemoryMb); 0 when unknown.
size_t dataLimitBytes(pid_t pid) {
    rlimit lim{};
    if (prlimit(pid, RLIMIT_DATA, nullptr, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 0;
    return static_cast<size_t>(lim.rlim_cur);
}

size_t residentBytes(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
    FILE *f = std::fopen(path, "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    return n == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

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
    for (auto &w : pool->workers_) {
        Worker *wp = w.get();
        try {
            w->supervisor = std::thread([p = pool.get(), wp] { p->supervise(*wp); });
        } catch (const std::system_error &e) {
            // EAGAIN from a pids cgroup or RLIMIT_NPROC: refused, never an abort (~IsolatedPlugin stops the
            // supervisors already started).
            return threadShortage("a supervisor thread for its worker processes", e);
        }
    }
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
    RestartBackoff backoff;
    bool everReady = false;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            if (backoff.delay().count() > 0) cv_.wait_for(lock, backoff.delay(), [&] { return stopping_; });
            if (stopping_) return;
        }
        bool becameReady = serve(w);
        everReady = everReady || becameReady;
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            if (!becameReady && !everReady) {
                ++startFailures_;
                cv_.notify_all();
                if (startFailures_ >= workers_.size()) return;  // nobody can load it: start() reports why
            }
        }
        backoff.afterEnd(becameReady);  // a worker that cannot start or keeps crashing comes back ever slower
    }
}

bool IsolatedPlugin::serve(Worker &w) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        log::error("isolated handler: socketpair failed", {log::Field("handler", instance_), log::Field("error", std::strerror(errno))});
        return false;
    }
    int mine = highFd(sv[0]), theirs = highFd(sv[1]);
    // What the plugin prints goes to a pipe and becomes log lines (process_output.h): the worker's stdout is
    // otherwise the gateway's, a stream of JSON log lines that a plugin's printf would break.
    int outPipe[2];
    if (pipe2(outPipe, O_CLOEXEC) != 0) {
        log::error("isolated handler: pipe failed", {log::Field("handler", instance_), log::Field("error", std::strerror(errno))});
        close(mine);
        close(theirs);
        return false;
    }
    int pluginFd = pluginFd_;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, theirs, 3);
    posix_spawn_file_actions_adddup2(&actions, pluginFd, 4);
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1);
    std::vector<std::string> env = workerEnvironment();
    std::vector<char *> envp;
    for (auto &e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", flag = "--plugin-host", name = instance_;
    std::string memoryBudget = std::to_string(maxMemoryBytes_);  // the worker sets RLIMIT_DATA from it
    char *argv[] = {exe.data(), flag.data(), name.data(), memoryBudget.data(), nullptr};
    // Its own process group, so that what the plugin forks is killed with it: a forked child inherits the
    // worker's end of the socket, and as long as it lives the supervisor would never see the worker go.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, exe.c_str(), &actions, &attr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(theirs);
    close(outPipe[1]);
    ProcessOutput output("stdout", outPipe[0]);
    if (rc != 0) {
        close(mine);
        log::error("isolated handler: cannot start a worker process",
                   {log::Field("handler", instance_), log::Field("error", std::strerror(rc))});
        return false;
    }
    bool stoppedMeanwhile;
    {
        std::lock_guard lock(mutex_);
        w.pid = pid;
        w.fd = mine;
        w.retiring = false;
        // The destructor may have looked at the workers before this one existed (a start that failed
        // part-way, e.g. for want of threads): it would neither shut it down nor kill it, so it goes now.
        stoppedMeanwhile = stopping_;
    }

    // The worker's end may be held open by a child the plugin forked: its exit (the pidfd) ends the wait too.
    int pidFd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    // Waits until the worker's socket has something to read, logging what the worker prints meanwhile (a
    // plugin printing more than a pipe holds must not stall on it); false once the worker has ended.
    auto awaitFrame = [&]() -> bool {
        for (;;) {
            pollfd fds[3] = {{mine, POLLIN, 0}, {pidFd, POLLIN, 0}, {output.fd(), POLLIN, 0}};
            if (poll(fds, 3, -1) < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            if (fds[2].revents) output.drain("handler", instance_, "");
            if (fds[0].revents) return true;
            if (fds[1].revents) return false;
        }
    };

    bool ready = false;
    wire::Writer hello(wire::Kind::Hello);
    hello.bytes(shownPath_).bytes(configJson_);
    bool sent = false;
    if (!stoppedMeanwhile) {
        std::lock_guard wlock(w.writeMutex);
        sent = wire::writeAll(mine, hello.frame());
    }
    if (sent && awaitFrame()) {
        if (auto frame = wire::readFrame(mine); frame && frame->kind == wire::Kind::Ready) {
            wire::Reader r(frame->payload);
            bool ok = r.u8() != 0;
            std::string error(r.bytes());
            std::string descName(r.bytes());
            std::lock_guard lock(mutex_);
            if (ok) {
                ready = true;
                w.ready = true;
                if (descriptorName_.empty()) descriptorName_ = descName;
            } else if (startError_.empty()) {
                startError_ = error;
            }
            cv_.notify_all();
        }
    }
    if (ready) {
        log::info("isolated worker started", {log::Field("handler", instance_), log::Field("worker", static_cast<uint64_t>(w.index)),
                                               log::Field("pid", static_cast<int64_t>(pid))});
    }

    while (ready) {
        if (!awaitFrame()) {  // the worker ended (its process group goes with it)
            kill(-pid, SIGKILL);
            break;
        }
        auto frame = wire::readFrame(mine);
        if (!frame) break;
        wire::Reader r(frame->payload);
        if (frame->kind == wire::Kind::Result) {
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
        } else if (frame->kind == wire::Kind::Call) {
            uint64_t id = r.u64();
            auto op = static_cast<wire::CallOp>(r.u8());
            std::string connectionId(r.bytes());
            std::string_view data = r.bytes();
            int64_t flag = r.i64();
            if (!r.ok()) break;
            // The worker checked the plugin's arguments already; making the same checked calls here keeps
            // whatever a plugin scribbles on its worker's socket (an empty group, say) from going further.
            HostOperations *ops = host_->operations.get();
            const char *target = connectionId.c_str();  // a connection ID, or the group of SendGroup
            int64_t result = WSGW_ERROR;
            std::string out;
            switch (op) {
            case wire::CallOp::Post: result = checkedPost(ops, target, data.data(), data.size(), flag != 0); break;
            case wire::CallOp::Delete: result = checkedDelete(ops, target); break;
            case wire::CallOp::Get: result = checkedDescribe(ops, target, out) ? 0 : -1; break;
            case wire::CallOp::Join: result = checkedAddToGroup(ops, std::string(data).c_str(), target); break;
            case wire::CallOp::Leave: result = checkedRemoveFromGroup(ops, std::string(data).c_str(), target); break;
            case wire::CallOp::SendGroup: result = checkedSendToGroup(ops, target, data.data(), data.size(), flag != 0); break;
            case wire::CallOp::SendAll: result = checkedSendToAll(ops, data.data(), data.size(), flag != 0); break;
#ifdef WSGW_HOST_API_HAS_USERS
            case wire::CallOp::SendUser: result = checkedSendToUser(ops, target, data.data(), data.size(), flag != 0); break;
#endif
            case wire::CallOp::Log:
                checkedLog(ops, static_cast<int>(flag), std::string(data).c_str());
                continue;  // no reply
            }
            wire::Writer reply(wire::Kind::CallReply);
            reply.u64(id).i64(result).bytes(out);
            std::lock_guard wlock(w.writeMutex);
            if (!wire::writeAll(mine, reply.frame())) break;
        }
    }

    // The process is gone or going: reap it and fail the invocation it was running, if any.
    if (pidFd >= 0) close(pidFd);
    kill(-pid, SIGKILL);  // what it forked and left in its group (the group outlives it until it is reaped)
    shutdown(mine, SHUT_RDWR);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    output.drain("handler", instance_, "");  // its last words
    output.flush("handler", instance_, "");
    std::string how = describeExit(status);
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
            close(mine);
            w.fd = -1;
        }
        cv_.notify_all();
    }
    if (ready && !expected) {
        log::warn("isolated worker ended; starting a new one",
                  {log::Field("handler", instance_), log::Field("pid", static_cast<int64_t>(pid)), log::Field("how", how)});
    } else if (!ready && !stopping) {
        log::error("isolated worker could not load its plugin", {log::Field("handler", instance_), log::Field("how", how)});
    }
    return ready;
}

IsolatedReply IsolatedPlugin::invoke(const InvocationEvent &event, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    Worker *w = nullptr;
    auto pick = [&] {
        for (auto &c : workers_) {
            if (c->ready && !c->busy && !c->retiring) {
                w = c.get();
                return true;
            }
        }
        return stopping_;
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
    if (!cv_.wait_until(lock, deadline, [&] { return w->haveResult; })) {
        // Killing the worker is the only way to take back a handler that does not return; its
        // supervisor reaps it, drops this invocation's late result and starts a new process.
        w->retiring = true;
        if (w->pid == pid && pid > 0) {
            kill(-pid, SIGKILL);  // its process group: a child the plugin forked holds the worker's socket open
            log::warn("isolated worker killed: its invocation ran past the route's timeout",
                      {log::Field("handler", instance_), log::Field("pid", static_cast<int64_t>(pid))});
        }
        IsolatedReply r;
        r.rc = -1;
        r.failure = "timed out; isolated worker process " + std::to_string(pid) + " killed";
        r.timedOut = true;
        // busy stays set until the supervisor has reaped it, so nobody else is handed the dying worker.
        cv_.wait(lock, [&] { return w->haveResult; });
        w->busy = false;
        w->haveResult = false;
        cv_.notify_all();
        return r;
    }
    IsolatedReply r = std::move(w->result);
    w->busy = false;
    w->haveResult = false;
    if (maxMemoryBytes_ && w->ready && w->pid > 0) {
        // RLIMIT_DATA already stopped the invocation at the limit. What the plugin kept counts against the
        // next invocations, so a worker left holding most of its budget is replaced and the next one starts
        // with all of it: over 3/4 of the budget in use, or over half after a failed invocation (it likely
        // failed for want of memory). Where the limit cannot be read, resident memory past it decides.
        size_t limit = dataLimitBytes(w->pid);
        size_t data = limit ? procStatusBytes(w->pid, "VmData") : 0;
        size_t startup = limit > maxMemoryBytes_ ? limit - maxMemoryBytes_ : 0;  // what the worker had before the plugin
        size_t used = data > startup ? data - startup : 0;
        size_t rss = residentBytes(w->pid);
        bool replace = limit ? used > maxMemoryBytes_ / 4 * 3 || (r.rc != 0 && used > maxMemoryBytes_ / 2)
                             : rss > maxMemoryBytes_;
        if (replace) {
            w->retiring = true;
            log::warn("isolated worker near its memory limit; replacing it",
                      {log::Field("handler", instance_), log::Field("pid", static_cast<int64_t>(w->pid)),
                       log::Field("usedMb", static_cast<uint64_t>(used >> 20)),
                       log::Field("residentMb", static_cast<uint64_t>(rss >> 20)),
                       log::Field("maxWorkerMemoryMb", static_cast<uint64_t>(maxMemoryBytes_ >> 20)),
                       log::Field("invocationFailed", r.rc != 0)});
            wire::Writer bye(wire::Kind::Shutdown);
            std::lock_guard wlock(w->writeMutex);
            if (w->fd >= 0) wire::writeAll(w->fd, bye.frame());
        }
    }
    cv_.notify_all();
    return r;
}

}  // namespace wsgw
