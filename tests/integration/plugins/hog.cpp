// hog: a test plugin that misbehaves with resources, for the hardening tests. MESSAGE bodies with an
// "action": "alloc" takes {"count": N, "mb": M} blocks of M MB, touching every page and keeping them (a
// plugin that caches what it got), and fails the invocation when malloc returns NULL; "pid" tells its
// process ID; "stuck" never returns, waking every millisecond inside this plugin's own code (so unloading
// the plugin under it would crash the process). Anything else is echoed. After each "alloc" the process's
// peak resident memory (VmHWM) is appended to config {"log": PATH} as one line, "<pid> <kB>", written with
// plain syscalls so that it works at the memory limit too. "eventjson" asks event_json about a wsgw_event
// the gateway did not make (a copy inside a struct laid out like the gateway's own, with its magic and a
// bogus pointer after it: reading past the public struct would crash), about the real event from this
// thread and from a thread of its own during handle(), and answers "copy:<null|json> own:<..> thread:<..>".
// Config {"hangOnShutdown": true}: its shutdown never returns (logging "shutdown" first), as a plugin whose
// clean-up waits on something that never comes.
#include <wsgw/handler.h>

#include <rapidjson/document.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

struct Hog {
    const wsgw_host_api *api = nullptr;
    std::string logPath;
    bool hangOnShutdown = false;
    std::vector<void *> kept;
};

thread_local std::string tlsReply;

void reply(wsgw_response *resp, std::string text) {
    tlsReply = std::move(text);
    resp->body = tlsReply.data();
    resp->body_len = tlsReply.size();
}

// VmHWM in kB from /proc/self/status, read into a stack buffer (no allocation).
long peakResidentKb() {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char *at = std::strstr(buf, "VmHWM:");
    return at ? std::strtol(at + 6, nullptr, 10) : -1;
}

void logLine(const Hog *hog, const char *text) {
    if (hog->logPath.empty()) return;
    char line[128];
    int len = std::snprintf(line, sizeof line, "%s\n", text);
    int fd = open(hog->logPath.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (write(fd, line, static_cast<size_t>(len)) < 0) {
    }
    close(fd);
}

void logPeak(const Hog *hog) {
    char line[64];
    std::snprintf(line, sizeof line, "%ld %ld", static_cast<long>(getpid()), peakResidentKb());
    logLine(hog, line);
}

long intMember(const rapidjson::Value &v, const char *name, long fallback) {
    auto it = v.FindMember(name);
    return it != v.MemberEnd() && it->value.IsInt64() ? static_cast<long>(it->value.GetInt64()) : fallback;
}

void *init(const wsgw_host_api *api, const char *config) {
    auto *hog = new Hog;
    hog->api = api;
    rapidjson::Document doc;
    doc.Parse(config ? config : "{}");
    if (doc.IsObject() && doc.HasMember("log") && doc["log"].IsString()) hog->logPath = doc["log"].GetString();
    if (doc.IsObject() && doc.HasMember("hangOnShutdown") && doc["hangOnShutdown"].IsBool())
        hog->hangOnShutdown = doc["hangOnShutdown"].GetBool();
    return hog;
}

void shutdown(void *state) {
    auto *hog = static_cast<Hog *>(state);
    if (hog->hangOnShutdown) {
        logLine(hog, "shutdown");
        for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (void *p : hog->kept) std::free(p);
    delete hog;
}

int handle(void *state, const wsgw_event *ev, wsgw_response *resp) {
    auto *hog = static_cast<Hog *>(state);
    if (ev->type != WSGW_MESSAGE) return 0;
    rapidjson::Document body;
    std::string action;
    if (!ev->is_binary) {
        body.Parse(ev->body, ev->body_len);
        if (!body.HasParseError() && body.IsObject() && body.HasMember("action") && body["action"].IsString())
            action = body["action"].GetString();
    }
    if (action == "alloc") {
        long count = intMember(body, "count", 1), mb = intMember(body, "mb", 1);
        for (long i = 0; i < count; ++i) {
            size_t bytes = static_cast<size_t>(mb) << 20;
            void *block = std::malloc(bytes);
            if (!block) {  // the limit held: fail this invocation, keep what was taken
                logPeak(hog);
                return 1;
            }
            std::memset(block, 1, bytes);
            hog->kept.push_back(block);
        }
        logPeak(hog);
        reply(resp, "allocated " + std::to_string(count * mb) + " MB");
    } else if (action == "eventjson") {
        struct LookAlike {  // what a reader past the public struct would find: a magic and a pointer
            wsgw_event ev;
            uint64_t magic = 0x7773677765763031ULL;
            const void *connection = reinterpret_cast<const void *>(16);
        } fake;
        fake.ev = *ev;
        const wsgw_host_api *api = hog->api;
        auto ask = [api](const wsgw_event *e) {
            size_t len = 0;
            const char *json = api->event_json(api->host, e, &len);
            return std::string(!json ? "null" : len > 0 && json[0] == '{' ? "json" : "other");
        };
        std::string copy = ask(&fake.ev), own = ask(ev), other;
        std::thread asker([&] { other = ask(ev); });
        asker.join();
        reply(resp, "copy:" + copy + " own:" + own + " thread:" + other);
    } else if (action == "pid") {
        reply(resp, std::to_string(getpid()));
    } else if (action.rfind("stuck", 0) == 0) {  // "stuck", "stuckslow", ...
        logLine(hog, "stuck");  // the test waits for this: the handler is inside this plugin now
        for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
        resp->body = ev->body;
        resp->body_len = ev->body_len;
        resp->is_binary = ev->is_binary;
    }
    return 0;
}

const wsgw_handler kHog = {sizeof(wsgw_handler), WSGW_ABI_VERSION, "hog", init, handle, shutdown};

}  // namespace

extern "C" WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) { return &kHog; }
