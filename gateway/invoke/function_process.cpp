// Owns: one lambda function process's spawn, output, memory and end (function_process.h).
#include "function_process.h"

#include "proc_status.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace wsgw {

namespace {

size_t processTreeResidentBytes(pid_t pid, int depth = 0) {
    size_t total = procStatusBytes(pid, "VmRSS");
    if (depth >= 4) return total;
    char path[96];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/children", static_cast<int>(pid), static_cast<int>(pid));
    std::FILE *f = std::fopen(path, "r");
    if (!f) return total;
    long child;
    while (std::fscanf(f, "%ld", &child) == 1) total += processTreeResidentBytes(static_cast<pid_t>(child), depth + 1);
    std::fclose(f);
    return total;
}

}  // namespace

FunctionProcess::FunctionProcess(pid_t pid, int outFd, int errFd)
    : pid_(pid), pidFd_(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))), out_("stdout", outFd), err_("stderr", errFd) {}

FunctionProcess::~FunctionProcess() {
    if (pidFd_ >= 0) close(pidFd_);
}

std::unique_ptr<FunctionProcess> FunctionProcess::spawn(std::vector<std::string> argvText, std::vector<std::string> envText,
                                                        const std::string &directory, int *spawnError) {
    *spawnError = 0;
    int outPipe[2], errPipe[2];
    if (pipe2(outPipe, O_CLOEXEC) != 0) return nullptr;
    if (pipe2(errPipe, O_CLOEXEC) != 0) {
        close(outPipe[0]);
        close(outPipe[1]);
        return nullptr;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2);
    posix_spawn_file_actions_addchdir_np(&actions, directory.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group (a timeout kills the client and whatever it started), no signal blocked or
    // ignored as the gateway may have them.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char *> argv, envp;
    for (auto &a : argvText) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto &e : envText) envp.push_back(e.data());
    envp.push_back(nullptr);
    // posix_spawnp looks the program up in the gateway's PATH, which is also the function's.
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(outPipe[1]);
    close(errPipe[1]);
    if (rc != 0) {
        close(outPipe[0]);
        close(errPipe[0]);
        *spawnError = rc;
        return nullptr;
    }
    return std::unique_ptr<FunctionProcess>(new FunctionProcess(pid, outPipe[0], errPipe[0]));
}

void FunctionProcess::killGroup(int sig) const {
    if (kill(-pid_, sig) != 0) kill(pid_, sig);
}

bool FunctionProcess::exitedWithoutPidFd() const {
    siginfo_t info{};
    return waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_;
}

size_t FunctionProcess::residentBytes() const { return processTreeResidentBytes(pid_); }

int FunctionProcess::outputPauseLeftMs() const {
    int a = out_.pauseLeftMs(), b = err_.pauseLeftMs();
    if (!a || !b) return a ? a : b;
    return std::min(a, b);
}

void FunctionProcess::drainOutput(const std::string &function, const std::string &requestId) {
    out_.drain("function", function, requestId);
    err_.drain("function", function, requestId);
}

int FunctionProcess::reap(const std::string &function, const std::string &requestId) {
    // What it started in its process group and left running goes with it (the group outlives its leader
    // until it is reaped, so the ID cannot name anything else yet). A child that left the group (setsid,
    // detached) is not reached.
    kill(-pid_, SIGKILL);
    // Reap it; then what it wrote last.
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    drainOutput(function, requestId);
    out_.flush("function", function, requestId);
    err_.flush("function", function, requestId);
    return status;
}

}  // namespace wsgw
