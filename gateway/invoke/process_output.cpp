// Owns: a child process's output as log lines (process_output.h).
#include "process_output.h"

#include "log.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace wsgw {

ProcessOutput::ProcessOutput(const char *stream, int fd) : stream_(stream), fd_(fd) {
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

ProcessOutput::~ProcessOutput() {
    if (fd_ >= 0) close(fd_);
}

void ProcessOutput::drain(std::string_view ownerKey, const std::string &owner, const std::string &requestId) {
    if (!open_) return;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n > 0) {
            partial_.append(buf, static_cast<size_t>(n));
            emitLines(ownerKey, owner, requestId, false);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        emitLines(ownerKey, owner, requestId, true);
        open_ = false;
        return;
    }
}

void ProcessOutput::flush(std::string_view ownerKey, const std::string &owner, const std::string &requestId) {
    emitLines(ownerKey, owner, requestId, true);
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
        if (requestId.empty())
            log::info(line, {log::Field(ownerKey, owner), log::Field("stream", stream_)});
        else
            log::info(line, {log::Field(ownerKey, owner), log::Field("requestId", requestId), log::Field("stream", stream_)});
        start = (nl != std::string::npos && end == nl) ? nl + 1 : end;
        if (start >= partial_.size()) break;
    }
    partial_.erase(0, start);
}

}  // namespace wsgw
