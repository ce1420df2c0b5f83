// Owns: a function process's Runtime API connections, accepting and reading them (lambda_runtime_endpoint.h).
#include "lambda_runtime_endpoint.h"

#include "log.h"

#include <algorithm>
#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

RuntimeApiEndpoint::RuntimeApiEndpoint(const std::string &function, int listenFd, std::mutex &shortageMutex, AcceptShortage &shortage)
    : function_(function), listenFd_(listenFd), shortageMutex_(shortageMutex), shortage_(shortage) {}

int RuntimeApiEndpoint::addPollEntries(std::vector<pollfd> &fds) {
    auto now = std::chrono::steady_clock::now();
    bool acceptPaused = now < acceptPausedUntil_;
    fds.push_back({acceptPaused ? -1 : listenFd_, POLLIN, 0});  // poll ignores a negative fd
    bool moreRequests = false;
    for (auto &c : conns_) {
        fds.push_back({c->fd(), POLLIN, 0});
        moreRequests = moreRequests || c->moreRequests();
    }
    if (moreRequests) return 0;  // complete requests are buffered: serve them without waiting
    if (!acceptPaused) return -1;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(acceptPausedUntil_ - now).count());
}

void RuntimeApiEndpoint::acceptConnections() {
    for (;;) {
        int c = accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            int err = errno;
            std::lock_guard lock(shortageMutex_);
            if (shortage_.failed(err)) acceptPausedUntil_ = std::chrono::steady_clock::now() + AcceptShortage::kRetry;
            break;
        }
        // A runtime client keeps one connection (or opens one per request and closes it); each may
        // buffer a 6 MB body, so a function cannot make the gateway hold more than a few of them.
        if (conns_.size() >= kMaxRuntimeApiConnections) {
            if (!warnedConnections_) {
                log::warn("function opened too many Runtime API connections; the newest are closed",
                          {log::Field("function", function_), log::Field("limit", static_cast<int64_t>(kMaxRuntimeApiConnections))});
                warnedConnections_ = true;
            }
            close(c);
            continue;
        }
        conns_.push_back(std::make_unique<RuntimeApiConnection>(c));
    }
}

void RuntimeApiEndpoint::serve(const std::vector<pollfd> &fds, size_t first,
                               const std::function<void(RuntimeApiConnection &, RuntimeApiRequest &)> &onRequest) {
    if (first < fds.size() && fds[first].revents) acceptConnections();
    // Connections accepted just now were not polled: they come after the polled ones and wait for the next round.
    size_t polled = fds.size() > first ? fds.size() - first - 1 : 0;
    for (size_t entry = 0, i = 0; entry < polled && i < conns_.size(); ++entry) {
        if (!fds[first + 1 + entry].revents && !conns_[i]->moreRequests()) {
            ++i;
            continue;
        }
        RuntimeApiConnection &c = *conns_[i];
        requests_.clear();
        bool open = c.readRequests(requests_);
        for (RuntimeApiRequest &req : requests_) {
            if (c.broken()) break;  // it reads no answer: the rest of its requests are not answered either
            onRequest(c, req);
        }
        if (open && !c.broken()) {
            ++i;
            continue;
        }
        if (waitingNext_ == &c) waitingNext_ = nullptr;
        conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(i));
    }
}

RuntimeApiConnection *RuntimeApiEndpoint::takeWaitingNext() {
    RuntimeApiConnection *c = waitingNext_;
    waitingNext_ = nullptr;
    return c;
}

void RuntimeApiEndpoint::closeAll() {
    waitingNext_ = nullptr;
    conns_.clear();
}

}  // namespace wsgw
