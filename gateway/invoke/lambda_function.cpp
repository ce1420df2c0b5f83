#include "lambda_function.h"

#include "accept_shortage.h"
#include "connection_id.h"
#include "event.h"
#include "exit_status.h"
#include "lambda_result.h"
#include "lambda_runtime_api.h"
#include "log.h"
#include "process_output.h"
#include "proc_status.h"
#include "restart_backoff.h"
#include "thread_shortage.h"
#include "digest.h"

#include <filesystem>
#include <algorithm>
#include <dirent.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace wsgw {

namespace {

std::mutex g_runtimesMutex;
std::string g_runtimesDir = "runtimes";

constexpr auto kStartWait = std::chrono::seconds(15);
constexpr int kMemoryCheckMs = 50;
constexpr auto kStopGrace = std::chrono::milliseconds(500);  // SIGTERM, then SIGKILL

// What a function's result, error or end is at invoke()'s side.
enum class Phase { None, Assigned, Delivered, Done };

std::string randomText(size_t n, const char *alphabet) {
    std::string out;
    unsigned char bytes[64];
    size_t len = std::strlen(alphabet);
    while (out.size() < n) {
        fillRandom(bytes, sizeof bytes);
        for (unsigned char b : bytes) {
            if (out.size() == n) break;
            if (b < 256 / len * len) out += alphabet[b % len];  // no modulo bias
        }
    }
    return out;
}

std::string regionOfGateway() {
    const char *r = std::getenv("AWS_REGION");
    if (!r || !*r) r = std::getenv("AWS_DEFAULT_REGION");
    return r && *r ? r : "us-east-1";
}

// Resident memory of a process and its descendants (a `command` such as npx runs the client as a child).
size_t treeResidentBytes(pid_t pid, int depth = 0) {
    size_t total = procStatusBytes(pid, "VmRSS");
    if (depth >= 4) return total;
    char path[96];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/children", static_cast<int>(pid), static_cast<int>(pid));
    std::FILE *f = std::fopen(path, "r");
    if (!f) return total;
    long child;
    while (std::fscanf(f, "%ld", &child) == 1) total += treeResidentBytes(static_cast<pid_t>(child), depth + 1);
    std::fclose(f);
    return total;
}

std::string invalidRequestIdBody() {
    return R"({"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"})";
}

std::string jsonMessage(std::string_view type, std::string_view message) {
    std::string s = "{\"errorType\":";
    log::appendJsonString(s, type);
    s += ",\"errorMessage\":";
    log::appendJsonString(s, message);
    s += "}";
    return s;
}

}  // namespace

void setLambdaRuntimesDir(std::string dir) {
    std::lock_guard lock(g_runtimesMutex);
    g_runtimesDir = std::move(dir);
}

const std::string &lambdaRuntimesDir() {
    std::lock_guard lock(g_runtimesMutex);
    return g_runtimesDir;
}

namespace {
std::mutex g_callbackMutex;
LambdaCallbackTrust g_callbackTrust;
std::string g_callbackEndpoint;

constexpr size_t kMaxFingerprintEntries = 100000;
constexpr size_t kMaxWatchedDirectories = 1000;

// Depth-first walk of `dir`: calls onEntry(relative path, stat) for every entry, descends into directories
// `descend` accepts; stops after `limit` entries. Symbolic links are not followed (no cycles).
template <typename OnEntry, typename Descend>
void walkDirectory(const std::string &root, const std::string &relative, size_t &budget, OnEntry &&onEntry, Descend &&descend) {
    std::string full = relative.empty() ? root : root + "/" + relative;
    DIR *d = opendir(full.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent *e = readdir(d)) {
        std::string_view name = e->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());  // the same tree gives the same digest
    for (const std::string &name : names) {
        if (budget == 0) return;
        --budget;
        std::string rel = relative.empty() ? name : relative + "/" + name;
        struct stat st{};
        if (lstat((root + "/" + rel).c_str(), &st) != 0) continue;
        onEntry(rel, st);
        if (S_ISDIR(st.st_mode) && descend(name)) walkDirectory(root, rel, budget, onEntry, descend);
    }
}
}  // namespace

void setLambdaCallbackTrust(LambdaCallbackTrust trust) {
    // Absolute: function processes run in their own directories, where a path relative to the gateway's
    // working directory (from a relative --db) would not name the file, and the SDK would not trust us.
    for (std::string *file : {&trust.caFile, &trust.bundleFile})
        if (!file->empty()) *file = std::filesystem::absolute(*file).lexically_normal().string();
    std::lock_guard lock(g_callbackMutex);
    g_callbackTrust = std::move(trust);
}

void setLambdaCallbackEndpoint(std::string hostPort) {
    std::lock_guard lock(g_callbackMutex);
    g_callbackEndpoint = std::move(hostPort);
}

std::string lambdaCallbackEndpoint() {
    std::lock_guard lock(g_callbackMutex);
    return g_callbackEndpoint;
}

std::string lambdaDirectoryFingerprint(const std::string &directory) {
    std::string listing;
    size_t budget = kMaxFingerprintEntries;
    walkDirectory(directory, "", budget, [&](const std::string &rel, const struct stat &st) {
        listing += rel;
        listing += '\0';
        listing += std::to_string(st.st_mode) + ':' + std::to_string(st.st_size) + ':' + std::to_string(st.st_mtim.tv_sec) + '.' +
                   std::to_string(st.st_mtim.tv_nsec) + ':' + std::to_string(st.st_ino) + '\n';
    }, [](const std::string &) { return true; });
    return sha256Hex(listing);
}

std::vector<std::string> lambdaWatchedDirectories(const std::string &directory) {
    std::vector<std::string> dirs{directory};
    size_t budget = kMaxFingerprintEntries;
    walkDirectory(directory, "", budget, [&](const std::string &rel, const struct stat &st) {
        if (S_ISDIR(st.st_mode) && dirs.size() < kMaxWatchedDirectories && rel.find("node_modules") == std::string::npos &&
            rel[0] != '.' && rel.find("/.") == std::string::npos)
            dirs.push_back(directory + "/" + rel);
    }, [](const std::string &name) { return name != "node_modules" && name[0] != '.'; });
    return dirs;
}

const LambdaCredentials &lambdaCredentials() {
    static const LambdaCredentials creds = [] {
        LambdaCredentials c;
        c.accessKeyId = "ASIA" + randomText(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        c.secretAccessKey = randomText(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
        c.sessionToken = randomText(64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
        return c;
    }();
    return creds;
}

struct LambdaFunction::Slot {
    unsigned index = 0;
    std::thread supervisor;
    int listenFd = -1;
    int port = 0;
    int wakeFd = -1;  // eventfd: invoke() assigned an invocation, or the pool is stopping
    // Guarded by LambdaFunction::mutex_.
    pid_t pid = -1;
    bool ready = false;     // the current process has asked for an invocation
    bool retiring = false;  // being killed: take nothing new
    std::string killReason; // why the gateway killed it ("" when it ended by itself)
    Phase phase = Phase::None;
    NextInvocation current;
    IsolatedReply result;

    ~Slot() {
        if (listenFd >= 0) close(listenFd);
        if (wakeFd >= 0) close(wakeFd);
    }
    void wake() const {
        uint64_t one = 1;
        ssize_t n = write(wakeFd, &one, sizeof one);
        (void)n;
    }
};

LambdaFunction::LambdaFunction(const HandlerSpec &spec)
    : name_(spec.name), spec_(spec.lambda), acceptShortage_("lambda runtime API of function " + spec.name) {
    functionArn_ = "arn:aws:lambda:" + regionOfGateway() + ":000000000000:function:" + name_;
}

std::vector<std::string> LambdaFunction::processArgv() const {
    if (!spec_.command.empty()) return spec_.command;
    if (spec_.runtime == "nodejs") return {"node", lambdaRuntimesDir() + "/nodejs/bootstrap.mjs"};
    return {"python3", lambdaRuntimesDir() + "/python/bootstrap.py"};
}

std::vector<std::string> LambdaFunction::processEnvironment(const Slot &slot) const {
    const char *path = std::getenv("PATH");
    const char *home = std::getenv("HOME");
    std::string region = regionOfGateway();
    const LambdaCredentials &creds = lambdaCredentials();
    char day[16];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(day, sizeof day, "%Y/%m/%d", &tm);
    unsigned char stream[16];
    fillRandom(stream, sizeof stream);
    std::string streamHex;
    for (unsigned char b : stream) {
        static const char digits[] = "0123456789abcdef";
        streamHex += digits[b >> 4];
        streamHex += digits[b & 15];
    }
    // Lambda's environment, not the gateway's: the gateway's own secrets stay out of function processes.
    std::vector<std::string> env = {
        std::string("PATH=") + (path && *path ? path : "/usr/local/bin:/usr/bin:/bin"),
        "LANG=C.UTF-8",
        "TZ=:UTC",
        "LAMBDA_TASK_ROOT=" + spec_.directory,
        "LAMBDA_RUNTIME_DIR=" + lambdaRuntimesDir() + (spec_.runtime.empty() ? "" : "/" + spec_.runtime),
        "AWS_LAMBDA_RUNTIME_API=127.0.0.1:" + std::to_string(slot.port),
        "AWS_LAMBDA_FUNCTION_NAME=" + name_,
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + std::to_string(spec_.memoryMb ? spec_.memoryMb : 128),
        "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + name_,
        "AWS_LAMBDA_LOG_STREAM_NAME=" + std::string(day) + "/[$LATEST]" + streamHex,
        "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
        "AWS_REGION=" + region,
        "AWS_DEFAULT_REGION=" + region,
        "AWS_ACCESS_KEY_ID=" + creds.accessKeyId,
        "AWS_SECRET_ACCESS_KEY=" + creds.secretAccessKey,
        "AWS_SESSION_TOKEN=" + creds.sessionToken,
    };
    if (home && *home) env.push_back(std::string("HOME=") + home);
    {
        // Callbacks over https:// to the management API's loopback endpoint verify against its certificate.
        std::lock_guard lock(g_callbackMutex);
        if (!g_callbackTrust.caFile.empty()) env.push_back("NODE_EXTRA_CA_CERTS=" + g_callbackTrust.caFile);
        if (!g_callbackTrust.bundleFile.empty()) {
            env.push_back("AWS_CA_BUNDLE=" + g_callbackTrust.bundleFile);
            env.push_back("SSL_CERT_FILE=" + g_callbackTrust.bundleFile);
        }
    }
    if (!spec_.handler.empty()) env.push_back("_HANDLER=" + spec_.handler);
    if (spec_.runtime == "python") env.push_back("PYTHONUNBUFFERED=1");  // lines reach the log as written
    for (const auto &[k, v] : spec_.environment) env.push_back(k + "=" + v);
    return env;
}

std::variant<std::unique_ptr<LambdaFunction>, std::string> LambdaFunction::start(const HandlerSpec &spec) {
    struct stat st{};
    if (stat(spec.lambda.directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return "its directory " + spec.lambda.directory + " is not a directory (" + std::strerror(errno ? errno : ENOTDIR) +
               "): \"directory\" is relative to routes.json";
    std::unique_ptr<LambdaFunction> fn(new LambdaFunction(spec));
    if (!spec.lambda.runtime.empty()) {
        std::string client = fn->processArgv()[1];
        if (access(client.c_str(), R_OK) != 0)
            return "wsgw's " + spec.lambda.runtime + " runtime client " + client +
                   " is missing: give the directory of wsgw's runtimes with --runtimes DIR (runtimes/ in the source tree)";
    }
    for (unsigned i = 0; i < std::max(1u, spec.lambda.concurrency); ++i) {
        auto slot = std::make_unique<Slot>();
        slot->index = i;
        std::string error;
        slot->listenFd = openRuntimeApiListener(&slot->port, &error);
        if (slot->listenFd < 0) return error;
        slot->wakeFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (slot->wakeFd < 0) return std::string("eventfd: ") + std::strerror(errno);
        fn->slots_.push_back(std::move(slot));
    }
    for (auto &s : fn->slots_) {
        Slot *sp = s.get();
        try {
            s->supervisor = std::thread([f = fn.get(), sp] { f->supervise(*sp); });
        } catch (const std::system_error &e) {  // refused, never an abort: ~LambdaFunction stops the others
            return threadShortage("a supervisor thread for its function processes", e);
        }
    }
    std::unique_lock lock(fn->mutex_);
    bool decided = fn->cv_.wait_for(lock, kStartWait, [&] {
        for (auto &s : fn->slots_)
            if (s->ready) return true;
        return fn->startFailures_ >= fn->slots_.size();
    });
    bool anyReady = false;
    for (auto &s : fn->slots_) anyReady = anyReady || s->ready;
    std::string error = fn->lastStartError_;
    lock.unlock();
    if (anyReady) return fn;
    if (!decided) error = "no function process asked for an invocation within 15 s (is it a Lambda Runtime API client?)";
    return error;  // ~LambdaFunction stops the supervisors and their processes
}

LambdaFunction::~LambdaFunction() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto &s : slots_) s->wake();
    for (auto &s : slots_)
        if (s->supervisor.joinable()) s->supervisor.join();
}

void LambdaFunction::supervise(Slot &slot) {
    RestartBackoff backoff;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            if (backoff.delay().count() > 0) cv_.wait_for(lock, backoff.delay(), [&] { return stopping_; });
            if (stopping_) return;
        }
        bool becameReady = runProcess(slot);
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            if (!becameReady) {
                ++startFailures_;
                cv_.notify_all();
            }
        }
        backoff.afterEnd(becameReady);  // a function that cannot start or keeps ending comes back ever slower
    }
}

bool LambdaFunction::runProcess(Slot &slot) {
    int outPipe[2], errPipe[2];
    if (pipe2(outPipe, O_CLOEXEC) != 0) return false;
    if (pipe2(errPipe, O_CLOEXEC) != 0) {
        close(outPipe[0]);
        close(outPipe[1]);
        return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2);
    posix_spawn_file_actions_addchdir_np(&actions, spec_.directory.c_str());
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
    std::vector<std::string> argvText = processArgv(), envText = processEnvironment(slot);
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
        std::lock_guard lock(mutex_);
        lastStartError_ = "cannot start '" + argvText[0] + "' in " + spec_.directory + ": " + std::strerror(rc) +
                          (rc == ENOENT ? (spec_.runtime == "nodejs" ? " (install Node.js: apt-get install nodejs)"
                                           : spec_.runtime == "python" ? " (install Python 3: apt-get install python3)"
                                                                       : " (is the command in PATH or relative to directory?)")
                                        : "");
        log::error("lambda function: cannot start a process", {log::Field("function", name_), log::Field("error", lastStartError_)});
        return false;
    }
    int pidFd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    ProcessOutput out("stdout", outPipe[0]), err("stderr", errPipe[0]);
    {
        std::lock_guard lock(mutex_);
        slot.pid = pid;
        slot.ready = false;
        slot.retiring = false;
        slot.killReason.clear();
    }
    log::info("lambda function process started", {log::Field("function", name_), log::Field("pid", static_cast<int64_t>(pid)),
                                                   log::Field("runtimeApi", "127.0.0.1:" + std::to_string(slot.port))});

    std::vector<std::unique_ptr<RuntimeApiConnection>> conns;
    bool warnedConnections = false;
    RuntimeApiConnection *waitingNext = nullptr;  // a `next` not answered yet
    std::string logRequestId;                     // the invocation the process runs (or ran last)
    bool becameReady = false, exited = false;
    std::chrono::steady_clock::time_point stopSentAt{};
    bool stopSent = false;
    std::vector<RuntimeApiRequest> requests;
    // Out of descriptors, the listening socket stays readable: it is left out of poll() until then.
    std::chrono::steady_clock::time_point acceptPausedUntil{};

    auto killGroup = [&](int sig) {
        if (kill(-pid, sig) != 0) kill(pid, sig);
    };
    auto reply = [&](RuntimeApiConnection &c, int status, std::string_view body) {
        return c.send(runtimeApiResponse(status, body));
    };

    while (!exited) {
        std::vector<pollfd> fds;
        fds.push_back({slot.wakeFd, POLLIN, 0});
        auto now = std::chrono::steady_clock::now();
        bool acceptPaused = now < acceptPausedUntil;
        fds.push_back({acceptPaused ? -1 : slot.listenFd, POLLIN, 0});  // poll ignores a negative fd
        fds.push_back({pidFd, POLLIN, 0});
        fds.push_back({out.fd(), POLLIN, 0});
        fds.push_back({err.fd(), POLLIN, 0});
        for (auto &c : conns) fds.push_back({c->fd(), POLLIN, 0});
        int timeoutMs = -1;
        bool watchMemory;
        {
            std::lock_guard lock(mutex_);
            watchMemory = spec_.memoryMb && slot.phase == Phase::Delivered;
        }
        if (watchMemory) timeoutMs = kMemoryCheckMs;
        if (stopSent) timeoutMs = 50;
        if (pidFd < 0) timeoutMs = timeoutMs < 0 ? 50 : std::min(timeoutMs, 50);  // no pidfd: poll waitpid
        if (acceptPaused) {
            auto left = std::chrono::ceil<std::chrono::milliseconds>(acceptPausedUntil - now).count();
            timeoutMs = timeoutMs < 0 ? static_cast<int>(left) : std::min(timeoutMs, static_cast<int>(left));
        }
        int n = poll(fds.data(), fds.size(), timeoutMs);
        if (n < 0 && errno != EINTR) break;

        if (fds[0].revents) {
            uint64_t v;
            ssize_t r = read(slot.wakeFd, &v, sizeof v);
            (void)r;
        }
        {
            std::lock_guard lock(mutex_);
            if (stopping_ && !stopSent) {
                stopSent = true;
                stopSentAt = std::chrono::steady_clock::now();
                killGroup(SIGTERM);
            }
        }
        if (stopSent && std::chrono::steady_clock::now() - stopSentAt > kStopGrace) killGroup(SIGKILL);
        // Output first, always: what a function printed before answering belongs to that invocation, even
        // when poll saw its answer and its last line in the same round.
        out.drain("function", name_, logRequestId);
        err.drain("function", name_, logRequestId);
        if (fds[1].revents) {
            for (;;) {
                int c = accept4(slot.listenFd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c < 0) {
                    int err = errno;
                    std::lock_guard lock(mutex_);
                    if (acceptShortage_.failed(err)) acceptPausedUntil = std::chrono::steady_clock::now() + AcceptShortage::kRetry;
                    break;
                }
                // A runtime client keeps one connection (or opens one per request and closes it); each may
                // buffer a 6 MB body, so a function cannot make the gateway hold more than a few of them.
                if (conns.size() >= kMaxRuntimeApiConnections) {
                    if (!warnedConnections) {
                        log::warn("function opened too many Runtime API connections; the newest are closed",
                                  {log::Field("function", name_), log::Field("limit", static_cast<int64_t>(kMaxRuntimeApiConnections))});
                        warnedConnections = true;
                    }
                    close(c);
                    continue;
                }
                conns.push_back(std::make_unique<RuntimeApiConnection>(c));
            }
        }
        for (size_t i = 0; i < conns.size(); ++i) {
            if (5 + i >= fds.size() || !fds[5 + i].revents) continue;
            RuntimeApiConnection &c = *conns[i];
            requests.clear();
            bool open = c.readRequests(requests);
            for (RuntimeApiRequest &req : requests) {
                using K = RuntimeApiRequest::Kind;
                switch (req.kind) {
                case K::Next: {
                    waitingNext = &c;
                    if (!becameReady) {
                        becameReady = true;
                        log::info("lambda function process ready", {log::Field("function", name_), log::Field("pid", static_cast<int64_t>(pid))});
                        std::lock_guard lock(mutex_);
                        slot.ready = true;
                        startFailures_ = 0;
                        cv_.notify_all();
                    }
                    break;
                }
                case K::Response:
                case K::Error: {
                    bool matched = false;
                    {
                        std::lock_guard lock(mutex_);
                        if (slot.phase == Phase::Delivered && req.requestId == slot.current.requestId) {
                            matched = true;
                            IsolatedReply r;
                            if (req.kind == K::Response) {
                                LambdaResult mapped = mapLambdaResult(req.body);
                                if (!mapped.ok) {
                                    r.rc = -1;
                                    r.failure = mapped.problem;
                                } else {
                                    r.status = mapped.status;
                                    r.hasBody = mapped.hasBody;
                                    r.body = std::move(mapped.body);
                                    r.binary = mapped.binary;
                                }
                            } else {
                                LambdaError e = parseLambdaError(req.body, req.errorTypeHeader);
                                r.rc = -1;
                                r.failure = "function error: " + e.type + ": " + e.message;
                            }
                            slot.result = std::move(r);
                            slot.phase = Phase::Done;
                            cv_.notify_all();
                        }
                    }
                    reply(c, matched ? 202 : 400, matched ? R"({"status":"OK"})" : invalidRequestIdBody());
                    if (matched && req.kind == K::Error) {
                        // SPEC 11: after an error the process is replaced, so no state the failure left
                        // behind reaches the next invocation.
                        std::lock_guard lock(mutex_);
                        slot.retiring = true;
                        killGroup(SIGKILL);
                    }
                    break;
                }
                case K::InitError: {
                    LambdaError e = parseLambdaError(req.body, req.errorTypeHeader);
                    std::string text = "the function failed to initialise: " + e.type + ": " + e.message;
                    log::error("lambda function init error", {log::Field("function", name_), log::Field("errorType", e.type),
                                                              log::Field("errorMessage", e.message)});
                    reply(c, 202, R"({"status":"OK"})");
                    std::lock_guard lock(mutex_);
                    lastStartError_ = text;
                    slot.retiring = true;
                    slot.killReason = text;
                    killGroup(SIGKILL);  // as Lambda: a function that failed its init is not used
                    break;
                }
                case K::NotFound: reply(c, 404, jsonMessage("NotFound", req.problem)); break;
                case K::MethodNotAllowed: reply(c, 405, jsonMessage("MethodNotAllowed", req.problem)); break;
                case K::Malformed: {
                    reply(c, req.status ? req.status : 400, jsonMessage("InvalidRequest", req.problem));
                    // An answer over Lambda's payload limit cannot be read, so the invocation it belonged to fails
                    // now, saying why, rather than at its timeout (the connection is closed after the 413).
                    std::lock_guard lock(mutex_);
                    if (req.status == 413 && slot.phase == Phase::Delivered && slot.killReason.empty()) {
                        slot.retiring = true;
                        slot.killReason = "the function's answer is larger than 6 MB, Lambda's limit for a synchronous invocation (" +
                                          req.problem + "): return less";
                        killGroup(SIGKILL);
                    }
                    break;
                }
                }
            }
            if (!open) {
                if (waitingNext == &c) waitingNext = nullptr;
                conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
                fds.erase(fds.begin() + 5 + static_cast<std::ptrdiff_t>(i));
                --i;
            }
        }
        // Hand an assigned invocation to a waiting `next`.
        if (waitingNext) {
            std::string response;
            {
                std::lock_guard lock(mutex_);
                if (slot.phase == Phase::Assigned && !slot.retiring) {
                    slot.phase = Phase::Delivered;
                    response = nextInvocationResponse(slot.current);
                    logRequestId = slot.current.requestId;
                }
            }
            if (!response.empty()) {
                RuntimeApiConnection *c = waitingNext;
                waitingNext = nullptr;
                if (!c->send(response)) killGroup(SIGKILL);  // it cannot take its invocation: replace it
            }
        }
        if (watchMemory) {
            size_t rss = treeResidentBytes(pid);
            if (rss > (spec_.memoryMb << 20)) {
                std::lock_guard lock(mutex_);
                if (slot.phase == Phase::Delivered && slot.killReason.empty()) {
                    slot.retiring = true;
                    slot.killReason = "function process over memoryMb (" + std::to_string(rss >> 20) + " MB resident, limit " +
                                      std::to_string(spec_.memoryMb) + " MB): killed";
                    killGroup(SIGKILL);
                    log::warn("lambda function process over its memory; killed",
                              {log::Field("function", name_), log::Field("requestId", slot.current.requestId),
                               log::Field("residentMb", static_cast<uint64_t>(rss >> 20)),
                               log::Field("memoryMb", static_cast<uint64_t>(spec_.memoryMb))});
                }
            }
        }
        if (pidFd >= 0) {
            exited = fds[2].revents != 0;
        } else {
            siginfo_t info{};
            exited = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
        }
    }

    // What it started in its process group and left running goes with it (the group outlives its leader
    // until it is reaped, so the ID cannot name anything else yet). A child that left the group (setsid,
    // detached) is not reached.
    kill(-pid, SIGKILL);
    // Reap it; then what it wrote last, and its invocation, if it was running one, fails.
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    out.drain("function", name_, logRequestId);
    err.drain("function", name_, logRequestId);
    out.flush("function", name_, logRequestId);
    err.flush("function", name_, logRequestId);
    if (pidFd >= 0) close(pidFd);
    conns.clear();
    std::string how = describeExit(status);
    bool stopping;
    {
        std::lock_guard lock(mutex_);
        stopping = stopping_;
        if (slot.phase == Phase::Assigned || slot.phase == Phase::Delivered) {
            IsolatedReply r;
            r.rc = -1;
            r.workerDied = slot.killReason.empty();
            r.failure = !slot.killReason.empty() ? slot.killReason : "Runtime exited during the invocation: function process " + how;
            slot.result = std::move(r);
            slot.phase = Phase::Done;
        }
        if (!becameReady && lastStartError_.empty())
            lastStartError_ = "its process " + how + " before asking for an invocation (see its stderr lines in the log)";
        slot.pid = -1;
        slot.ready = false;
        cv_.notify_all();
    }
    if (!stopping)
        log::warn("lambda function process ended; starting a new one",
                  {log::Field("function", name_), log::Field("pid", static_cast<int64_t>(pid)), log::Field("how", how)});
    return becameReady;
}

IsolatedReply LambdaFunction::invoke(const InvocationEvent &event, std::chrono::steady_clock::time_point deadline) {
    auto startedAt = std::chrono::steady_clock::now();
    NextInvocation next;
    next.requestId = event.fields.requestId.empty() ? newRequestId() : std::string(event.fields.requestId);
    next.functionArn = functionArn_;
    next.traceId = newLambdaTraceId();
    next.deadlineEpochMs = nowEpochMs() + std::chrono::duration_cast<std::chrono::milliseconds>(deadline - startedAt).count();
    // requestContext.domainName and stage make https://{domainName}/{stage} this gateway's management API.
    std::string callbackEndpoint = lambdaCallbackEndpoint();
    EventFields fields = event.fields;
    fields.domainName = callbackEndpoint;
    fields.stage = spec_.stage;
    next.eventJson = buildEventJson(*event.connection, fields);

    std::unique_lock lock(mutex_);
    Slot *slot = nullptr;
    auto allFailing = [&] {
        for (auto &s : slots_)
            if (s->ready) return false;
        return startFailures_ >= slots_.size();
    };
    auto pick = [&] {
        for (auto &s : slots_) {
            if (s->ready && s->phase == Phase::None && !s->retiring) {
                slot = s.get();
                return true;
            }
        }
        return stopping_ || allFailing();
    };
    if (!cv_.wait_until(lock, deadline, pick) || !slot) {
        IsolatedReply r;
        r.rc = -1;
        r.failure = stopping_ ? "the gateway is stopping"
                    : allFailing() ? "the function cannot start: " + lastStartError_
                                   : "no function process became free before the deadline (all " + std::to_string(slots_.size()) +
                                         " of its \"concurrency\" are busy)";
        r.workerDied = true;
        return r;
    }
    slot->phase = Phase::Assigned;
    slot->current = std::move(next);
    slot->wake();
    if (!cv_.wait_until(lock, deadline, [&] { return slot->phase == Phase::Done; })) {
        // A function past its deadline is killed, as Lambda ends it; the slot starts a new process.
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - startedAt).count();
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.2f", static_cast<double>(ms) / 1000.0);
        std::string reason = std::string("Task timed out after ") + seconds + " seconds; function process killed";
        slot->retiring = true;
        if (slot->killReason.empty()) slot->killReason = reason;
        if (slot->pid > 0) {
            if (kill(-slot->pid, SIGKILL) != 0) kill(slot->pid, SIGKILL);
            log::warn("lambda function timed out; killing its process",
                      {log::Field("function", name_), log::Field("requestId", slot->current.requestId),
                       log::Field("pid", static_cast<int64_t>(slot->pid))});
        }
        cv_.wait(lock, [&] { return slot->phase == Phase::Done; });  // the supervisor reaps it
        slot->phase = Phase::None;
        cv_.notify_all();
        IsolatedReply r;
        r.rc = -1;
        r.failure = reason;
        return r;
    }
    IsolatedReply r = std::move(slot->result);
    slot->phase = Phase::None;
    cv_.notify_all();
    return r;
}

}  // namespace wsgw
