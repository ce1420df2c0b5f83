// The error a process supervisor (isolated plugin workers, Lambda function processes) returns when a thread
// it needs cannot be created (EAGAIN: a pids cgroup, RLIMIT_NPROC): a start-up fails with it and a reload
// is refused with it, instead of std::thread's std::system_error ending the gateway.
#pragma once

#include <string>
#include <system_error>

namespace wsgw {

inline std::string threadShortage(const char *what, const std::system_error &e) {
    return std::string("cannot start ") + what + ": " + e.what() +
           " (the gateway is at its thread limit: a pids cgroup or RLIMIT_NPROC; raise it, or ask for fewer workers)";
}

}  // namespace wsgw
