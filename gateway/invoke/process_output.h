// Owns: what a child process prints (its stdout or stderr, read from a pipe) turned into the gateway's log
// lines. The gateway's stdout is a stream of JSON log lines; a lambda function's process or an isolated
// handler's worker writing there directly would break it for every reader (jq, a log shipper). Each line
// is logged at info with the owner's name (and the request ID of the invocation it belongs to, when known);
// a line over 16 KiB is split, as CloudWatch splits long events.
//
// A process (or a child it left behind, holding the pipe) may write without end. So one drain() reads at
// most kMaxDrainBytes, and the thread that polls the pipe gets back to its other work (a function's Runtime
// API, its stop) however fast the writer is; the lines logged are budgeted (kBudgetBytesPerSecond, a line
// costing its length plus kLineCost): past the budget lines are read and dropped, not formatted, and a
// warning says how many, at most once per 10 s; and the pipe is read at most kMaxReadBytesPerSecond: past
// that it is left out of poll (pollFd() -1) for the rest of a 100 ms window, so the writer's writes wait
// and a flood costs the gateway a few percent of a core, not one (reading and dropping as fast as `yes`
// writes took a whole core).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wsgw {

class ProcessOutput {
public:
    static constexpr size_t kMaxLineBytes = 16384;
    static constexpr size_t kMaxDrainBytes = 256 * 1024;           // read by one drain()
    // Logged, each line counting kLineCost more (about what its JSON fields add): the burst fits in the
    // gateway's own queue of log lines waiting for stdout (1 MiB), so a burst of output does not crowd out
    // the gateway's other lines.
    static constexpr double kBudgetBytesPerSecond = 512 * 1024;
    static constexpr double kBudgetBurstBytes = 512 * 1024;
    static constexpr size_t kLineCost = 128;
    static constexpr size_t kMaxReadBytesPerSecond = 16 * 1024 * 1024;

    // `stream`: "stdout" or "stderr"; `fd`: the pipe's read end, owned from here on (made non-blocking).
    ProcessOutput(const char *stream, int fd);
    ~ProcessOutput();
    ProcessOutput(const ProcessOutput &) = delete;
    ProcessOutput &operator=(const ProcessOutput &) = delete;

    int fd() const { return open_ ? fd_ : -1; }  // -1 once the stream ended
    bool open() const { return open_; }
    // For poll: fd(), or -1 while reading is paused (over kMaxReadBytesPerSecond); pauseLeftMs() says for
    // how long (0: not paused), for the poll's timeout.
    int pollFd() const { return pauseLeftMs() > 0 ? -1 : fd(); }
    int pauseLeftMs() const;
    // Reads what is there (up to kMaxDrainBytes) and logs the complete lines, each with {ownerKey: owner}
    // (e.g. "function": name) and the request ID when not empty. At end of file the last, unterminated line
    // too; the stream ends.
    void drain(std::string_view ownerKey, const std::string &owner, const std::string &requestId);
    // Logs a last line that has no newline yet (the process is gone), and what was dropped since the last warning.
    void flush(std::string_view ownerKey, const std::string &owner, const std::string &requestId);

private:
    void emitLines(std::string_view ownerKey, const std::string &owner, const std::string &requestId, bool atEnd);
    bool takeBudget(size_t lineBytes);
    void warnDropped(std::string_view ownerKey, const std::string &owner, bool force);

    const char *stream_;
    int fd_;
    bool open_ = true;
    std::string partial_;
    // The budget: a token bucket of bytes, refilled at each drain.
    double budget_ = kBudgetBurstBytes;
    std::chrono::steady_clock::time_point refilledAt_ = std::chrono::steady_clock::now();
    uint64_t droppedLines_ = 0, droppedBytes_ = 0;  // since the last warning
    std::chrono::steady_clock::time_point warnedAt_{};
    bool warned_ = false;
    // The read rate: bytes read in the current 100 ms window, and the end of a pause.
    std::chrono::steady_clock::time_point windowStart_{};
    size_t windowBytes_ = 0;
    std::chrono::steady_clock::time_point pausedUntil_{};
};

}  // namespace wsgw
