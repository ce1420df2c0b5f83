#include "plugin_host.h"

#include "plugin_registry.h"
#include "plugin_wire.h"

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <exception>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr int kSocketFd = 3;
constexpr int kPluginFd = 4;

// The worker's end of the host API: every call becomes a Call frame answered by the gateway.
struct WorkerHost {
    wsgw_host_api api{};
    std::mutex writeMutex;
    std::mutex callsMutex;
    uint64_t nextCallId = 1;
    std::map<uint64_t, std::promise<std::pair<int64_t, std::string>>> calls;
    // The invocation being handled: event_json answers only for its event.
    const wsgw_event *currentEvent = nullptr;
    std::string currentEventJson;

    bool send(wire::Writer &w) {
        std::lock_guard lock(writeMutex);
        return wire::writeAll(kSocketFd, w.frame());
    }

    std::pair<int64_t, std::string> call(wire::CallOp op, const char *connectionId, std::string_view data, int64_t flag) {
        std::future<std::pair<int64_t, std::string>> reply;
        uint64_t id;
        {
            std::lock_guard lock(callsMutex);
            id = nextCallId++;
            reply = calls[id].get_future();
        }
        wire::Writer w(wire::Kind::Call);
        w.u64(id).u8(static_cast<uint8_t>(op)).bytes(connectionId ? connectionId : "").bytes(data).i64(flag);
        if (!send(w)) {
            std::lock_guard lock(callsMutex);
            calls.erase(id);
            return {op == wire::CallOp::Get ? -1 : WSGW_ERROR, {}};
        }
        return reply.get();
    }

    void replied(uint64_t id, int64_t rc, std::string data) {
        std::lock_guard lock(callsMutex);
        auto it = calls.find(id);
        if (it == calls.end()) return;
        it->second.set_value({rc, std::move(data)});
        calls.erase(it);
    }
};

WorkerHost *g_host = nullptr;  // one per worker process; the plugin's wsgw_host* points at it

int hostPost(wsgw_host *, const char *id, const void *data, size_t len, int isBinary) {
    if (!id || (!data && len)) return WSGW_ERROR;
    return static_cast<int>(g_host->call(wire::CallOp::Post, id, std::string_view(static_cast<const char *>(data), len), isBinary).first);
}

int hostDelete(wsgw_host *, const char *id) {
    if (!id) return WSGW_ERROR;
    return static_cast<int>(g_host->call(wire::CallOp::Delete, id, {}, 0).first);
}

long hostGet(wsgw_host *, const char *id, char *buf, size_t cap) {
    if (!id) return -1;
    auto [rc, json] = g_host->call(wire::CallOp::Get, id, {}, 0);
    if (rc < 0) return -1;
    return copyOut(json, buf, cap);
}

int hostAddToGroup(wsgw_host *, const char *group, const char *id) {
    if (!group || !id) return WSGW_ERROR;
    return static_cast<int>(g_host->call(wire::CallOp::Join, id, group, 0).first);
}

int hostRemoveFromGroup(wsgw_host *, const char *group, const char *id) {
    if (!group || !id) return WSGW_ERROR;
    return static_cast<int>(g_host->call(wire::CallOp::Leave, id, group, 0).first);
}

int hostSendToGroup(wsgw_host *, const char *group, const void *data, size_t len, int isBinary) {
    if (!group || !*group || (!data && len)) return WSGW_ERROR;
    return static_cast<int>(
        g_host->call(wire::CallOp::SendGroup, group, std::string_view(static_cast<const char *>(data), len), isBinary).first);
}

int hostSendToAll(wsgw_host *, const void *data, size_t len, int isBinary) {
    if (!data && len) return WSGW_ERROR;
    return static_cast<int>(g_host->call(wire::CallOp::SendAll, "", std::string_view(static_cast<const char *>(data), len), isBinary).first);
}

const char *hostEventJson(wsgw_host *, const wsgw_event *ev, size_t *len) {
    if (!ev || ev != g_host->currentEvent) return nullptr;
    if (len) *len = g_host->currentEventJson.size();
    return g_host->currentEventJson.c_str();
}

void hostLog(wsgw_host *, int level, const char *message) {
    wire::Writer w(wire::Kind::Call);
    w.u64(0).u8(static_cast<uint8_t>(wire::CallOp::Log)).bytes("").bytes(message ? message : "").i64(level);
    g_host->send(w);
}

struct Invocation {
    uint64_t seq = 0;
    wsgw_event_type type = WSGW_MESSAGE;
    std::string routeKey, connectionId, body, eventJson;
    bool binary = false;
};

}  // namespace

int runPluginHost(int argc, char **argv) {
    // The gateway reaps us; a crash must end this process, not be caught by anything of ours.
    std::signal(SIGPIPE, SIG_IGN);
    std::string instance = argc > 2 ? argv[2] : "?";
    WorkerHost host;
    g_host = &host;
    host.api.size = sizeof(wsgw_host_api);
    host.api.abi_version = WSGW_ABI_VERSION;
    host.api.host = reinterpret_cast<wsgw_host *>(&host);
    host.api.post_to_connection = hostPost;
    host.api.delete_connection = hostDelete;
    host.api.get_connection = hostGet;
    host.api.event_json = hostEventJson;
    host.api.log = hostLog;
    host.api.add_to_group = hostAddToGroup;
    host.api.remove_from_group = hostRemoveFromGroup;
    host.api.send_to_group = hostSendToGroup;
    host.api.send_to_all = hostSendToAll;

    auto hello = wire::readFrame(kSocketFd);
    if (!hello || hello->kind != wire::Kind::Hello) return 3;
    wire::Reader hr(hello->payload);
    std::string shownPath(hr.bytes());
    std::string configJson(hr.bytes());

    auto ready = [&](bool ok, const std::string &error, const char *name) {
        wire::Writer w(wire::Kind::Ready);
        w.u8(ok ? 1 : 0).bytes(error).bytes(name ? name : "");
        return host.send(w);
    };
    void *library = nullptr;
    auto opened = openPluginLibrary("/proc/self/fd/" + std::to_string(kPluginFd), shownPath, &library);
    if (auto *err = std::get_if<std::string>(&opened)) {
        ready(false, *err, nullptr);
        return 4;
    }
    const wsgw_handler *desc = std::get<const wsgw_handler *>(opened);
    void *state = nullptr;
    if (desc->init) {
        try {
            state = desc->init(&host.api, configJson.c_str());
        } catch (const std::exception &e) {
            ready(false, std::string("threw from init: ") + e.what(), nullptr);
            return 4;
        } catch (...) {
            ready(false, "threw from init", nullptr);
            return 4;
        }
    }
    if (!ready(true, {}, desc->name)) return 3;

    // This thread reads; the executor runs one invocation at a time (the gateway sends one at a time).
    std::mutex queueMutex;
    std::condition_variable queueCv;
    std::deque<Invocation> queue;
    bool shuttingDown = false;
    std::thread executor([&] {
        for (;;) {
            Invocation inv;
            {
                std::unique_lock lock(queueMutex);
                queueCv.wait(lock, [&] { return shuttingDown || !queue.empty(); });
                if (queue.empty()) return;
                inv = std::move(queue.front());
                queue.pop_front();
            }
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
            host.currentEvent = &ev;
            wsgw_response resp{};
            resp.size = sizeof resp;
            resp.status_code = 200;
            std::string failure;
            int rc = callHandler(desc, state, &ev, &resp, failure);
            host.currentEvent = nullptr;
            wire::Writer w(wire::Kind::Result);
            w.u64(inv.seq).i64(rc).i64(resp.status_code)
                .bytes(resp.body && resp.body_len ? std::string_view(resp.body, resp.body_len) : std::string_view())
                .u8(resp.is_binary ? 1 : 0)
                .bytes(failure);
            if (!host.send(w)) _exit(0);
        }
    });

    for (;;) {
        auto frame = wire::readFrame(kSocketFd);
        if (!frame) _exit(0);  // the gateway is gone: nothing to hand results to
        wire::Reader r(frame->payload);
        if (frame->kind == wire::Kind::Invoke) {
            Invocation inv;
            inv.seq = r.u64();
            inv.type = static_cast<wsgw_event_type>(r.u8());
            inv.routeKey = r.bytes();
            inv.connectionId = r.bytes();
            inv.body = r.bytes();
            inv.binary = r.u8() != 0;
            inv.eventJson = r.bytes();
            if (!r.ok()) _exit(3);
            {
                std::lock_guard lock(queueMutex);
                queue.push_back(std::move(inv));
            }
            queueCv.notify_one();
        } else if (frame->kind == wire::Kind::CallReply) {
            uint64_t id = r.u64();
            int64_t rc = r.i64();
            std::string data(r.bytes());
            host.replied(id, rc, std::move(data));
        } else if (frame->kind == wire::Kind::Shutdown) {
            break;
        }
    }
    {
        std::lock_guard lock(queueMutex);
        shuttingDown = true;
    }
    queueCv.notify_one();
    executor.join();
    // Plugin threads may still call the host while shutdown joins them: keep answering until it returns.
    std::thread replies([&] {
        for (;;) {
            auto frame = wire::readFrame(kSocketFd);
            if (!frame) return;
            if (frame->kind != wire::Kind::CallReply) continue;
            wire::Reader r(frame->payload);
            uint64_t id = r.u64();
            int64_t rc = r.i64();
            host.replied(id, rc, std::string(r.bytes()));
        }
    });
    if (desc->size >= sizeof(wsgw_handler) && desc->shutdown) {
        try {
            desc->shutdown(state);
        } catch (...) {
        }
    }
    std::fflush(nullptr);
    _exit(0);  // the reply reader is still blocked in read(): leave without unwinding it
}

}  // namespace wsgw
