// Access logs, as AWS API Gateway writes them: one JSON line per connect, message and disconnect, with
// fields named after AWS's $context variables (requestId, connectionId, eventType, routeKey, status,
// integrationLatency, sourceIp, userAgent, error, ...). Lines are formatted on the calling thread and
// written in batches by a writer thread, to stdout (default) or a file; `--access-log off` disables them.
// A file renamed or deleted by log rotation is created again under its name within a second.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <variant>

namespace wsgw {

struct LineOutcome;

struct AccessEntry {
    const char *eventType = "MESSAGE";  // CONNECT, MESSAGE or DISCONNECT
    std::string_view requestId, connectionId, routeKey, messageId, sourceIp, userAgent, error;
    int status = 200;
    int64_t integrationLatencyMs = -1;  // -1: no handler ran
    int64_t requestTimeEpochMs = 0;
    int disconnectStatusCode = 0;  // DISCONNECT only
};

// The JSON line of one entry (no newline); pure, for tests.
std::string accessLogLine(const AccessEntry &e);

class AccessLog {
public:
    // "stdout", or a file path (appended to). "off" is handled by the caller: no AccessLog at all.
    static std::variant<std::unique_ptr<AccessLog>, std::string> open(const std::string &where);
    ~AccessLog();
    AccessLog(const AccessLog &) = delete;
    AccessLog &operator=(const AccessLog &) = delete;

    void write(const AccessEntry &entry);
    void flush();  // blocks until every line written so far is out
    // Lines lost: dropped while kMaxPending bytes waited (stdout or the file took nothing), or not taken by
    // the descriptor (a full disk, a closed stdout). A warning in the application log says so too.
    uint64_t linesLost() const { return linesLost_.load(std::memory_order_relaxed); }

private:
    AccessLog(int fd, bool ownsFd, std::string path);
    void writerLoop();
    void noteLost(const LineOutcome &outcome);
    void reopenIfMoved();

    int fd_;  // written by the writer thread only (reopenIfMoved), after the constructor
    bool ownsFd_;
    std::string path_;  // the file's name; empty for stdout
    std::chrono::steady_clock::time_point checkedPathAt_{}, reopenWarnedAt_{};  // writer thread only
    std::mutex mutex_;
    std::condition_variable wake_, flushed_;
    std::string pending_;
    uint64_t written_ = 0, queued_ = 0;
    bool stopping_ = false;
    bool flushRequested_ = false;
    bool idle_ = false;
    std::chrono::steady_clock::time_point giveUpAt_ = std::chrono::steady_clock::time_point::max();  // set by a stop
    std::atomic<uint64_t> linesLost_{0};
    uint64_t lostWarned_ = 0;                               // writer thread only
    std::chrono::steady_clock::time_point lostWarnedAt_{};  // writer thread only
    std::thread writer_;
};

}  // namespace wsgw
