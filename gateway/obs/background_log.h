// The application log's writer thread (the LineSink of core/log.h that the gateway installs): a line is
// written at once by whoever logs it while stdout takes it without waiting and no line waits before it;
// otherwise it is queued, and written to stdout by this thread. The queue is
// bounded (kMaxQueuedBytes): while stdout takes nothing (its reader stopped), further lines are dropped and
// counted, and once it takes lines again a warning says how many were lost. So no client that makes the
// gateway log (a refused upgrade is one line) and no stalled log collector can stop a network thread, and
// a stop is not held up by output nobody reads: it waits for the queue at most the time it is given.
// One per process, never destroyed (threads may log until the process ends).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "log.h"

namespace wsgw {

class BackgroundLog final : public log::LineSink {
public:
    static constexpr size_t kMaxQueuedBytes = 1u << 20;

    // Starts the writer thread and installs it as the log's sink (once; later calls do nothing).
    static void start();
    // Waits up to `wait` for the lines queued so far to be written; then, for stop(), the writer ends and
    // lines still queued are lost (the process is about to end). Either does nothing if start() never ran.
    static void flushFor(std::chrono::milliseconds wait);
    static void stop(std::chrono::milliseconds wait);
    static uint64_t droppedLines();  // lines dropped since start: the queue was full, or stdout failed

    void take(std::string &&line) override;

    // Starts the log writer for as long as it lives (main's scope), and stops it with a bounded wait.
    struct Scope {
        Scope() { start(); }
        ~Scope() { stop(std::chrono::seconds(2)); }
        Scope(const Scope &) = delete;
        Scope &operator=(const Scope &) = delete;
    };

private:
    BackgroundLog() = default;
    void run();
    bool waitWritten(std::unique_lock<std::mutex> &lock, std::chrono::steady_clock::time_point until);
    void reportDropped(uint64_t dropped);

    std::mutex mutex_;
    std::condition_variable wake_, written_;  // written_: writtenLines_ or finished_ changed
    std::string queued_;
    uint64_t queuedLines_ = 0, writtenLines_ = 0;  // lines handed to the writer, and lines it is done with
    bool stopping_ = false, finished_ = false;
    bool writing_ = false;  // the writer has a batch out of the queue: a new line must not pass it
    std::chrono::steady_clock::time_point giveUpAt_ = std::chrono::steady_clock::time_point::max();
    std::atomic<uint64_t> dropped_{0};
    uint64_t reported_ = 0;  // of dropped_, what a warning has told
    std::thread thread_;
};

}  // namespace wsgw
