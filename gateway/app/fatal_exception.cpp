#include "fatal_exception.h"

#include "background_log.h"
#include "log.h"
#include "thread_shortage.h"

#include <cerrno>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>
#include <unistd.h>

namespace wsgw {

namespace {

std::string describeCurrentException() {
    std::exception_ptr current = std::current_exception();
    if (!current) return "std::terminate was called without an exception";
    try {
        std::rethrow_exception(current);
    } catch (const std::system_error &e) {
        std::string what = e.what();
        if (e.code() == std::errc::resource_unavailable_try_again) return threadShortage("a thread", e);
        return what;
    } catch (const std::bad_alloc &) {
        return "out of memory (std::bad_alloc)";
    } catch (const std::exception &e) {
        return e.what();
    } catch (...) {
        return "an exception of an unknown type";
    }
}

[[noreturn]] void onTerminate() {
    std::string why = describeCurrentException();
    log::error("fatal: the gateway cannot go on", {log::Field("error", why)});
    BackgroundLog::flushFor(std::chrono::seconds(1));  // out if stdout takes it; a stalled one does not hold the exit
    std::fprintf(stderr, "wsgw: fatal: %s\n", why.c_str());
    std::fflush(stderr);
    ::_exit(1);
}

}  // namespace

void installFatalExceptionHandler() { std::set_terminate(onTerminate); }

}  // namespace wsgw
