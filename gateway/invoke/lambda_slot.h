// Owns: the state a lambda function's pool (LambdaFunction, lambda_function.h) shares with the supervisor of
// each of its process slots (LambdaProcessRun, lambda_process_run.h), all guarded by the pool's mutex: for
// the pool, whether it is stopping and why its processes do not start; for each slot, its current process,
// whether it asked for an invocation, the invocation it was handed and how far that got, and why the gateway
// killed the process.
#pragma once

#include "accept_shortage.h"
#include "config.h"
#include "isolated_plugin.h"
#include "lambda_runtime_api.h"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <thread>
#include <unistd.h>

namespace wsgw {

// Where a slot's invocation is, between invoke() and the supervisor.
enum class LambdaPhase {
    None,       // no invocation: the slot is free once its process is ready
    Assigned,   // invoke() handed it one; the supervisor gives it to the next `next`
    Delivered,  // the process has it
    Done,       // `result` holds its outcome, for invoke() to take
};

struct LambdaPoolState {
    explicit LambdaPoolState(const HandlerSpec &handler)
        : name(handler.name), spec(handler.lambda), acceptShortage("lambda runtime API of function " + handler.name) {}

    const std::string name;
    const LambdaSpec spec;
    std::mutex mutex;
    std::condition_variable cv;
    // Guarded by mutex.
    bool stopping = false;
    std::string lastStartError;    // why the last process did not become ready
    unsigned startFailures = 0;    // processes that ended before becoming ready, since one last did
    AcceptShortage acceptShortage; // every slot's Runtime API listener: one warning per 10 s for all
};

struct LambdaSlot {
    unsigned index = 0;
    std::thread supervisor;
    int listenFd = -1;
    int port = 0;
    int wakeFd = -1;  // eventfd: invoke() assigned an invocation, or the pool is stopping
    // Guarded by LambdaPoolState::mutex.
    pid_t pid = -1;
    bool ready = false;     // the current process has asked for an invocation
    bool retiring = false;  // being killed: take nothing new
    std::string killReason; // why the gateway killed it ("" when it ended by itself)
    LambdaPhase phase = LambdaPhase::None;
    NextInvocation current;
    IsolatedReply result;

    LambdaSlot() = default;
    LambdaSlot(const LambdaSlot &) = delete;
    LambdaSlot &operator=(const LambdaSlot &) = delete;
    ~LambdaSlot() {
        if (listenFd >= 0) close(listenFd);
        if (wakeFd >= 0) close(wakeFd);
    }
    void wake() const {
        uint64_t one = 1;
        ssize_t n = write(wakeFd, &one, sizeof one);
        (void)n;
    }
};

}  // namespace wsgw
