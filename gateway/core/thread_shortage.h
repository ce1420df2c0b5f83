// The error text for a thread that cannot be created (std::thread's std::system_error, EAGAIN: a pids cgroup,
// RLIMIT_NPROC): what could not start and what to do. A supervisor (isolated plugin workers, Lambda function
// processes) fails a start-up or refuses a reload with it, the TLS handshaker's start-up error says it, and
// the gateway's last word on an uncaught one (app/fatal_exception) too.
#pragma once

#include <string>
#include <system_error>

namespace wsgw {

inline std::string threadShortage(const char *what, const std::system_error &e) {
    return std::string("cannot start ") + what + ": " + e.what() +
           " (the gateway is at its thread limit: a pids cgroup or RLIMIT_NPROC; raise it, or ask for fewer workers)";
}

}  // namespace wsgw
