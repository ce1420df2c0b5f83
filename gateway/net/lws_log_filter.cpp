// Owns: the executable's _lws_log, which drops disabled levels before any work (lws_log_filter.h).
#include "lws_log_filter.h"

#include <libwebsockets.h>

#include <atomic>
#include <cstdarg>
#include <mutex>

namespace wsgw {

namespace {
// What libwebsockets logs until setLwsLogLevel: its own default (errors, warnings and notices). Named for
// the assembly of _lws_log below, which reads it as the plain int it is on x86-64.
__attribute__((used)) std::atomic<int> gLwsLogLevels asm("wsgw_lws_log_levels"){LLL_ERR | LLL_WARN | LLL_NOTICE};
static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free);
// libwebsockets 4.1.6 formats every line into one process-wide buffer (_lws_logv's `static char buf[256]`)
// and hands it to the emit callback: two network threads logging at once would garble each other's line.
// Every lwsl_* call comes through _lws_log below, so one lock here serializes them all.
std::mutex gLwsLogLock;
}  // namespace

void setLwsLogLevel(int levels, void (*emit)(int level, const char *line)) {
    gLwsLogLevels.store(levels, std::memory_order_relaxed);
    lws_set_log_level(levels, emit);
}

static void formatLwsLine(int filter, const char *format, va_list ap) {
    std::lock_guard lock(gLwsLogLock);
    _lws_logv(filter, format, ap);
}

}  // namespace wsgw

// An enabled line (x86-64: the jump target of _lws_log below).
extern "C" __attribute__((visibility("hidden"), used)) void wsgw_lws_log_line(int filter, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    wsgw::formatLwsLine(filter, format, ap);
    va_end(ap);
}

// libwebsockets' own _lws_log does the same after va_start; this one returns first for a disabled level.
#if defined(__x86_64__) && defined(__GNUC__)
// A variadic C++ function saves its argument registers (up to eight vector registers too) before its first
// statement, 17 instructions for a line that is off, and the frame parser makes about a dozen such calls
// per message. Four here: test the level, return, or jump to wsgw_lws_log_line with every argument
// register (and %al, the count of vector arguments) untouched. Written at file scope, not as a naked
// function: without optimisation GCC still saves the variadic registers in a naked one's (missing) frame.
asm(".text\n"
    ".p2align 4\n"
    ".globl _lws_log\n"
    ".type _lws_log, @function\n"
    "_lws_log:\n"
    "    endbr64\n"  // a no-op unless indirect-branch tracking is on, where a call through the PLT needs it
    "    testl %edi, wsgw_lws_log_levels(%rip)\n"
    "    jnz 1f\n"
    "    ret\n"
    "1:  jmp wsgw_lws_log_line\n"
    ".size _lws_log, .-_lws_log\n");
#else
extern "C" void _lws_log(int filter, const char *format, ...) {
    if (!(filter & wsgw::gLwsLogLevels.load(std::memory_order_relaxed))) [[likely]]
        return;
    va_list ap;
    va_start(ap, format);
    wsgw::formatLwsLine(filter, format, ap);
    va_end(ap);
}
#endif
