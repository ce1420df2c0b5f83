// Owns: a child process's output as log lines (process_output.h).
#include "process_output.h"

#include "log.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace wsgw {

namespace {
constexpr auto kWarnInterval = std::chrono::seconds(10);
constexpr auto kReadWindow = std::chrono::milliseconds(100);
constexpr size_t kMaxWindowBytes = ProcessOutput::kMaxReadBytesPerSecond / 10;
}  // namespace

int ProcessOutput::pauseLeftMs() const {
    if (!open_) return 0;
    auto left = pausedUntil_ - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return 0;
    return static_cast<int>(std::max<int64_t>(1, std::chrono::ceil<std::chrono::milliseconds>(left).count()));
}

ProcessOutput::ProcessOutput(const char *stream, int fd) : stream_(stream), fd_(fd) {
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

ProcessOutput::~ProcessOutput() {
    if (fd_ >= 0) close(fd_);
}

void ProcessOutput::drain(std::string_view ownerKey, const std::string &owner, const std::string &requestId) {
    if (!open_) return;
    auto now = std::chrono::steady_clock::now();
    if (now < pausedUntil_) return;  // over the read rate: the writer waits (callers drain at every turn)
    budget_ = std::min(kBudgetBurstBytes, budget_ + std::chrono::duration<double>(now - refilledAt_).count() * kBudgetBytesPerSecond);
    refilledAt_ = now;
    char buf[65536];
    // Bounded: a writer that keeps the pipe full (a child left running) would otherwise keep this thread here.
    size_t taken = 0;
    while (taken < kMaxDrainBytes) {
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n > 0) {
            taken += static_cast<size_t>(n);
            partial_.append(buf, static_cast<size_t>(n));
            emitLines(ownerKey, owner, requestId, false);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        emitLines(ownerKey, owner, requestId, true);
        open_ = false;
        break;
    }
    if (droppedLines_) warnDropped(ownerKey, owner, false);
    if (now - windowStart_ >= kReadWindow) {
        windowStart_ = now;
        windowBytes_ = 0;
    }
    windowBytes_ += taken;
    if (windowBytes_ >= kMaxWindowBytes) pausedUntil_ = windowStart_ + kReadWindow;
}

void ProcessOutput::flush(std::string_view ownerKey, const std::string &owner, const std::string &requestId) {
    emitLines(ownerKey, owner, requestId, true);
    if (droppedLines_) warnDropped(ownerKey, owner, true);
}

bool ProcessOutput::takeBudget(size_t lineBytes) {
    double cost = static_cast<double>(lineBytes + kLineCost);
    if (budget_ < cost) return false;
    budget_ -= cost;
    return true;
}

void ProcessOutput::warnDropped(std::string_view ownerKey, const std::string &owner, bool force) {
    auto now = std::chrono::steady_clock::now();
    if (!force && warned_ && now - warnedAt_ < kWarnInterval) return;
    warned_ = true;
    warnedAt_ = now;
    log::warn("process output over its budget; lines dropped",
              {log::Field(ownerKey, owner), log::Field("stream", stream_), log::Field("droppedLines", droppedLines_),
               log::Field("droppedBytes", droppedBytes_),
               log::Field("budget", "512 KiB a second, each line counting 128 bytes more: write less, or to a file")});
    droppedLines_ = droppedBytes_ = 0;
}

void ProcessOutput::emitLines(std::string_view ownerKey, const std::string &owner, const std::string &requestId, bool atEnd) {
    size_t start = 0;
    for (;;) {
        size_t nl = partial_.find('\n', start);
        size_t end = nl == std::string::npos ? partial_.size() : nl;
        if (nl == std::string::npos && end - start < kMaxLineBytes && !(atEnd && end > start)) break;
        if (end - start > kMaxLineBytes) end = start + kMaxLineBytes;
        std::string_view line(partial_.data() + start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!takeBudget(line.size())) {
            ++droppedLines_;
            droppedBytes_ += line.size();
        } else if (requestId.empty()) {
            log::info(line, {log::Field(ownerKey, owner), log::Field("stream", stream_)});
        } else {
            log::info(line, {log::Field(ownerKey, owner), log::Field("requestId", requestId), log::Field("stream", stream_)});
        }
        start = (nl != std::string::npos && end == nl) ? nl + 1 : end;
        if (start >= partial_.size()) break;
    }
    partial_.erase(0, start);
}

}  // namespace wsgw
