#include "frame_writer.h"

#include "socket_calls.h"

#include <libwebsockets.h>

#include <cerrno>
#include <sys/socket.h>

namespace wsgw {

void FrameWriter::toIovecs(const SendBatch &batch, const std::string &staging, iovec *iov) {
    for (int i = 0; i < batch.count; ++i) {
        const SendBatch::Piece &piece = batch.pieces[i];
        iov[i].iov_base = const_cast<char *>(piece.data ? piece.data : staging.data() + piece.offset);
        iov[i].iov_len = piece.len;
    }
}

void FrameWriter::appendUnsent(const SendBatch &batch, const std::string &staging, size_t skip, std::string &out) {
    for (int i = 0; i < batch.count; ++i) {
        const SendBatch::Piece &piece = batch.pieces[i];
        size_t len = piece.len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        out.append(piece.data ? piece.data + skip : staging.data() + piece.offset + skip, len - skip);
        skip = 0;
    }
}

// The batch's bytes from `skip` on, given to libwebsockets as they are.
bool FrameWriter::handToLibwebsockets(lws *wsi, const SendBatch &batch, size_t skip) {
    coalesced_.resize(LWS_PRE);
    appendUnsent(batch, staging_, skip, coalesced_);
    size_t total = coalesced_.size() - LWS_PRE;
    int wrote = lws_write(wsi, reinterpret_cast<unsigned char *>(coalesced_.data()) + LWS_PRE, total, LWS_WRITE_HTTP);
    if (coalesced_.capacity() > kCoalesceKeptBytes) std::string().swap(coalesced_);  // after one huge frame
    return wrote >= static_cast<int>(total);
}

long FrameWriter::send(lws *wsi, const SendBatch &batch) {
    // libwebsockets still holds unsent bytes for this socket: ours go behind them.
    if (lws_partial_buffered(wsi)) return handToLibwebsockets(wsi, batch, 0) ? static_cast<long>(batch.total) : -1;
    iovec iov[SendBatch::kMaxPieces];
    toIovecs(batch, staging_, iov);
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(batch.count);
    long sent = transportSendmsg(lws_get_socket_fd(wsi), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);  // TLS records for wss://
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        sent = 0;
    }
    if (static_cast<size_t>(sent) == batch.total) return 0;
    return handToLibwebsockets(wsi, batch, static_cast<size_t>(sent)) ? static_cast<long>(batch.total - static_cast<size_t>(sent)) : -1;
}

}  // namespace wsgw
