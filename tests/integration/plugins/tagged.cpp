// tagged: a plugin built twice, as tagged_v1.so and tagged_v2.so (WSGW_TAG), answering "<tag>:<body>",
// so a hot-reload test can tell which version served every reply. It appends "init <tag>" and
// "shutdown <tag>" to config {"log": PATH}, so the test sees when each version is unloaded. A body
// {"action":"slow","ms":N} sleeps N ms first: an invocation running across a reload.
#include <wsgw/handler.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#ifndef WSGW_TAG
#error "build with -DWSGW_TAG=\"v1\" or similar"
#endif

namespace {

struct Tagged {
    std::string log;
};

thread_local std::string tlsReply;

void note(const Tagged *t, const char *what) {
    if (t->log.empty()) return;
    if (std::FILE *f = std::fopen(t->log.c_str(), "a")) {
        std::fprintf(f, "%s %s\n", what, WSGW_TAG);
        std::fclose(f);
    }
}

void *init(const wsgw_host_api *, const char *config) {
    auto *t = new Tagged;
    // config is {"log":"PATH"}: small enough to pick out without a JSON parser.
    if (const char *p = config ? std::strstr(config, "\"log\":\"") : nullptr) {
        p += 7;
        if (const char *end = std::strchr(p, '"')) t->log.assign(p, end);
    }
    note(t, "init");
    return t;
}

int handle(void *state, const wsgw_event *ev, wsgw_response *resp) {
    (void)state;
    if (ev->type != WSGW_MESSAGE) return 0;
    std::string body(ev->body, ev->body_len);
    if (body.rfind("{\"action\":\"slow\",\"ms\":", 0) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(body.c_str() + 22)));
    tlsReply = std::string(WSGW_TAG) + ":" + body;
    resp->body = tlsReply.data();
    resp->body_len = tlsReply.size();
    return 0;
}

void shutdown(void *state) {
    auto *t = static_cast<Tagged *>(state);
    note(t, "shutdown");
    delete t;
}

const wsgw_handler kTagged = {sizeof(wsgw_handler), WSGW_ABI_VERSION, "tagged-" WSGW_TAG, init, handle, shutdown};

}  // namespace

WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) { return &kTagged; }
