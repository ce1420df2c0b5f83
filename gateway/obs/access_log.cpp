#include "access_log.h"

#include "event.h"

#include "log.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr size_t kAtomicWrite = 4096;  // PIPE_BUF: a write this small is never interleaved with a log line
constexpr size_t kMaxPending = 8u << 20;  // beyond this (a stuck stdout), lines are dropped, not hoarded
constexpr size_t kWakeAt = 256u << 10;    // producers wake the writer only for this much; else it polls
constexpr auto kWriteInterval = std::chrono::milliseconds(10);

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
    if (where == "stdout") return std::unique_ptr<AccessLog>(new AccessLog(STDOUT_FILENO, false));
    int fd = ::open(where.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        return "--access-log " + where + ": cannot open for appending: " + std::strerror(errno) +
               " (give a writable file, 'stdout' or 'off')";
    }
    return std::unique_ptr<AccessLog>(new AccessLog(fd, true));
}

AccessLog::AccessLog(int fd, bool ownsFd) : fd_(fd), ownsFd_(ownsFd) {
    writer_ = std::thread([this] { writerLoop(); });
}

AccessLog::~AccessLog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
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
        if (pending_.size() + line.size() > kMaxPending) return;
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
        // Whole lines, at most PIPE_BUF at a time, so that stdout stays one JSON object a line even with
        // the application log writing to it too.
        size_t off = 0;
        while (off < batch.size()) {
            size_t end = std::min(batch.size(), off + kAtomicWrite);
            if (end < batch.size()) {
                size_t nl = batch.rfind('\n', end - 1);
                end = nl != std::string::npos && nl >= off ? nl + 1 : batch.find('\n', off) + 1;
            }
            size_t pos = off;
            while (pos < end) {
                ssize_t n = ::write(fd_, batch.data() + pos, end - pos);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    pos = end;  // stdout closed or the disk full: these lines are lost, the gateway goes on
                    break;
                }
                pos += static_cast<size_t>(n);
            }
            off = end;
        }
        batch.clear();
        {
            std::lock_guard lock(mutex_);
            written_ = upTo;
        }
        flushed_.notify_all();
    }
}

}  // namespace wsgw
