#include "access_log.h"

#include "event.h"

#include "line_output.h"
#include "log.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr size_t kMaxPending = 8u << 20;  // beyond this (a stuck stdout), lines are dropped, not hoarded
constexpr size_t kWakeAt = 256u << 10;    // producers wake the writer only for this much; else it polls
constexpr auto kWriteInterval = std::chrono::milliseconds(10);
constexpr auto kStopWait = std::chrono::seconds(2);          // a stop waits this long for the last lines
constexpr auto kLostWarningInterval = std::chrono::seconds(10);
constexpr auto kPathCheckInterval = std::chrono::seconds(1);

// The values come from clients (User-Agent, the source address a proxy forwarded): appendJsonString
// replaces bytes that are not UTF-8 with U+FFFD, so every line stays valid JSON and valid UTF-8.
void key(std::string &out, const char *k, std::string_view v) {
    out += '"';
    out += k;
    out += "\":";
    log::appendJsonString(out, v);
    out += ',';
}

void key(std::string &out, const char *k, int64_t v) {
    out += '"';
    out += k;
    out += "\":";
    out += std::to_string(v);
    out += ',';
}

}  // namespace

std::string accessLogLine(const AccessEntry &e) {
    std::string line;
    line.reserve(384 + e.userAgent.size() + e.error.size());
    line += '{';
    // time, level and msg as every log line has them, so stdout stays one kind of JSON line.
    key(line, "time", formatIso8601Millis(nowEpochMs()));
    key(line, "level", "info");
    key(line, "msg", "access");
    key(line, "requestId", e.requestId);
    key(line, "connectionId", e.connectionId);
    key(line, "eventType", e.eventType);
    key(line, "routeKey", e.routeKey);
    key(line, "status", static_cast<int64_t>(e.status));
    if (e.integrationLatencyMs >= 0) key(line, "integrationLatency", e.integrationLatencyMs);
    else line += "\"integrationLatency\":null,";
    if (!e.messageId.empty()) key(line, "messageId", e.messageId);
    key(line, "requestTime", formatRequestTime(e.requestTimeEpochMs));
    key(line, "requestTimeEpoch", e.requestTimeEpochMs);
    key(line, "sourceIp", e.sourceIp);
    key(line, "userAgent", e.userAgent);
    key(line, "error", e.error);
    if (e.disconnectStatusCode) key(line, "disconnectStatusCode", static_cast<int64_t>(e.disconnectStatusCode));
    line.back() = '}';
    return line;
}

std::variant<std::unique_ptr<AccessLog>, std::string> AccessLog::open(const std::string &where) {
    if (where == "stdout") return std::unique_ptr<AccessLog>(new AccessLog(STDOUT_FILENO, false, {}));
    int fd = ::open(where.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        return "--access-log " + where + ": cannot open for appending: " + std::strerror(errno) +
               " (give a writable file, 'stdout' or 'off')";
    }
    return std::unique_ptr<AccessLog>(new AccessLog(fd, true, where));
}

AccessLog::AccessLog(int fd, bool ownsFd, std::string path) : fd_(fd), ownsFd_(ownsFd), path_(std::move(path)) {
    writer_ = std::thread([this] { writerLoop(); });
}

AccessLog::~AccessLog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        giveUpAt_ = std::chrono::steady_clock::now() + kStopWait;
    }
    wake_.notify_one();
    writer_.join();
    if (ownsFd_) ::close(fd_);
}

void AccessLog::write(const AccessEntry &entry) {
    std::string line = accessLogLine(entry);
    line += '\n';
    bool wake;
    {
        std::lock_guard lock(mutex_);
        if (pending_.size() + line.size() > kMaxPending) {
            linesLost_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        pending_ += line;
        ++queued_;
        // Waking the writer for every line would cost a context switch per message: it is woken for the
        // first line after it went idle, then collects for 10 ms, or less when a lot has piled up.
        bool wasEmpty = pending_.size() == line.size();
        wake = (idle_ && wasEmpty) || (pending_.size() >= kWakeAt && pending_.size() - line.size() < kWakeAt);
    }
    if (wake) wake_.notify_one();
}

void AccessLog::flush() {
    std::unique_lock lock(mutex_);
    uint64_t target = queued_;
    flushRequested_ = true;
    wake_.notify_one();
    flushed_.wait_for(lock, std::chrono::seconds(5), [&] { return written_ >= target || stopping_; });
}

void AccessLog::writerLoop() {
    std::string batch;
    for (;;) {
        uint64_t upTo;
        {
            std::unique_lock lock(mutex_);
            if (pending_.empty()) {
                written_ = queued_;
                flushed_.notify_all();
                if (stopping_) return;
                idle_ = true;  // nothing to do: sleep until a line comes (no timer ticks while idle)
                wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
                idle_ = false;
                continue;
            }
            // Let the batch grow for up to 10 ms: one write and one wake-up for many lines.
            wake_.wait_for(lock, kWriteInterval, [&] { return stopping_ || flushRequested_ || pending_.size() >= kWakeAt; });
            flushRequested_ = false;
            batch.swap(pending_);
            pending_.clear();
            upTo = queued_;
        }
        reopenIfMoved();
        // Whole lines, at most PIPE_BUF at a time, so that stdout stays one JSON object a line even with
        // the application log writing to it too. A stop gives up on a descriptor that takes nothing.
        LineOutcome outcome = writeLines(fd_, batch, [this] {
            std::lock_guard lock(mutex_);
            return std::chrono::steady_clock::now() >= giveUpAt_;
        });
        noteLost(outcome);
        batch.clear();
        {
            std::lock_guard lock(mutex_);
            written_ = upTo;
        }
        flushed_.notify_all();
    }
}

// A log file renamed or deleted by log rotation (logrotate's default: rename, then a new file) is reopened
// under its name: otherwise lines went on into the renamed file, or into a deleted one whose space the disk
// never got back. Checked at most once a second, before a batch is written.
void AccessLog::reopenIfMoved() {
    if (path_.empty()) return;
    auto now = std::chrono::steady_clock::now();
    if (now - checkedPathAt_ < kPathCheckInterval) return;
    checkedPathAt_ = now;
    struct stat named {}, opened {};
    bool same = ::stat(path_.c_str(), &named) == 0 && ::fstat(fd_, &opened) == 0 && named.st_ino == opened.st_ino &&
                named.st_dev == opened.st_dev;
    if (same) return;
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (now - reopenWarnedAt_ >= kLostWarningInterval) {
            reopenWarnedAt_ = now;
            log::warn("access log: the file was moved or deleted and cannot be created again; lines go on to the old one",
                      {log::Field("path", path_), log::Field("error", std::strerror(errno))});
        }
        return;
    }
    ::close(fd_);
    fd_ = fd;
}

// Lines the file or stdout did not take (a full disk, a closed stdout), that a stop gave up on, or that were
// dropped while the queue was full: counted, and a warning at most every 10 s says how many and why, so
// that a full disk does not go unnoticed.
void AccessLog::noteLost(const LineOutcome &outcome) {
    if (outcome.linesLost) linesLost_.fetch_add(outcome.linesLost, std::memory_order_relaxed);
    uint64_t lost = linesLost_.load(std::memory_order_relaxed);
    if (lost == lostWarned_) return;
    auto now = std::chrono::steady_clock::now();
    if (lostWarnedAt_ != std::chrono::steady_clock::time_point{} && now - lostWarnedAt_ < kLostWarningInterval) return;
    lostWarnedAt_ = now;
    const char *why = outcome.error ? std::strerror(outcome.error)
                      : outcome.linesLost ? "the stop's deadline passed with lines unwritten"
                                          : "the queue was full: the file or stdout took nothing for a while";
    log::warn("access log: lines could not be written and are lost",
              {log::Field("error", why), log::Field("lost", lost - lostWarned_), log::Field("lostTotal", lost)});
    lostWarned_ = lost;
}

}  // namespace wsgw
