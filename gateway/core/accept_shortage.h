// What a listener does when accept() fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
// ENOMEM), without the event loop: the socket stays readable, so watching it on would spin a core. This
// says which errors are such a shortage, how long to stop watching the socket (kRetry), and writes one
// warning per kWarnEvery with the count of failures since the last, adding each to a counter when given.
// Shared by net's AcceptBackoff (which stops a libev watcher for the pause) and the Lambda Runtime API
// listener in invoke (which leaves its socket out of poll() for the pause).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace wsgw {

class AcceptShortage {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kRetry{100};
    static constexpr std::chrono::seconds kWarnEvery{10};

    // `listener` names the listener in the warning; `failures`, when given, is the counter to add to.
    explicit AcceptShortage(std::string listener, std::atomic<uint64_t> *failures = nullptr);

    static bool isShortage(int err);
    // After accept() returned -1 with `err`: true when it was a shortage (counted, warned about at most
    // once per kWarnEvery): the caller stops watching the socket for kRetry. False for anything else
    // (EAGAIN, a connection reset before accept, ...).
    bool failed(int err, Clock::time_point now = Clock::now());

private:
    std::string listener_;
    std::atomic<uint64_t> *failures_;
    Clock::time_point nextWarning_{};  // the epoch: the first failure is reported
    uint64_t unreported_ = 0;
};

}  // namespace wsgw
