// Owns: the connections side of the Runtime API one function process is served (docs/lambda.md): accepting
// on the slot's listening socket, with the cap on connections (each may buffer a 6 MB body) and the pause
// while the gateway is out of descriptors (AcceptShortage: the socket is left out of poll() for 100 ms
// instead of spinning on it), the open connections and which of them waits for its `next` answer.
// What each request does is lambda_process_run's business; the HTTP is lambda_runtime_api's.
#pragma once

#include "accept_shortage.h"
#include "lambda_runtime_api.h"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <poll.h>
#include <string>
#include <vector>

namespace wsgw {

class RuntimeApiEndpoint {
public:
    // `shortage` (shared by the function's slots) is used with `shortageMutex` held.
    RuntimeApiEndpoint(const std::string &function, int listenFd, std::mutex &shortageMutex, AcceptShortage &shortage);

    // Appends the listening socket (left out, fd -1, while accepting is paused) and then each connection to
    // `fds`; returns the milliseconds until the pause ends, -1 when not paused, 0 when a connection has
    // complete requests buffered that its last read left for the next round.
    int addPollEntries(std::vector<pollfd> &fds);
    // After poll: accepts when the listener's entry (at `first`) was readable, then reads the connections
    // polled after it and hands each request, with its connection, to `onRequest`; closes the ended ones.
    void serve(const std::vector<pollfd> &fds, size_t first,
               const std::function<void(RuntimeApiConnection &, RuntimeApiRequest &)> &onRequest);

    void setWaitingNext(RuntimeApiConnection &c) { waitingNext_ = &c; }
    bool hasWaitingNext() const { return waitingNext_ != nullptr; }
    // The connection whose `next` is not answered yet, no longer waiting once taken (nullptr: none).
    RuntimeApiConnection *takeWaitingNext();
    void closeAll();

private:
    void acceptConnections();

    const std::string &function_;
    int listenFd_;
    std::mutex &shortageMutex_;
    AcceptShortage &shortage_;
    std::chrono::steady_clock::time_point acceptPausedUntil_{};  // out of descriptors: not polled until then
    std::vector<std::unique_ptr<RuntimeApiConnection>> conns_;
    bool warnedConnections_ = false;
    RuntimeApiConnection *waitingNext_ = nullptr;  // a `next` not answered yet
    std::vector<RuntimeApiRequest> requests_;
};

}  // namespace wsgw
