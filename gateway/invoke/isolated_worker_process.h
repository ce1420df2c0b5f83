// Owns: one worker process of an isolated handler ("isolation": "process") at the operating system's level:
// `wsgw --plugin-host NAME BUDGET` spawned from /proc/self/exe in its own process group (so what the plugin
// forks is killed with it), the plugin's private copy on descriptor 4, its end of a socketpair on descriptor
// 3, the environment that keeps sanitizers out of a plugin's crashes, and its stdout read from a pipe as log
// lines (ProcessOutput); waiting for its next frame while logging what it prints; its end (the group killed,
// the process reaped); and reading its memory against maxWorkerMemoryMb. The frames' meaning is
// isolated_plugin's; their encoding is plugin_wire's.
#pragma once

#include "process_output.h"

#include <cstddef>
#include <memory>
#include <string>
#include <sys/types.h>

namespace wsgw {

class IsolatedWorkerProcess {
public:
    // Starts a worker hosting the plugin open as `pluginFd` for the handler instance `instance`, which sets
    // RLIMIT_DATA from `memoryBudgetBytes`; nullptr (the failure logged) when it cannot.
    static std::unique_ptr<IsolatedWorkerProcess> spawn(const std::string &instance, size_t memoryBudgetBytes, int pluginFd);
    ~IsolatedWorkerProcess();
    IsolatedWorkerProcess(const IsolatedWorkerProcess &) = delete;
    IsolatedWorkerProcess &operator=(const IsolatedWorkerProcess &) = delete;

    pid_t pid() const { return pid_; }
    int socket() const { return socket_; }  // the gateway's end of the socketpair; -1 once closed
    // Waits until the worker's socket has something to read, logging what the worker prints meanwhile (a
    // plugin printing more than a pipe holds must not stall on it); false once the worker has ended.
    bool awaitFrame();
    // Kills what is left of its group, reaps it and logs its last words; returns waitpid's status. The socket
    // is shut down (not closed: see closeSocket).
    int reap();
    // Closes the socket; the caller holds the lock its writers take.
    void closeSocket();

private:
    IsolatedWorkerProcess(const std::string &instance, pid_t pid, int socket, int outFd);

    const std::string &instance_;
    pid_t pid_;
    int socket_;
    int pidFd_;  // the worker's end may be held open by a child the plugin forked: its exit ends the wait too
    ProcessOutput output_;
};

// What a worker holds against its budget: `limit` is the RLIMIT_DATA it set on itself (its start-up memory
// plus maxWorkerMemoryMb; 0 when it cannot be read), `used` its data segment past its start-up memory,
// `resident` its resident memory.
struct WorkerMemoryUse {
    size_t limit = 0, used = 0, resident = 0;
};
WorkerMemoryUse workerMemoryUse(pid_t pid, size_t budgetBytes);

}  // namespace wsgw
