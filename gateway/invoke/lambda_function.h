// A "lambda" handler instance (docs/lambda.md): a pool of up to `concurrency` long-lived function
// processes, each running a Lambda Runtime API client (wsgw's own runtimes/nodejs or runtimes/python, or
// any `command`) against a Runtime API the gateway serves to that process alone on 127.0.0.1, so the
// gateway always knows which process runs which invocation. Each process serves one invocation at a time.
//
// Owns the pool: its process slots (each with its Runtime API listening socket and a wake-up for its
// supervisor), starting them and waiting for the first to be ready, handing an invocation to a free slot
// and waiting for its result, killing a process past the route's deadline ("Task timed out"), and stopping.
// Each slot has one supervisor thread, which runs its processes one after another (LambdaProcessRun,
// lambda_process_run.h: one process's life, its Runtime API, memory limit and output) and restarts a
// function that cannot start ever slower, up to every 5 s (restart_backoff.h). What a process is started
// with is lambda_environment.h's; the hot-reload fingerprint of the function's directory is lambda_directory.h's.
//
// invoke() is called on an invoker worker thread (never a network thread) and blocks it until the result,
// like an isolated plugin.
#pragma once

#include "config.h"
#include "host_api.h"
#include "isolated_plugin.h"
#include "lambda_slot.h"

#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace wsgw {

class LambdaFunction {
public:
    // Starts the processes and waits (up to 15 s) until one has asked for its first invocation; the error
    // says why none did (its init error, its exit status, a missing directory or runtime client).
    static std::variant<std::unique_ptr<LambdaFunction>, std::string> start(const HandlerSpec &spec);
    ~LambdaFunction();
    LambdaFunction(const LambdaFunction &) = delete;
    LambdaFunction &operator=(const LambdaFunction &) = delete;

    // Runs one invocation in a free process; returns at the result, the process's death or `deadline`
    // (then the process is killed: rc != 0, a "Task timed out" failure; timedOut stays false, as on AWS a
    // function's timeout is the function's error, not the endpoint's).
    IsolatedReply invoke(const InvocationEvent &event, std::chrono::steady_clock::time_point deadline);

    const std::string &name() const { return pool_.name; }

private:
    explicit LambdaFunction(const HandlerSpec &spec);
    std::string openSlots();
    std::string startSupervisors();
    static std::variant<std::unique_ptr<LambdaFunction>, std::string> awaitFirstReady(std::unique_ptr<LambdaFunction> fn);
    void supervise(LambdaSlot &slot);
    NextInvocation nextInvocation(const InvocationEvent &event, std::chrono::milliseconds timeLeft) const;
    bool allFailing() const;   // with pool_.mutex held
    LambdaSlot *freeSlot();    // with pool_.mutex held
    IsolatedReply killTimedOut(std::unique_lock<std::mutex> &lock, LambdaSlot &slot, std::chrono::milliseconds allowed);

    LambdaPoolState pool_;
    std::string functionArn_;
    std::vector<std::unique_ptr<LambdaSlot>> slots_;
};

}  // namespace wsgw
