// Owns: the executable's _lws_log, which drops disabled levels before any work (lws_log_filter.h).
#include "lws_log_filter.h"

#include <libwebsockets.h>

#include <atomic>
#include <cstdarg>
#include <mutex>

namespace wsgw {

namespace {
// What libwebsockets logs until setLwsLogLevel: its own default (errors, warnings and notices).
std::atomic<int> gLwsLogLevels{LLL_ERR | LLL_WARN | LLL_NOTICE};
// libwebsockets 4.1.6 formats every line into one process-wide buffer (_lws_logv's `static char buf[256]`)
// and hands it to the emit callback: two network threads logging at once would garble each other's line.
// Every lwsl_* call comes through _lws_log below, so one lock here serializes them all.
std::mutex gLwsLogLock;
}  // namespace

void setLwsLogLevel(int levels, void (*emit)(int level, const char *line)) {
    gLwsLogLevels.store(levels, std::memory_order_relaxed);
    lws_set_log_level(levels, emit);
}

}  // namespace wsgw

// libwebsockets' own _lws_log does the same after va_start; this one returns first for a disabled level.
extern "C" void _lws_log(int filter, const char *format, ...) {
    if (!(filter & wsgw::gLwsLogLevels.load(std::memory_order_relaxed))) [[likely]]
        return;
    va_list ap;
    va_start(ap, format);
    {
        std::lock_guard lock(wsgw::gLwsLogLock);
        _lws_logv(filter, format, ap);
    }
    va_end(ap);
}
