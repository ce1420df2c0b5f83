// Calling one invocation's integration: the event handed to it (the C struct, and the fields its JSON is
// built from), the call itself (the in-process handler, an isolated worker process, a Lambda function or
// an HTTP backend) under the route's deadline with the worker's slot marked busy for the watchdog, and
// what it answered (IntegrationOutcome). What the client is then sent is InvocationAnswers'.
#pragma once

#include "invocation.h"
#include "isolated_plugin.h"
#include "worker_pool.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace wsgw {

class InvocationAnswers;
class InvocationLanes;

// What an integration answered. Not copyable: `response.body` may point into `byValue.body`.
struct IntegrationOutcome {
    IntegrationOutcome() {
        response.size = sizeof(wsgw_response);
        response.status_code = 200;
    }
    IntegrationOutcome(const IntegrationOutcome &) = delete;
    IntegrationOutcome &operator=(const IntegrationOutcome &) = delete;

    wsgw_response response{};
    IsolatedReply byValue;  // what an isolated worker, a Lambda function or an HTTP backend answered
    int rc = 0;             // 0: answered; else an integration error described by `failure`
    std::string failure;
    bool executionFailed = false;  // the integration could not be run at all (AWS's ExecutionError)
    int backendStatus = 0;         // an HTTP backend's status
    bool timedOut = false;         // past the deadline: the timeout is answered already, this is dropped
    const std::string *integrationName = nullptr;  // the handler's name or the backend's URL
    std::chrono::steady_clock::time_point returnedAt;
    int64_t integrationMs = 0;
};

class IntegrationCaller {
public:
    IntegrationCaller(WorkerPool &pool, InvocationLanes &lanes, InvocationAnswers &answers)
        : pool_(pool), lanes_(lanes), answers_(answers) {}

    // Runs `inv`'s integration on this worker (`slot`); `out` is filled in.
    void call(WorkerSlot &slot, Invocation &inv, const char *routeKey, IntegrationOutcome &out);
    // Calls `inv`'s in-process handler on the calling thread, with no deadline (Invoker::runInline).
    void callInline(const Invocation &inv, const char *routeKey, IntegrationOutcome &out);

private:
    void markBusy(WorkerSlot &slot, Invocation &inv, const char *routeKey, const std::string &integrationName,
                  std::chrono::steady_clock::time_point deadline);
    bool markDone(WorkerSlot &slot, bool deadlinePassed);  // true: timed out (answered already)
    static void returned(const Invocation &inv, std::chrono::steady_clock::time_point invokedAt, IntegrationOutcome &out);
    static void callBackend(const Invocation &inv, const char *routeKey, InvocationEvent &ie,
                            std::chrono::steady_clock::time_point deadline, IntegrationOutcome &out, bool &deadlinePassed);

    WorkerPool &pool_;
    InvocationLanes &lanes_;
    InvocationAnswers &answers_;
};

}  // namespace wsgw
