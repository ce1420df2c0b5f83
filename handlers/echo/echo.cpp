// echo: returns the message body unchanged (text stays text, binary stays binary). Routed two-way
// ("routeResponse": true), the sender gets its own message back.
#include <wsgw/handler.h>

namespace {

int handle(void *, const wsgw_event *ev, wsgw_response *resp) {
    if (ev->type == WSGW_MESSAGE) {
        // The gateway copies the body when handle() returns, so pointing at the event's bytes is safe.
        resp->body = ev->body;
        resp->body_len = ev->body_len;
        resp->is_binary = ev->is_binary;
    }
    return 0;
}

const wsgw_handler kEcho = {sizeof(wsgw_handler), WSGW_ABI_VERSION, "echo", nullptr, handle, nullptr};

}  // namespace

extern "C" WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) { return &kEcho; }
