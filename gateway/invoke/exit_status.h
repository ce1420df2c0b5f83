// How a child process ended, in words for logs and start errors ("killed by signal 9 (Killed)", "exited
// with status 1"): one wording for the isolated plugin workers and the Lambda function processes.
#pragma once

#include <cstring>
#include <string>
#include <sys/wait.h>

namespace wsgw {

// `status` as waitpid() reported it.
inline std::string describeExit(int status) {
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = strsignal(sig);
        return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
    }
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    return "ended";
}

}  // namespace wsgw
