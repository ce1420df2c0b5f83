// Owns: writing whole lines to a descriptor that may stop taking them (line_output.h).
#include "line_output.h"

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <poll.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr size_t kAtomicWrite = 4096;  // PIPE_BUF: a write this small is never interleaved with another's
constexpr int kWaitSliceMs = 100;

// Held from "the descriptor takes bytes now" to the write that takes them, by every writer of this process,
// so that no other of our writers can fill the room that poll() saw in between.
std::mutex g_writeLock;

size_t countLines(std::string_view s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

enum class Ready { Now, NotYet, Unpollable };

Ready readyNow(int fd) {
    pollfd p{fd, POLLOUT, 0};
    int n = poll(&p, 1, 0);
    if (n > 0) return Ready::Now;  // room, or an error the write then reports
    if (n < 0 && errno != EINTR) return Ready::Unpollable;
    return Ready::NotYet;
}

// Writes one piece (at most PIPE_BUF) once `fd` takes it, waiting in slices without the lock held.
// Returns the bytes written (all of `piece`), or -1 with errno set, or -2 when given up.
ssize_t writePiece(int fd, std::string_view piece, const std::function<bool()> &giveUp) {
    size_t done = 0;
    while (done < piece.size()) {
        {
            std::lock_guard lock(g_writeLock);
            if (readyNow(fd) != Ready::NotYet) {
                ssize_t n = ::write(fd, piece.data() + done, piece.size() - done);
                if (n > 0) {
                    done += static_cast<size_t>(n);
                    continue;
                }
                if (n == 0) errno = EIO;
                if (n < 0 && errno != EINTR && errno != EAGAIN) return -1;
            }
        }
        pollfd p{fd, POLLOUT, 0};
        (void)poll(&p, 1, kWaitSliceMs);
        if (!(p.revents & POLLOUT) && giveUp()) return -2;
    }
    return static_cast<ssize_t>(done);
}

}  // namespace

bool writeLinesIfReady(int fd, std::string_view lines) {
    if (lines.size() > kAtomicWrite) return false;
    std::lock_guard lock(g_writeLock);
    if (readyNow(fd) != Ready::Now) return false;
    ssize_t n = ::write(fd, lines.data(), lines.size());
    // Written whole (the usual case), or not at all (then the caller queues it); a part written (a
    // descriptor that is not a pipe or socket) leaves the rest to this thread, blocking as before.
    if (n == static_cast<ssize_t>(lines.size()) || n < 0) return n >= 0;
    size_t done = static_cast<size_t>(n);
    while (done < lines.size()) {
        n = ::write(fd, lines.data() + done, lines.size() - done);
        if (n <= 0 && errno != EINTR) break;
        if (n > 0) done += static_cast<size_t>(n);
    }
    return true;
}

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
        ssize_t n = writePiece(fd, batch.substr(off, end - off), giveUp);
        if (n == -2) {
            outcome.linesLost += countLines(batch.substr(off));  // a line begun and not finished counts too
            return outcome;
        }
        if (n < 0) {  // stdout closed, the disk full: these lines are lost, the gateway goes on
            if (!outcome.error) outcome.error = errno;
            outcome.linesLost += countLines(batch.substr(off, end - off));
        }
        off = end;
    }
    return outcome;
}

}  // namespace wsgw
