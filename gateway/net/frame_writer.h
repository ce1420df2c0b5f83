// Writes a connection's queued frames to its socket, one network thread's worth of buffers for all of its
// connections. Several frames leave in one sendmsg() (SendQueue::gather frames them): one lws_write per
// frame would be one syscall per message, which is what makes the naive libwebsockets pattern slow. What
// the kernel does not take is handed to libwebsockets as raw bytes (LWS_WRITE_HTTP), which sends them
// before anything else, its own control frames too; while it holds such bytes, ours go through it as well,
// so nothing overtakes.
#pragma once

#include "send_queue.h"

#include <string>

#include <sys/uio.h>

struct lws;

namespace wsgw {

class FrameWriter {
public:
    // Frames the head of `queue` into this writer's staging buffer; returns how many frames `batch` covers.
    size_t gather(SendQueue &queue, SendBatch &batch) { return queue.gather(staging_, batch); }
    // Sends a gathered batch. Returns how many bytes libwebsockets was handed to send later (0: the kernel
    // took all), or -1 when the socket failed.
    long send(lws *wsi, const SendBatch &batch);

    // The pure halves of send(), without a socket or libwebsockets (unit-tested): the batch as the iovecs
    // one sendmsg() takes (`iov` has room for SendBatch::kMaxPieces), and the batch's bytes from `skip` on
    // (what the kernel did not take) appended to `out`. `staging` is the buffer gather() filled.
    static void toIovecs(const SendBatch &batch, const std::string &staging, iovec *iov);
    static void appendUnsent(const SendBatch &batch, const std::string &staging, size_t skip, std::string &out);
    const std::string &staging() const { return staging_; }

private:
    bool handToLibwebsockets(lws *wsi, const SendBatch &batch, size_t skip);

    static constexpr size_t kCoalesceKeptBytes = 1024 * 1024;  // a larger hand-off buffer is not kept
    std::string staging_;    // frame headers and small payloads of one send
    std::string coalesced_;  // what the kernel did not take, handed to libwebsockets
};

}  // namespace wsgw
