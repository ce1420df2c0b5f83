#include "plugin_host.h"

#include "host_api_checks.h"
#include "plugin_registry.h"
#include "plugin_wire.h"
#include "proc_status.h"

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <exception>
#include <future>
#include <map>
#include <mutex>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr int kSocketFd = 3;
constexpr int kPluginFd = 4;

// The worker's end of the host API: every call that passed the checks (host_api_checks.cpp) becomes a
// Call frame answered by the gateway, which makes the same checked call on its side.
struct WorkerHost final : HostOperations {
    wsgw_host_api api{};
    std::mutex writeMutex;
    std::mutex callsMutex;
    uint64_t nextCallId = 1;
    std::map<uint64_t, std::promise<std::pair<int64_t, std::string>>> calls;
    // The invocation being handled: event_json answers only for its event, found by address.
    std::atomic<const wsgw_event *> currentEvent{nullptr};
    std::string currentEventJson;

    bool send(wire::Writer &w) {
        std::lock_guard lock(writeMutex);
        return wire::writeAll(kSocketFd, w.frame());
    }

    std::pair<int64_t, std::string> call(wire::CallOp op, const char *target, std::string_view data, int64_t flag) {
        std::future<std::pair<int64_t, std::string>> reply;
        uint64_t id;
        {
            std::lock_guard lock(callsMutex);
            id = nextCallId++;
            reply = calls[id].get_future();
        }
        wire::Writer w(wire::Kind::Call);
        w.u64(id).u8(static_cast<uint8_t>(op)).bytes(target).bytes(data).i64(flag);
        if (!send(w)) {
            std::lock_guard lock(callsMutex);
            calls.erase(id);
            return {op == wire::CallOp::Get ? -1 : WSGW_ERROR, {}};
        }
        return reply.get();
    }
    int rcOf(wire::CallOp op, const char *target, std::string_view data, int64_t flag) {
        return static_cast<int>(call(op, target, data, flag).first);
    }

    void replied(uint64_t id, int64_t rc, std::string data) {
        std::lock_guard lock(callsMutex);
        auto it = calls.find(id);
        if (it == calls.end()) return;
        it->second.set_value({rc, std::move(data)});
        calls.erase(it);
    }

    int post(const char *id, std::string_view data, bool binary) override { return rcOf(wire::CallOp::Post, id, data, binary); }
    int deleteConnection(const char *id) override { return rcOf(wire::CallOp::Delete, id, {}, 0); }
    bool describe(const char *id, std::string &json) override {
        auto [rc, text] = call(wire::CallOp::Get, id, {}, 0);
        if (rc < 0) return false;
        json = std::move(text);
        return true;
    }
    const char *eventJson(const wsgw_event &ev, size_t *len) override {
        if (&ev != currentEvent.load(std::memory_order_acquire)) return nullptr;
        if (len) *len = currentEventJson.size();
        return currentEventJson.c_str();
    }
    int addToGroup(const char *group, const char *id) override { return rcOf(wire::CallOp::Join, id, group, 0); }
    int removeFromGroup(const char *group, const char *id) override { return rcOf(wire::CallOp::Leave, id, group, 0); }
    int sendToGroup(const char *group, std::string_view data, bool binary) override {
        return rcOf(wire::CallOp::SendGroup, group, data, binary);
    }
    int sendToAll(std::string_view data, bool binary) override { return rcOf(wire::CallOp::SendAll, "", data, binary); }
#ifdef WSGW_HOST_API_HAS_USERS
    int sendToUser(const char *userId, std::string_view data, bool binary) override {
        return rcOf(wire::CallOp::SendUser, userId, data, binary);
    }
#endif
    void log(int level, const char *message) override {
        wire::Writer w(wire::Kind::Call);
        w.u64(0).u8(static_cast<uint8_t>(wire::CallOp::Log)).bytes("").bytes(message).i64(level);
        send(w);  // no reply: a line lost with the gateway does not matter
    }
};

WorkerHost *g_host = nullptr;  // one per worker process; whatever wsgw_host* the plugin passes, calls go here

HostOperations *workerOperations(wsgw_host *) { return g_host; }

// maxWorkerMemoryMb as a hard limit: RLIMIT_DATA bounds this process's private writable memory (heap,
// anonymous mappings, thread stacks), so an allocation past it fails inside the worker at once instead of
// being noticed after the invocation. The plugin gets the whole budget on top of what this process uses
// before loading it (a few MB; sanitizer builds reserve far more, which must not count against it).
// The hard limit is lowered too, so the plugin cannot raise it.
std::string limitMemory(size_t budgetBytes) {
    size_t base = procStatusBytes(0, "VmData");
    rlimit lim{};
    lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(base + budgetBytes);
    if (setrlimit(RLIMIT_DATA, &lim) != 0) return std::string("setrlimit(RLIMIT_DATA): ") + std::strerror(errno);
    return {};
}

struct HostInvocation {
    uint64_t seq = 0;
    wsgw_event_type type = WSGW_MESSAGE;
    std::string routeKey, connectionId, body, eventJson;
    bool binary = false;
};

// The plugin this worker runs: set before Ready, and read by the executor only after (the gateway sends no
// invocation before Ready).
struct LoadedPlugin {
    const wsgw_handler *desc = nullptr;
    void *state = nullptr;
};

// Runs one invocation and sends its Result; a gateway that is gone ends the process.
void runHostInvocation(WorkerHost &host, const LoadedPlugin &plugin, HostInvocation &inv) {
    wsgw_event ev{};
    ev.size = sizeof ev;
    ev.type = inv.type;
    ev.route_key = inv.routeKey.c_str();
    ev.connection_id = inv.connectionId.c_str();
    if (inv.type == WSGW_MESSAGE) {
        ev.body = inv.body.data();
        ev.body_len = inv.body.size();
        ev.is_binary = inv.binary ? 1 : 0;
    }
    host.currentEventJson = std::move(inv.eventJson);
    host.currentEvent.store(&ev, std::memory_order_release);
    wsgw_response resp{};
    resp.size = sizeof resp;
    resp.status_code = 200;
    std::string failure;
    int rc = callHandler(plugin.desc, plugin.state, &ev, &resp, failure);
    host.currentEvent.store(nullptr, std::memory_order_release);
    // Bit 0: binary; bit 1: a body was given (a non-NULL empty body is an empty message, NULL is none).
    uint8_t bodyFlags = (resp.is_binary ? 1 : 0) | (resp.body ? 2 : 0);
    wire::Writer w(wire::Kind::Result);
    w.u64(inv.seq).i64(rc).i64(resp.status_code)
        .bytes(resp.body && resp.body_len ? std::string_view(resp.body, resp.body_len) : std::string_view())
        .u8(bodyFlags)
        .bytes(failure);
    if (!host.send(w)) _exit(0);
}

// The thread that runs invocations, one at a time (the gateway sends one at a time), while the main
// thread reads. It starts before the memory limit is set, so its stack is not taken from the plugin's budget.
class WorkerExecutor {
public:
    WorkerExecutor(WorkerHost &host, const LoadedPlugin &plugin) : thread_([this, &host, &plugin] { run(host, plugin); }) {}
    void push(HostInvocation inv) {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(inv));
        }
        cv_.notify_one();
    }
    // Runs what is queued, then ends the thread.
    void finish() {
        {
            std::lock_guard lock(mutex_);
            shuttingDown_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    void run(WorkerHost &host, const LoadedPlugin &plugin) {
        for (;;) {
            HostInvocation inv;
            {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [&] { return shuttingDown_ || !queue_.empty(); });
                if (queue_.empty()) return;
                inv = std::move(queue_.front());
                queue_.pop_front();
            }
            runHostInvocation(host, plugin, inv);
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<HostInvocation> queue_;
    bool shuttingDown_ = false;
    std::thread thread_;  // last: starts once the rest is made
};

bool sendReady(WorkerHost &host, bool ok, const std::string &error, const char *name) {
    wire::Writer w(wire::Kind::Ready);
    w.u8(ok ? 1 : 0).bytes(error).bytes(name ? name : "");
    return host.send(w);
}

// Refusals leave with _exit: the executor is still waiting, and nothing here needs unwinding.
[[noreturn]] void refuseStart(WorkerHost &host, const std::string &error) {
    sendReady(host, false, error, nullptr);
    std::fflush(nullptr);
    _exit(4);
}

// Limits the memory (argv[3], "--plugin-host NAME MAX_MEMORY_BYTES" from isolated_plugin.cpp), opens the
// plugin passed as fd 4 and runs its init. Refuses (and exits) on any failure.
void loadWorkerPlugin(WorkerHost &host, int argc, char **argv, const std::string &shownPath, const std::string &configJson,
                      LoadedPlugin &plugin) {
    if (argc > 3) {
        size_t budget = std::strtoull(argv[3], nullptr, 10);
        if (budget > 0) {
            if (std::string err = limitMemory(budget); !err.empty()) refuseStart(host, "cannot limit the worker's memory: " + err);
        }
    }
    void *library = nullptr;
    auto opened = openPluginLibrary("/proc/self/fd/" + std::to_string(kPluginFd), shownPath, &library);
    if (auto *err = std::get_if<std::string>(&opened)) refuseStart(host, *err);
    plugin.desc = std::get<const wsgw_handler *>(opened);
    if (plugin.desc->init) {
        try {
            plugin.state = plugin.desc->init(&host.api, configJson.c_str());
        } catch (const std::exception &e) {
            refuseStart(host, std::string("threw from init: ") + e.what());
        } catch (...) {
            refuseStart(host, "threw from init");
        }
    }
}

void answerCallReply(WorkerHost &host, wire::Reader &r) {
    uint64_t id = r.u64();
    int64_t rc = r.i64();
    std::string data(r.bytes());
    host.replied(id, rc, std::move(data));
}

// Reads the gateway's frames until Shutdown: invocations go to the executor, replies to the calls waiting.
void serveGatewayFrames(WorkerHost &host, WorkerExecutor &executor) {
    for (;;) {
        auto frame = wire::readFrame(kSocketFd);
        if (!frame) _exit(0);  // the gateway is gone: nothing to hand results to
        wire::Reader r(frame->payload);
        if (frame->kind == wire::Kind::Invoke) {
            HostInvocation inv;
            inv.seq = r.u64();
            inv.type = static_cast<wsgw_event_type>(r.u8());
            inv.routeKey = r.bytes();
            inv.connectionId = r.bytes();
            inv.body = r.bytes();
            inv.binary = r.u8() != 0;
            inv.eventJson = r.bytes();
            if (!r.ok()) _exit(3);
            executor.push(std::move(inv));
        } else if (frame->kind == wire::Kind::CallReply) {
            answerCallReply(host, r);
        } else if (frame->kind == wire::Kind::Shutdown) {
            return;
        }
    }
}

// Runs the plugin's shutdown and ends the process. Plugin threads may still call the host while shutdown
// joins them: a thread keeps answering until it returns.
[[noreturn]] void shutDownWorker(WorkerHost &host, const LoadedPlugin &plugin) {
    std::thread replies([&host] {
        for (;;) {
            auto frame = wire::readFrame(kSocketFd);
            if (!frame) return;
            if (frame->kind != wire::Kind::CallReply) continue;
            wire::Reader r(frame->payload);
            answerCallReply(host, r);
        }
    });
    if (plugin.desc->size >= sizeof(wsgw_handler) && plugin.desc->shutdown) {
        try {
            plugin.desc->shutdown(plugin.state);
        } catch (...) {
        }
    }
    std::fflush(nullptr);
    _exit(0);  // the reply reader is still blocked in read(): leave without unwinding it
}

}  // namespace

int runPluginHost(int argc, char **argv) {
    // The gateway reaps us; a crash must end this process, not be caught by anything of ours.
    std::signal(SIGPIPE, SIG_IGN);
    WorkerHost host;
    g_host = &host;
    // The plugin's wsgw_host* is opaque to it and ignored here (there is one host per worker process).
    fillHostApi<workerOperations>(host.api, reinterpret_cast<wsgw_host *>(&host));

    auto hello = wire::readFrame(kSocketFd);
    if (!hello || hello->kind != wire::Kind::Hello) return 3;
    wire::Reader hr(hello->payload);
    std::string shownPath(hr.bytes());
    std::string configJson(hr.bytes());

    LoadedPlugin plugin;
    WorkerExecutor executor(host, plugin);
    loadWorkerPlugin(host, argc, argv, shownPath, configJson, plugin);
    if (!sendReady(host, true, {}, plugin.desc->name)) _exit(3);
    serveGatewayFrames(host, executor);
    executor.finish();
    shutDownWorker(host, plugin);
}

}  // namespace wsgw
