// Writing batches of JSON lines to a descriptor that may stop taking them: stdout into a pipe or socket
// whose reader has stopped (a stalled log collector, `wsgw | less` left paused), or a file on a full disk.
// Shared by the access log's and the application log's writer threads. Each write is at most PIPE_BUF
// bytes and ends at a line's end, so lines of the two logs on one stdout never interleave; before each, the
// writer waits for the descriptor to take bytes in slices of 100 ms, so that a writer told to give up
// (a stop with its deadline passed) is not stuck in write(2) for as long as nobody reads. The check and the
// write that follows it are made under one lock shared by all writers of the process, so that none of
// them fills the room another saw.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace wsgw {

struct LineOutcome {
    size_t linesLost = 0;  // lines of the batch not written: the descriptor failed, or the writer gave up
    int error = 0;         // errno of the first failed write (0: none failed; lost lines were given up)
};

// Writes `batch` (whole lines, each ending in '\n') to `fd`. `giveUp` is asked while the descriptor takes
// nothing; true: the rest of the batch is lost.
LineOutcome writeLines(int fd, std::string_view batch, const std::function<bool()> &giveUp);

// Writes `lines` (at most PIPE_BUF bytes of whole lines) at once if `fd` takes them without waiting, and
// says whether it did; false: nothing was written (the caller queues them for its writer thread).
bool writeLinesIfReady(int fd, std::string_view lines);

}  // namespace wsgw
