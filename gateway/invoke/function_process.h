// Owns: one lambda function process at the operating system's level: started with posix_spawnp in the
// function's directory, in its own process group (a timeout kills the client and whatever it started), with
// the argv and environment it is given, stdin on /dev/null and its stdout and stderr read from pipes as the
// gateway's log lines (ProcessOutput); its exit seen through a pidfd (or waitid where there is none); its
// resident memory with its descendants' (for memoryMb); and its end: the group killed, the process reaped.
// What the process is asked to do is lambda_process_run's business.
#pragma once

#include "process_output.h"

#include <cstddef>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace wsgw {

class FunctionProcess {
public:
    // Starts `argv` in `directory`. nullptr when it could not: *spawnError is posix_spawnp's error number,
    // or 0 when the pipes for its output could not be made.
    static std::unique_ptr<FunctionProcess> spawn(std::vector<std::string> argv, std::vector<std::string> env,
                                                  const std::string &directory, int *spawnError);
    ~FunctionProcess();
    FunctionProcess(const FunctionProcess &) = delete;
    FunctionProcess &operator=(const FunctionProcess &) = delete;

    pid_t pid() const { return pid_; }
    int pidFd() const { return pidFd_; }  // for poll; -1 without pidfd_open: see exitedWithoutPidFd
    // For poll: -1 once the stream ended or while its reading is paused (ProcessOutput::pollFd).
    int stdoutFd() const { return out_.pollFd(); }
    int stderrFd() const { return err_.pollFd(); }
    // Milliseconds until a paused output is read again (0: neither is paused).
    int outputPauseLeftMs() const;

    // Sends `sig` to its process group (to the process alone if the group cannot be signalled).
    void killGroup(int sig) const;
    // Where there is no pidfd: whether it has exited (not reaped yet).
    bool exitedWithoutPidFd() const;
    // Resident memory of the process and its descendants (a `command` such as npx runs the client as a child).
    size_t residentBytes() const;
    // Logs what it printed, each line with the function's name and the invocation's request ID.
    void drainOutput(const std::string &function, const std::string &requestId);
    // Kills what is left of its group, reaps it, logs its last words; returns waitpid's status.
    int reap(const std::string &function, const std::string &requestId);

private:
    FunctionProcess(pid_t pid, int outFd, int errFd);

    pid_t pid_;
    int pidFd_;
    ProcessOutput out_, err_;
};

}  // namespace wsgw
