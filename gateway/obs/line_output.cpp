// Owns: writing whole lines to a descriptor that may stop taking them (line_output.h).
#include "line_output.h"

#include <algorithm>
#include <cerrno>
#include <poll.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr size_t kAtomicWrite = 4096;  // PIPE_BUF: a write this small is never interleaved with another's
constexpr int kWaitSliceMs = 100;

size_t countLines(std::string_view s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// True once `fd` takes bytes (or reports an error, which the write then returns); false: given up.
bool waitWritable(int fd, const std::function<bool()> &giveUp) {
    for (;;) {
        pollfd p{fd, POLLOUT, 0};
        int n = poll(&p, 1, kWaitSliceMs);
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return true;  // not pollable: let write() decide
        if (giveUp()) return false;
    }
}

}  // namespace

LineOutcome writeLines(int fd, std::string_view batch, const std::function<bool()> &giveUp) {
    LineOutcome outcome;
    size_t off = 0;
    while (off < batch.size()) {
        size_t end = std::min(batch.size(), off + kAtomicWrite);
        if (end < batch.size()) {  // end the piece at a line's end (a longer line goes whole)
            size_t nl = batch.rfind('\n', end - 1);
            end = nl != std::string_view::npos && nl >= off ? nl + 1 : batch.find('\n', off) + 1;
            if (end == 0) end = batch.size();
        }
        size_t pos = off;
        while (pos < end) {
            if (!waitWritable(fd, giveUp)) {
                outcome.linesLost += countLines(batch.substr(off));  // a line begun and not finished counts too
                return outcome;
            }
            ssize_t n = ::write(fd, batch.data() + pos, end - pos);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n <= 0) {  // stdout closed, the disk full: these lines are lost, the gateway goes on
                if (!outcome.error) outcome.error = n < 0 ? errno : EIO;
                outcome.linesLost += countLines(batch.substr(off, end - off));
                break;
            }
            pos += static_cast<size_t>(n);
        }
        off = end;
    }
    return outcome;
}

}  // namespace wsgw
