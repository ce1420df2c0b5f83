// Owns: one isolated handler worker process's spawn, output, end and memory (isolated_worker_process.h).
#include "isolated_worker_process.h"

#include "log.h"
#include "proc_status.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace wsgw {

namespace {

// The worker's environment: ours, with the sanitizers told to leave crashes to the plugin's own fate
// (a plugin that segfaults on purpose must end its process quietly, not as a sanitizer report). An
// allocation refused at maxWorkerMemoryMb must return NULL (or throw bad_alloc) as it does in a plain
// build, not end the worker with a sanitizer's out-of-memory report.
std::vector<std::string> workerEnvironment() {
    std::vector<std::string> env;
    std::string asan = "ASAN_OPTIONS=", tsan = "TSAN_OPTIONS=";
    for (char **e = environ; *e; ++e) {
        if (std::strncmp(*e, "ASAN_OPTIONS=", 13) == 0) {
            asan = *e;
            asan += ':';
        } else if (std::strncmp(*e, "TSAN_OPTIONS=", 13) == 0) {
            tsan = *e;
            tsan += ':';
        } else {
            env.emplace_back(*e);
        }
    }
    asan += "detect_leaks=0:handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:handle_sigill=0:"
            "allocator_may_return_null=1";
    tsan += "allocator_may_return_null=1";
    env.push_back(asan);
    env.push_back(tsan);
    return env;
}

// Moves a descriptor to 10 or above, clear of the 3 and 4 the worker is given.
int highFd(int fd) {
    if (fd >= 10) return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return moved;
}

// The RLIMIT_DATA the worker set on itself (its start-up memory plus maxWorkerMemoryMb); 0 when unknown.
size_t workerDataLimitBytes(pid_t pid) {
    rlimit lim{};
    if (prlimit(pid, RLIMIT_DATA, nullptr, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 0;
    return static_cast<size_t>(lim.rlim_cur);
}

size_t workerResidentBytes(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
    FILE *f = std::fopen(path, "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    return n == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

IsolatedWorkerProcess::IsolatedWorkerProcess(const std::string &instance, pid_t pid, int socket, int outFd)
    : instance_(instance), pid_(pid), socket_(socket), pidFd_(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))),
      output_("stdout", outFd) {}

IsolatedWorkerProcess::~IsolatedWorkerProcess() {
    if (pidFd_ >= 0) close(pidFd_);
    if (socket_ >= 0) close(socket_);
}

std::unique_ptr<IsolatedWorkerProcess> IsolatedWorkerProcess::spawn(const std::string &instance, size_t memoryBudgetBytes, int pluginFd) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        log::error("isolated handler: socketpair failed", {log::Field("handler", instance), log::Field("error", std::strerror(errno))});
        return nullptr;
    }
    int mine = highFd(sv[0]), theirs = highFd(sv[1]);
    // What the plugin prints goes to a pipe and becomes log lines (process_output.h): the worker's stdout is
    // otherwise the gateway's, a stream of JSON log lines that a plugin's printf would break.
    int outPipe[2];
    if (pipe2(outPipe, O_CLOEXEC) != 0) {
        log::error("isolated handler: pipe failed", {log::Field("handler", instance), log::Field("error", std::strerror(errno))});
        close(mine);
        close(theirs);
        return nullptr;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, theirs, 3);
    posix_spawn_file_actions_adddup2(&actions, pluginFd, 4);
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1);
    std::vector<std::string> env = workerEnvironment();
    std::vector<char *> envp;
    for (auto &e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", flag = "--plugin-host", name = instance;
    std::string memoryBudget = std::to_string(memoryBudgetBytes);  // the worker sets RLIMIT_DATA from it
    char *argv[] = {exe.data(), flag.data(), name.data(), memoryBudget.data(), nullptr};
    // Its own process group, so that what the plugin forks is killed with it: a forked child inherits the
    // worker's end of the socket, and as long as it lives the supervisor would never see the worker go.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, exe.c_str(), &actions, &attr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(theirs);
    close(outPipe[1]);
    if (rc != 0) {
        close(outPipe[0]);
        close(mine);
        log::error("isolated handler: cannot start a worker process", {log::Field("handler", instance), log::Field("error", std::strerror(rc))});
        return nullptr;
    }
    return std::unique_ptr<IsolatedWorkerProcess>(new IsolatedWorkerProcess(instance, pid, mine, outPipe[0]));
}

bool IsolatedWorkerProcess::awaitFrame() {
    for (;;) {
        pollfd fds[3] = {{socket_, POLLIN, 0}, {pidFd_, POLLIN, 0}, {output_.pollFd(), POLLIN, 0}};
        int pauseMs = output_.pauseLeftMs();  // its output is read again then
        if (poll(fds, 3, pauseMs ? pauseMs : -1) < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (fds[2].revents) output_.drain("handler", instance_, "");
        if (fds[0].revents) return true;
        if (fds[1].revents) return false;
    }
}

int IsolatedWorkerProcess::reap() {
    if (pidFd_ >= 0) close(pidFd_);
    pidFd_ = -1;
    kill(-pid_, SIGKILL);  // what it forked and left in its group (the group outlives it until it is reaped)
    shutdown(socket_, SHUT_RDWR);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    output_.drain("handler", instance_, "");  // its last words
    output_.flush("handler", instance_, "");
    return status;
}

void IsolatedWorkerProcess::closeSocket() {
    close(socket_);
    socket_ = -1;
}

WorkerMemoryUse workerMemoryUse(pid_t pid, size_t budgetBytes) {
    WorkerMemoryUse use;
    use.limit = workerDataLimitBytes(pid);
    size_t data = use.limit ? procStatusBytes(pid, "VmData") : 0;
    size_t startup = use.limit > budgetBytes ? use.limit - budgetBytes : 0;  // what the worker had before the plugin
    use.used = data > startup ? data - startup : 0;
    use.resident = workerResidentBytes(pid);
    return use;
}

}  // namespace wsgw
