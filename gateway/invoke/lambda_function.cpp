// Owns: a "lambda" handler's pool of function processes: its slots, start and stop, and invoke()
// (lambda_function.h).
#include "lambda_function.h"

#include "connection_id.h"
#include "event.h"
#include "lambda_environment.h"
#include "lambda_process_run.h"
#include "log.h"
#include "restart_backoff.h"
#include "thread_shortage.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace wsgw {

namespace {
constexpr auto kStartWait = std::chrono::seconds(15);
}  // namespace

LambdaFunction::LambdaFunction(const HandlerSpec &spec)
    : pool_(spec), functionArn_("arn:aws:lambda:" + lambdaRegion() + ":000000000000:function:" + spec.name) {}

std::variant<std::unique_ptr<LambdaFunction>, std::string> LambdaFunction::start(const HandlerSpec &spec) {
    struct stat st{};
    if (stat(spec.lambda.directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return "its directory " + spec.lambda.directory + " is not a directory (" + std::strerror(errno ? errno : ENOTDIR) +
               "): \"directory\" is relative to routes.json";
    std::unique_ptr<LambdaFunction> fn(new LambdaFunction(spec));
    if (!spec.lambda.runtime.empty()) {
        std::string client = lambdaProcessArgv(spec.lambda)[1];
        if (access(client.c_str(), R_OK) != 0)
            return "wsgw's " + spec.lambda.runtime + " runtime client " + client +
                   " is missing: give the directory of wsgw's runtimes with --runtimes DIR (runtimes/ in the source tree)";
    }
    if (std::string error = fn->openSlots(); !error.empty()) return error;
    if (std::string error = fn->startSupervisors(); !error.empty()) return error;  // ~LambdaFunction stops the others
    return awaitFirstReady(std::move(fn));
}

// One slot per `concurrency`, each with its Runtime API listener and wake-up; "" or why not.
std::string LambdaFunction::openSlots() {
    for (unsigned i = 0; i < std::max(1u, pool_.spec.concurrency); ++i) {
        auto slot = std::make_unique<LambdaSlot>();
        slot->index = i;
        std::string error;
        slot->listenFd = openRuntimeApiListener(&slot->port, &error);
        if (slot->listenFd < 0) return error;
        slot->wakeFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (slot->wakeFd < 0) return std::string("eventfd: ") + std::strerror(errno);
        slots_.push_back(std::move(slot));
    }
    return "";
}

std::string LambdaFunction::startSupervisors() {
    for (auto &s : slots_) {
        LambdaSlot *sp = s.get();
        try {
            s->supervisor = std::thread([this, sp] { supervise(*sp); });
        } catch (const std::system_error &e) {  // refused, never an abort
            return threadShortage("a supervisor thread for its function processes", e);
        }
    }
    return "";
}

std::variant<std::unique_ptr<LambdaFunction>, std::string> LambdaFunction::awaitFirstReady(std::unique_ptr<LambdaFunction> fn) {
    std::unique_lock lock(fn->pool_.mutex);
    bool decided = fn->pool_.cv.wait_for(lock, kStartWait, [&] {
        for (auto &s : fn->slots_)
            if (s->ready) return true;
        return fn->pool_.startFailures >= fn->slots_.size();
    });
    bool anyReady = false;
    for (auto &s : fn->slots_) anyReady = anyReady || s->ready;
    std::string error = fn->pool_.lastStartError;
    lock.unlock();
    if (anyReady) return fn;
    if (!decided) error = "no function process asked for an invocation within 15 s (is it a Lambda Runtime API client?)";
    return error;  // ~LambdaFunction stops the supervisors and their processes
}

LambdaFunction::~LambdaFunction() {
    {
        std::lock_guard lock(pool_.mutex);
        pool_.stopping = true;
    }
    pool_.cv.notify_all();
    for (auto &s : slots_) s->wake();
    for (auto &s : slots_)
        if (s->supervisor.joinable()) s->supervisor.join();
}

void LambdaFunction::supervise(LambdaSlot &slot) {
    superviseWithBackoff(
        pool_.mutex, pool_.cv, pool_.stopping, [&] { return LambdaProcessRun(pool_, slot).run(); },
        [&](bool becameReady) {
            if (!becameReady) {
                ++pool_.startFailures;
                pool_.cv.notify_all();
            }
            return true;
        });
}

NextInvocation LambdaFunction::nextInvocation(const InvocationEvent &event, std::chrono::milliseconds timeLeft) const {
    NextInvocation next;
    next.requestId = event.fields.requestId.empty() ? newRequestId() : std::string(event.fields.requestId);
    next.functionArn = functionArn_;
    next.traceId = newLambdaTraceId();
    next.deadlineEpochMs = nowEpochMs() + timeLeft.count();
    // requestContext.domainName and stage make https://{domainName}/{stage} this gateway's management API.
    std::string callbackEndpoint = lambdaCallbackEndpoint();  // outlives `fields`, which views it
    EventFields fields = event.fields;
    fields.domainName = callbackEndpoint;
    fields.stage = pool_.spec.stage;
    next.eventJson = buildEventJson(*event.connection, fields);
    return next;
}

bool LambdaFunction::allFailing() const {
    for (auto &s : slots_)
        if (s->ready) return false;
    return pool_.startFailures >= slots_.size();
}

LambdaSlot *LambdaFunction::freeSlot() {
    for (auto &s : slots_)
        if (s->ready && s->phase == LambdaPhase::None && !s->retiring) return s.get();
    return nullptr;
}

IsolatedReply LambdaFunction::invoke(const InvocationEvent &event, std::chrono::steady_clock::time_point deadline) {
    auto startedAt = std::chrono::steady_clock::now();
    auto timeLeft = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - startedAt);
    NextInvocation next = nextInvocation(event, timeLeft);

    std::unique_lock lock(pool_.mutex);
    LambdaSlot *slot = nullptr;
    auto pick = [&] {
        slot = freeSlot();
        return slot || pool_.stopping || allFailing();
    };
    if (!pool_.cv.wait_until(lock, deadline, pick) || !slot) {
        IsolatedReply r;
        r.rc = -1;
        r.failure = pool_.stopping ? "the gateway is stopping"
                    : allFailing() ? "the function cannot start: " + pool_.lastStartError
                                   : "no function process became free before the deadline (all " + std::to_string(slots_.size()) +
                                         " of its \"concurrency\" are busy)";
        r.workerDied = true;
        return r;
    }
    slot->phase = LambdaPhase::Assigned;
    slot->current = std::move(next);
    slot->wake();
    if (!pool_.cv.wait_until(lock, deadline, [&] { return slot->phase == LambdaPhase::Done; }))
        return killTimedOut(lock, *slot, timeLeft);
    IsolatedReply r = std::move(slot->result);
    slot->phase = LambdaPhase::None;
    pool_.cv.notify_all();
    return r;
}

// A function past its deadline is killed, as Lambda ends it; the slot starts a new process.
IsolatedReply LambdaFunction::killTimedOut(std::unique_lock<std::mutex> &lock, LambdaSlot &slot, std::chrono::milliseconds allowed) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f", static_cast<double>(allowed.count()) / 1000.0);
    std::string reason = std::string("Task timed out after ") + seconds + " seconds; function process killed";
    slot.retiring = true;
    if (slot.killReason.empty()) slot.killReason = reason;
    if (slot.pid > 0) {
        if (kill(-slot.pid, SIGKILL) != 0) kill(slot.pid, SIGKILL);
        log::warn("lambda function timed out; killing its process",
                  {log::Field("function", pool_.name), log::Field("requestId", slot.current.requestId),
                   log::Field("pid", static_cast<int64_t>(slot.pid))});
    }
    pool_.cv.wait(lock, [&] { return slot.phase == LambdaPhase::Done; });  // the supervisor reaps it
    slot.phase = LambdaPhase::None;
    pool_.cv.notify_all();
    IsolatedReply r;
    r.rc = -1;
    r.failure = reason;
    return r;
}

}  // namespace wsgw
