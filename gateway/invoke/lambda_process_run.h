// Owns: one function process's life in a lambda slot (docs/lambda.md), run by the slot's supervisor thread:
// it starts the process (FunctionProcess, with lambda_environment's argv and environment) and polls
// everything of it: the slot's wake-up from invoke(), the process's exit, its output (each line a log line
// with the running invocation's request ID) and its Runtime API (RuntimeApiEndpoint). It answers each
// Runtime API request against the slot: `next` makes the process ready and is answered with the invocation
// invoke() assigned; a response or error completes that invocation (an error replaces the process); an init
// error, an answer over 6 MB or resident memory over memoryMb (checked every 50 ms while an invocation runs)
// kills the process, saying why. When the pool stops it sends SIGTERM, then SIGKILL after 500 ms. At the end
// it reaps the process and fails the invocation it was running, if any.
#pragma once

#include "function_process.h"
#include "lambda_runtime_endpoint.h"
#include "lambda_slot.h"

#include <chrono>
#include <memory>
#include <string>

namespace wsgw {

class LambdaProcessRun {
public:
    LambdaProcessRun(LambdaPoolState &pool, LambdaSlot &slot);
    // Runs the process until it ends; true when it asked for an invocation.
    bool run();

private:
    bool start();
    int pollOnce(bool &watchMemory);
    void stopIfPoolStops();
    void handleRequest(RuntimeApiConnection &c, RuntimeApiRequest &req);
    void onNext(RuntimeApiConnection &c);
    void onInvocationAnswer(RuntimeApiConnection &c, const RuntimeApiRequest &req);
    void onInitError(RuntimeApiConnection &c, const RuntimeApiRequest &req);
    void onMalformed(RuntimeApiConnection &c, const RuntimeApiRequest &req);
    void deliverAssigned();
    void checkMemory();
    void end();
    void reply(RuntimeApiConnection &c, int status, std::string_view body);

    LambdaPoolState &pool_;
    LambdaSlot &slot_;
    std::unique_ptr<FunctionProcess> process_;
    RuntimeApiEndpoint endpoint_;
    std::vector<pollfd> fds_;
    std::string logRequestId_;  // the invocation the process runs (or ran last)
    bool becameReady_ = false;
    bool stopSent_ = false;
    std::chrono::steady_clock::time_point stopSentAt_{};
};

}  // namespace wsgw
