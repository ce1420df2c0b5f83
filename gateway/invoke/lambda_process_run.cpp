// Owns: one function process's life in a lambda slot and what its Runtime API requests do (lambda_process_run.h).
#include "lambda_process_run.h"

#include "exit_status.h"
#include "lambda_environment.h"
#include "lambda_result.h"
#include "log.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr int kMemoryCheckMs = 50;
constexpr auto kStopGrace = std::chrono::milliseconds(500);  // SIGTERM, then SIGKILL

// The poll entries before the Runtime API's (which the endpoint appends).
enum : size_t { kWakeEntry, kExitEntry, kStdoutEntry, kStderrEntry, kRuntimeApiEntries };

std::string invalidRequestIdBody() {
    return R"({"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"})";
}

std::string runtimeApiErrorBody(std::string_view type, std::string_view message) {
    std::string s = "{\"errorType\":";
    log::appendJsonString(s, type);
    s += ",\"errorMessage\":";
    log::appendJsonString(s, message);
    s += "}";
    return s;
}

// The invocation's outcome from the function's response or error.
IsolatedReply replyOfAnswer(const RuntimeApiRequest &req) {
    IsolatedReply r;
    if (req.kind == RuntimeApiRequest::Kind::Response) {
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
    return r;
}

}  // namespace

LambdaProcessRun::LambdaProcessRun(LambdaPoolState &pool, LambdaSlot &slot)
    : pool_(pool), slot_(slot), endpoint_(pool.name, slot.listenFd, pool.mutex, pool.acceptShortage) {}

bool LambdaProcessRun::start() {
    const LambdaSpec &spec = pool_.spec;
    std::vector<std::string> argv = lambdaProcessArgv(spec);
    std::string program = argv[0];
    int spawnError = 0;
    process_ = FunctionProcess::spawn(std::move(argv), lambdaProcessEnvironment(pool_.name, spec, slot_.port), spec.directory, &spawnError);
    if (!process_) {
        if (spawnError == 0) return false;  // no pipes for its output
        std::lock_guard lock(pool_.mutex);
        pool_.lastStartError = "cannot start '" + program + "' in " + spec.directory + ": " + std::strerror(spawnError) +
                               (spawnError == ENOENT ? (spec.runtime == "nodejs" ? " (install Node.js: apt-get install nodejs)"
                                                        : spec.runtime == "python" ? " (install Python 3: apt-get install python3)"
                                                                                   : " (is the command in PATH or relative to directory?)")
                                                     : "");
        log::error("lambda function: cannot start a process", {log::Field("function", pool_.name), log::Field("error", pool_.lastStartError)});
        return false;
    }
    {
        std::lock_guard lock(pool_.mutex);
        slot_.pid = process_->pid();
        slot_.ready = false;
        slot_.retiring = false;
        slot_.killReason.clear();
    }
    log::info("lambda function process started", {log::Field("function", pool_.name), log::Field("pid", static_cast<int64_t>(process_->pid())),
                                                   log::Field("runtimeApi", "127.0.0.1:" + std::to_string(slot_.port))});
    return true;
}

bool LambdaProcessRun::run() {
    if (!start()) return false;
    bool exited = false;
    while (!exited) {
        bool watchMemory = false;
        if (pollOnce(watchMemory) < 0 && errno != EINTR) break;
        if (fds_[kWakeEntry].revents) {
            uint64_t v;
            ssize_t r = read(slot_.wakeFd, &v, sizeof v);
            (void)r;
        }
        stopIfPoolStops();
        // Output first, always: what a function printed before answering belongs to that invocation, even
        // when poll saw its answer and its last line in the same round.
        process_->drainOutput(pool_.name, logRequestId_);
        endpoint_.serve(fds_, kRuntimeApiEntries, [this](RuntimeApiConnection &c, RuntimeApiRequest &req) { handleRequest(c, req); });
        deliverAssigned();
        if (watchMemory) checkMemory();
        exited = process_->pidFd() >= 0 ? fds_[kExitEntry].revents != 0 : process_->exitedWithoutPidFd();
    }
    end();
    return becameReady_;
}

int LambdaProcessRun::pollOnce(bool &watchMemory) {
    fds_.clear();
    fds_.push_back({slot_.wakeFd, POLLIN, 0});
    fds_.push_back({process_->pidFd(), POLLIN, 0});
    fds_.push_back({process_->stdoutFd(), POLLIN, 0});  // -1 while its read rate is over the bound
    fds_.push_back({process_->stderrFd(), POLLIN, 0});
    int acceptPauseMs = endpoint_.addPollEntries(fds_);
    int timeoutMs = -1;
    {
        std::lock_guard lock(pool_.mutex);
        watchMemory = pool_.spec.memoryMb && slot_.phase == LambdaPhase::Delivered;
    }
    if (watchMemory) timeoutMs = kMemoryCheckMs;
    if (stopSent_) timeoutMs = 50;
    if (process_->pidFd() < 0) timeoutMs = timeoutMs < 0 ? 50 : std::min(timeoutMs, 50);  // no pidfd: poll waitpid
    if (acceptPauseMs >= 0) timeoutMs = timeoutMs < 0 ? acceptPauseMs : std::min(timeoutMs, acceptPauseMs);
    if (int outputPauseMs = process_->outputPauseLeftMs()) timeoutMs = timeoutMs < 0 ? outputPauseMs : std::min(timeoutMs, outputPauseMs);
    return poll(fds_.data(), fds_.size(), timeoutMs);
}

void LambdaProcessRun::stopIfPoolStops() {
    {
        std::lock_guard lock(pool_.mutex);
        if (pool_.stopping && !stopSent_) {
            stopSent_ = true;
            stopSentAt_ = std::chrono::steady_clock::now();
            process_->killGroup(SIGTERM);
        }
    }
    if (stopSent_ && std::chrono::steady_clock::now() - stopSentAt_ > kStopGrace) process_->killGroup(SIGKILL);
}

void LambdaProcessRun::reply(RuntimeApiConnection &c, int status, std::string_view body) {
    c.send(runtimeApiResponse(status, body));
}

void LambdaProcessRun::handleRequest(RuntimeApiConnection &c, RuntimeApiRequest &req) {
    using K = RuntimeApiRequest::Kind;
    switch (req.kind) {
    case K::Next: onNext(c); break;
    case K::Response:
    case K::Error: onInvocationAnswer(c, req); break;
    case K::InitError: onInitError(c, req); break;
    case K::NotFound: reply(c, 404, runtimeApiErrorBody("NotFound", req.problem)); break;
    case K::MethodNotAllowed: reply(c, 405, runtimeApiErrorBody("MethodNotAllowed", req.problem)); break;
    case K::Malformed: onMalformed(c, req); break;
    }
}

void LambdaProcessRun::onNext(RuntimeApiConnection &c) {
    endpoint_.setWaitingNext(c);
    if (becameReady_) return;
    becameReady_ = true;
    log::info("lambda function process ready", {log::Field("function", pool_.name), log::Field("pid", static_cast<int64_t>(process_->pid()))});
    std::lock_guard lock(pool_.mutex);
    slot_.ready = true;
    pool_.startFailures = 0;
    pool_.cv.notify_all();
}

void LambdaProcessRun::onInvocationAnswer(RuntimeApiConnection &c, const RuntimeApiRequest &req) {
    bool matched = false;
    {
        std::lock_guard lock(pool_.mutex);
        if (slot_.phase == LambdaPhase::Delivered && req.requestId == slot_.current.requestId) {
            matched = true;
            slot_.result = replyOfAnswer(req);
            slot_.phase = LambdaPhase::Done;
            pool_.cv.notify_all();
        }
    }
    reply(c, matched ? 202 : 400, matched ? R"({"status":"OK"})" : invalidRequestIdBody());
    if (matched && req.kind == RuntimeApiRequest::Kind::Error) {
        // After an error the process is replaced, so no state the failure left behind reaches the
        // next invocation.
        std::lock_guard lock(pool_.mutex);
        slot_.retiring = true;
        process_->killGroup(SIGKILL);
    }
}

void LambdaProcessRun::onInitError(RuntimeApiConnection &c, const RuntimeApiRequest &req) {
    LambdaError e = parseLambdaError(req.body, req.errorTypeHeader);
    std::string text = "the function failed to initialise: " + e.type + ": " + e.message;
    log::error("lambda function init error", {log::Field("function", pool_.name), log::Field("errorType", e.type),
                                              log::Field("errorMessage", e.message)});
    reply(c, 202, R"({"status":"OK"})");
    std::lock_guard lock(pool_.mutex);
    pool_.lastStartError = text;
    slot_.retiring = true;
    slot_.killReason = text;
    process_->killGroup(SIGKILL);  // as Lambda: a function that failed its init is not used
}

void LambdaProcessRun::onMalformed(RuntimeApiConnection &c, const RuntimeApiRequest &req) {
    reply(c, req.status ? req.status : 400, runtimeApiErrorBody("InvalidRequest", req.problem));
    // An answer over Lambda's payload limit cannot be read, so the invocation it belonged to fails now,
    // saying why, rather than at its timeout (the connection is closed after the 413).
    std::lock_guard lock(pool_.mutex);
    if (req.status == 413 && slot_.phase == LambdaPhase::Delivered && slot_.killReason.empty()) {
        slot_.retiring = true;
        slot_.killReason = "the function's answer is larger than 6 MB, Lambda's limit for a synchronous invocation (" + req.problem +
                           "): return less";
        process_->killGroup(SIGKILL);
    }
}

// Hands an assigned invocation to a waiting `next`.
void LambdaProcessRun::deliverAssigned() {
    if (!endpoint_.hasWaitingNext()) return;
    std::string response;
    {
        std::lock_guard lock(pool_.mutex);
        if (slot_.phase == LambdaPhase::Assigned && !slot_.retiring) {
            slot_.phase = LambdaPhase::Delivered;
            response = nextInvocationResponse(slot_.current);
            logRequestId_ = slot_.current.requestId;
        }
    }
    if (response.empty()) return;
    RuntimeApiConnection *c = endpoint_.takeWaitingNext();
    if (!c->send(response)) process_->killGroup(SIGKILL);  // it cannot take its invocation: replace it
}

void LambdaProcessRun::checkMemory() {
    size_t rss = process_->residentBytes();
    const LambdaSpec &spec = pool_.spec;
    if (rss <= (spec.memoryMb << 20)) return;
    std::lock_guard lock(pool_.mutex);
    if (slot_.phase != LambdaPhase::Delivered || !slot_.killReason.empty()) return;
    slot_.retiring = true;
    slot_.killReason = "function process over memoryMb (" + std::to_string(rss >> 20) + " MB resident, limit " +
                       std::to_string(spec.memoryMb) + " MB): killed";
    process_->killGroup(SIGKILL);
    log::warn("lambda function process over its memory; killed",
              {log::Field("function", pool_.name), log::Field("requestId", slot_.current.requestId),
               log::Field("residentMb", static_cast<uint64_t>(rss >> 20)), log::Field("memoryMb", static_cast<uint64_t>(spec.memoryMb))});
}

void LambdaProcessRun::end() {
    pid_t pid = process_->pid();
    // The process is reaped; then its invocation, if it was running one, fails.
    std::string how = describeExit(process_->reap(pool_.name, logRequestId_));
    process_.reset();
    endpoint_.closeAll();
    bool stopping;
    {
        std::lock_guard lock(pool_.mutex);
        stopping = pool_.stopping;
        if (slot_.phase == LambdaPhase::Assigned || slot_.phase == LambdaPhase::Delivered) {
            IsolatedReply r;
            r.rc = -1;
            r.workerDied = slot_.killReason.empty();
            r.failure = !slot_.killReason.empty() ? slot_.killReason : "Runtime exited during the invocation: function process " + how;
            slot_.result = std::move(r);
            slot_.phase = LambdaPhase::Done;
        }
        if (!becameReady_ && pool_.lastStartError.empty())
            pool_.lastStartError = "its process " + how + " before asking for an invocation (see its stderr lines in the log)";
        slot_.pid = -1;
        slot_.ready = false;
        pool_.cv.notify_all();
    }
    if (!stopping)
        log::warn("lambda function process ended; starting a new one",
                  {log::Field("function", pool_.name), log::Field("pid", static_cast<int64_t>(pid)), log::Field("how", how)});
}

}  // namespace wsgw
