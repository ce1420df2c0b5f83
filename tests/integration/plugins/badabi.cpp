// badabi: a plugin that claims an ABI version the gateway does not speak (99). The gateway must refuse
// to start with a message naming the ABI version, and must never call into it.
#include <wsgw/handler.h>

namespace {

int handle(void *, const wsgw_event *, wsgw_response *) { return 1; }

const wsgw_handler kBadAbi = {sizeof(wsgw_handler), 99, "badabi", nullptr, handle, nullptr};

}  // namespace

extern "C" WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) { return &kBadAbi; }
