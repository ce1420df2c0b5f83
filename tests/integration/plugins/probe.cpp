// probe: the integration tests' instrument. It appends the event JSON of every invocation it gets to the
// file named by config {"log": PATH} (one compact JSON object a line, flushed at once), so a test can see
// which route ran and what the event held; MESSAGE bodies with an "action" make it exercise one part of
// the host API or misbehave on purpose (sleep, fail, throw, push from a thread it starts itself, and, for
// isolation tests, segfault, abort, exit, leak, print to stdout, and tell its process and thread IDs).
#include <wsgw/handler.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sys/syscall.h>
#include <unistd.h>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Probe {
    const wsgw_host_api *api = nullptr;
    std::mutex logMutex;
    std::FILE *log = nullptr;
    std::mutex threadsMutex;
    std::vector<std::thread> threads;
    long disconnectDelayMs = 0;  // config {"disconnectDelayMs": N}: each $disconnect takes N ms after it is recorded
};

// The reply must outlive handle(): the gateway copies it after the call returns on this thread.
thread_local std::string tlsReply;

void setReply(wsgw_response *resp, std::string text, bool binary = false) {
    tlsReply = std::move(text);
    resp->body = tlsReply.data();
    resp->body_len = tlsReply.size();
    resp->is_binary = binary ? 1 : 0;
}

void *init(const wsgw_host_api *api, const char *config) {
    auto *probe = new Probe;
    probe->api = api;
    rapidjson::Document doc;
    doc.Parse(config ? config : "{}");
    if (doc.IsObject()) {
        auto it = doc.FindMember("log");
        if (it != doc.MemberEnd() && it->value.IsString()) probe->log = std::fopen(it->value.GetString(), "a");
        auto delay = doc.FindMember("disconnectDelayMs");
        if (delay != doc.MemberEnd() && delay->value.IsInt()) probe->disconnectDelayMs = delay->value.GetInt();
    }
    if (!probe->log) api->log(api->host, WSGW_LOG_WARN, "probe: no writable config.log: events are not recorded");
    return probe;
}

void shutdown(void *state) {
    auto *probe = static_cast<Probe *>(state);
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(probe->threadsMutex);
        threads.swap(probe->threads);
    }
    for (auto &t : threads) t.join();
    if (probe->log) std::fclose(probe->log);
    delete probe;
}

// Re-serialises the event compactly so that one event is exactly one line, whatever spacing the gateway
// chose; an event that is not JSON is recorded as such so the test sees the defect instead of a gap.
void record(Probe *probe, const char *json, size_t len) {
    std::string line;
    rapidjson::Document doc;
    if (json) doc.Parse(json, len);
    if (!json || doc.HasParseError() || !doc.IsObject()) {
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
        writer.StartObject();
        writer.Key("probeError");
        writer.String(json ? "event_json is not a JSON object" : "event_json returned NULL");
        writer.Key("raw");
        writer.String(json ? json : "", json ? static_cast<rapidjson::SizeType>(len) : 0);
        writer.EndObject();
        line.assign(buf.GetString(), buf.GetSize());
    } else {
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
        doc.Accept(writer);
        line.assign(buf.GetString(), buf.GetSize());
    }
    line.push_back('\n');
    std::lock_guard lock(probe->logMutex);
    if (!probe->log) return;
    std::fwrite(line.data(), 1, line.size(), probe->log);
    std::fflush(probe->log);
}

std::string memberString(const rapidjson::Value &obj, const char *name) {
    if (!obj.IsObject()) return {};
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd() || !it->value.IsString()) return {};
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

long memberInt(const rapidjson::Value &obj, const char *name, long fallback) {
    if (!obj.IsObject()) return fallback;
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd() || !it->value.IsInt64()) return fallback;
    return static_cast<long>(it->value.GetInt64());
}

void sleepMs(long ms) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

int onConnect(Probe *probe, const wsgw_event *ev, wsgw_response *resp, const char *json, size_t len) {
    rapidjson::Document event;
    if (json) event.Parse(json, len);
    if (!json || event.HasParseError() || !event.IsObject()) return 0;
    auto q = event.FindMember("queryStringParameters");
    if (q == event.MemberEnd() || !q->value.IsObject()) return 0;
    const rapidjson::Value &query = q->value;
    std::string sleep = memberString(query, "sleep");
    if (!sleep.empty()) sleepMs(std::stol(sleep));
    if (memberString(query, "fail") == "1") return 1;
    std::string status = memberString(query, "status");
    if (!status.empty()) resp->status_code = std::stoi(status);
    std::string backend = memberString(query, "backend");
    if (!backend.empty() && WSGW_RESPONSE_HAS_BACKEND(resp)) {  // relay this connection to a backend of our choosing
        thread_local std::string chosen;
        chosen = backend;
        resp->backend_url = chosen.c_str();
        resp->backend_headers = "X-Negotiated: by-probe\r\n";
    }
    if (memberString(query, "pushself") == "1") {
        static const char kHello[] = "hello-from-connect";
        probe->api->post_to_connection(probe->api->host, ev->connection_id, kHello, sizeof kHello - 1, 0);
    }
    return 0;
}

int onMessage(Probe *probe, const wsgw_event *ev, wsgw_response *resp) {
    const wsgw_host_api *api = probe->api;
    rapidjson::Document body;
    std::string action;
    if (!ev->is_binary) {
        body.Parse(ev->body, ev->body_len);
        if (!body.HasParseError() && body.IsObject()) action = memberString(body, "action");
    }
    if (action == "sleep") {
        sleepMs(memberInt(body, "ms", 0));
        setReply(resp, "slept");
    } else if (action == "fail") {
        return 1;
    } else if (action == "throw") {
        throw std::runtime_error("probe: asked to throw");
    } else if (action == "push") {
        std::string to = memberString(body, "to");
        std::string data = memberString(body, "data");
        int rc = api->post_to_connection(api->host, to.c_str(), data.data(), data.size(), 0);
        setReply(resp, std::to_string(rc));
    } else if (action == "get") {
        std::string id = memberString(body, "id");
        std::string out(256, '\0');
        long n = api->get_connection(api->host, id.c_str(), out.data(), out.size());
        if (n >= 0 && static_cast<size_t>(n) >= out.size()) {
            out.assign(static_cast<size_t>(n) + 1, '\0');
            n = api->get_connection(api->host, id.c_str(), out.data(), out.size());
        }
        if (n < 0) {
            setReply(resp, "-1");
        } else {
            out.resize(static_cast<size_t>(n));
            setReply(resp, std::move(out));
        }
    } else if (action == "delete") {
        std::string id = memberString(body, "id");
        setReply(resp, std::to_string(api->delete_connection(api->host, id.c_str())));
    } else if (action == "threadpush") {
        long count = memberInt(body, "count", 0);
        std::string target = ev->connection_id;
        std::lock_guard lock(probe->threadsMutex);
        probe->threads.emplace_back([api, target, count] {
            for (long i = 0; i < count; ++i) {
                std::string text = "tp-" + std::to_string(i);
                api->post_to_connection(api->host, target.c_str(), text.data(), text.size(), 0);
            }
        });
    } else if (action == "join" || action == "leave") {
        // {"action":"join","group":G[,"id":ID]}: the caller itself unless an ID is given.
        std::string group = memberString(body, "group"), id = memberString(body, "id");
        if (id.empty()) id = ev->connection_id;
        if (!WSGW_HOST_API_HAS_GROUPS(api)) {
            setReply(resp, "no-groups");
        } else {
            int rc = action == "join" ? api->add_to_group(api->host, group.c_str(), id.c_str())
                                      : api->remove_from_group(api->host, group.c_str(), id.c_str());
            setReply(resp, std::to_string(rc));
        }
    } else if (action == "sendgroup" || action == "sendall") {
        std::string group = memberString(body, "group"), data = memberString(body, "data");
        int rc = action == "sendgroup" ? api->send_to_group(api->host, group.c_str(), data.data(), data.size(), 0)
                                       : api->send_to_all(api->host, data.data(), data.size(), 0);
        setReply(resp, "sent:" + std::to_string(rc));
    } else if (action == "flood") {
        // {"action":"flood","to":ID,"count":N,"size":S}: N pushes of S bytes (to the caller itself without
        // "to"); answers "ok:A gone:B", the results of post_to_connection, so a test sees where the send-queue
        // bound answered GONE.
        std::string to = memberString(body, "to");
        if (to.empty()) to = ev->connection_id;
        long count = memberInt(body, "count", 0);
        std::string data(static_cast<size_t>(memberInt(body, "size", 1)), 'f');
        long ok = 0, gone = 0;
        for (long i = 0; i < count; ++i) {
            int rc = api->post_to_connection(api->host, to.c_str(), data.data(), data.size(), 0);
            if (rc == WSGW_OK) ++ok;
            else if (rc == WSGW_GONE) ++gone;
        }
        setReply(resp, "ok:" + std::to_string(ok) + " gone:" + std::to_string(gone));
    } else if (action == "print") {
        // {"action":"print","lines":N}: N numbered lines printed to stdout (what a plugin's debugging printf
        // does), then a last one without a newline; answers "printed".
        long lines = memberInt(body, "lines", 1);
        for (long i = 0; i < lines; ++i) std::printf("probe printed line %ld of %ld\n", i + 1, lines);
        std::printf("probe's last words, no newline");
        std::fflush(stdout);
        setReply(resp, "printed");
    } else if (action == "whoami") {
        setReply(resp, ev->connection_id);
    } else if (action == "pid") {
        setReply(resp, std::to_string(getpid()));
    } else if (action == "tid") {
        // The thread handle() runs on: the inline tests compare it with the gateway's network thread.
        setReply(resp, std::to_string(static_cast<long>(syscall(SYS_gettid))));
    } else if (action == "segfault") {
        std::raise(SIGSEGV);  // a real crash of the process: what isolation is for
    } else if (action == "abort") {
        std::abort();
    } else if (action == "exit") {
        std::_Exit(3);
    } else if (action == "forkabort" || action == "forksleep") {
        // A child that outlives its parent and keeps every descriptor it inherited (an isolated worker's
        // socket among them); then the worker aborts, or sleeps past the route's timeout.
        if (fork() == 0) {
            sleepMs(300000);
            _exit(0);
        }
        if (action == "forkabort") std::abort();
        sleepMs(memberInt(body, "ms", 5000));
        setReply(resp, "slept");
    } else if (action == "big") {
        // {"action":"big","size":N}: a route response of N bytes.
        setReply(resp, std::string(static_cast<size_t>(memberInt(body, "size", 0)), 'b'));
    } else if (action == "leak") {
        // Touches every page, so the memory is resident, and never frees it.
        size_t bytes = static_cast<size_t>(memberInt(body, "mb", 0)) << 20;
        auto *block = static_cast<char *>(std::malloc(bytes));
        if (block) std::memset(block, 1, bytes);
        setReply(resp, "leaked");
    } else {
        setReply(resp, std::string(ev->body, ev->body_len), ev->is_binary != 0);
    }
    return 0;
}

int handle(void *state, const wsgw_event *ev, wsgw_response *resp) {
    auto *probe = static_cast<Probe *>(state);
    size_t len = 0;
    const char *json = probe->api->event_json(probe->api->host, ev, &len);
    record(probe, json, len);
    switch (ev->type) {
    case WSGW_CONNECT: return onConnect(probe, ev, resp, json, len);
    case WSGW_MESSAGE: return onMessage(probe, ev, resp);
    case WSGW_DISCONNECT:
        if (probe->disconnectDelayMs > 0) sleepMs(probe->disconnectDelayMs);
        return 0;
    }
    return 0;
}

const wsgw_handler kProbe = {sizeof(wsgw_handler), WSGW_ABI_VERSION, "probe", init, handle, shutdown};

}  // namespace

extern "C" WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) { return &kProbe; }
