#include "frame_writer.h"

#include "socket_calls.h"

#include <libwebsockets.h>

#include <algorithm>
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

void FrameWriter::appendUnsent(const SendBatch &batch, const std::string &staging, size_t skip, size_t end,
                               std::string &out) {
    size_t at = 0;  // where the current piece starts in the batch
    for (int i = 0; i < batch.count && at < end; ++i) {
        const SendBatch::Piece &piece = batch.pieces[i];
        size_t from = std::max(skip, at), to = std::min(end, at + piece.len);
        if (from < to) out.append((piece.data ? piece.data : staging.data() + piece.offset) + (from - at), to - from);
        at += piece.len;
    }
}

FrameWriter::Split FrameWriter::splitAt(const SendBatch &batch, size_t sent) {
    int i = 0;
    while (i < batch.frames && batch.frameEnds[i].wireEnd <= sent) ++i;
    if (i == batch.frames) return {batch.frames, sent};
    size_t frameStart = i > 0 ? batch.frameEnds[i - 1].wireEnd : 0;
    if (sent == frameStart) return {i, sent};  // stopped between frames: nothing of this one went out
    return {i + 1, batch.frameEnds[i].wireEnd};
}

// The batch's bytes [skip, end), given to libwebsockets as they are.
bool FrameWriter::handToLibwebsockets(lws *wsi, const SendBatch &batch, size_t skip, size_t end) {
    coalesced_.resize(LWS_PRE);
    appendUnsent(batch, staging_, skip, end, coalesced_);
    size_t total = coalesced_.size() - LWS_PRE;
    int wrote = lws_write(wsi, reinterpret_cast<unsigned char *>(coalesced_.data()) + LWS_PRE, total, LWS_WRITE_HTTP);
    if (coalesced_.capacity() > kCoalesceKeptBytes) std::string().swap(coalesced_);
    return wrote >= static_cast<int>(total);
}

FrameWriter::Outcome FrameWriter::send(lws *wsi, const SendBatch &batch) {
    // libwebsockets still holds the rest of a frame: ours wait until it has sent it (WRITEABLE comes then).
    if (lws_partial_buffered(wsi)) return {};
    iovec iov[SendBatch::kMaxPieces];
    toIovecs(batch, staging_, iov);
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(batch.count);
    long sent = transportSendmsg(lws_get_socket_fd(wsi), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);  // TLS records for wss://
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return {true, 0, 0};
        sent = 0;
    }
    Split split = splitAt(batch, static_cast<size_t>(sent));
    Outcome outcome{false, split.framesSent, split.end - static_cast<size_t>(sent)};
    if (outcome.handed && !handToLibwebsockets(wsi, batch, static_cast<size_t>(sent), split.end)) outcome.failed = true;
    return outcome;
}

}  // namespace wsgw
