// Writes a connection's queued frames to its socket, one network thread's worth of buffers for all of its
// connections. Several frames leave in one sendmsg() (SendQueue::gather frames them): one lws_write per
// frame would be one syscall per message, which is what makes the naive libwebsockets pattern slow. When
// the kernel takes only part of a frame, the rest of that frame (at most SendQueue::kMaxFrameBytes) is
// handed to libwebsockets as raw bytes (LWS_WRITE_HTTP), which sends them before anything else, its own
// control frames (pongs) too: nothing may come between a frame's bytes. The frames after it stay in the
// queue, and are written when libwebsockets has sent what it holds.
#pragma once

#include "send_queue.h"

#include <string>

#include <sys/uio.h>

struct lws;

namespace wsgw {

class FrameWriter {
public:
    // Frames the head of `queue` into this writer's staging buffer; returns how many frames `batch` holds.
    size_t gather(const SendQueue &queue, SendBatch &batch) { return queue.gather(staging_, batch); }

    struct Outcome {
        bool failed = false;  // the socket failed
        int framesSent = 0;   // frames of the batch that are sent or handed over (SendQueue::commit)
        size_t handed = 0;    // bytes of the last of them handed to libwebsockets to send later
    };
    Outcome send(lws *wsi, const SendBatch &batch);

    // The pure halves of send(), without a socket or libwebsockets (unit-tested): the batch as the iovecs
    // one sendmsg() takes (`iov` has room for SendBatch::kMaxPieces); after the kernel took `sent` bytes,
    // which frames are done and which bytes [sent, end) finish the frame it stopped in; and those bytes of
    // the batch appended to `out`. `staging` is the buffer gather() filled.
    static void toIovecs(const SendBatch &batch, const std::string &staging, iovec *iov);
    struct Split {
        int framesSent = 0;  // including the frame whose rest is handed over
        size_t end = 0;      // where that frame ends (== sent: nothing to hand over)
    };
    static Split splitAt(const SendBatch &batch, size_t sent);
    static void appendUnsent(const SendBatch &batch, const std::string &staging, size_t skip, size_t end, std::string &out);
    const std::string &staging() const { return staging_; }

private:
    bool handToLibwebsockets(lws *wsi, const SendBatch &batch, size_t skip, size_t end);

    static constexpr size_t kCoalesceKeptBytes = 256 * 1024;  // a larger hand-off buffer is not kept
    std::string staging_;    // frame headers and small payloads of one send
    std::string coalesced_;  // the rest of a frame the kernel did not take, handed to libwebsockets
};

}  // namespace wsgw
