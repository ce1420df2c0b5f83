#include "send_queue.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace wsgw {

size_t SendQueue::frameHeader(unsigned char *out, size_t len, bool binary, bool first, bool last) {
    size_t h = 0;
    out[h++] = static_cast<unsigned char>((last ? 0x80 : 0) | (first ? (binary ? 0x2 : 0x1) : 0x0));
    if (len < 126) {
        out[h++] = static_cast<unsigned char>(len);
    } else if (len <= 0xffff) {
        out[h++] = 126;
        out[h++] = static_cast<unsigned char>(len >> 8);
        out[h++] = static_cast<unsigned char>(len);
    } else {
        out[h++] = 127;
        for (int shift = 56; shift >= 0; shift -= 8) out[h++] = static_cast<unsigned char>(static_cast<uint64_t>(len) >> shift);
    }
    return h;
}

size_t SendQueue::gather(std::string &staging, SendBatch &batch) const {
    // The staging buffer is kept at its full size (made once; bytes past what this batch writes mean nothing)
    // and written through a pointer: two std::string appends per frame cost more than the framing itself.
    if (staging.size() != kStagingBytes) staging.resize(kStagingBytes);
    char *const base = staging.data();
    size_t used = 0;
    batch.count = 0;
    batch.frames = 0;
    batch.total = 0;
    size_t pieceStart = 0, messagesDone = 0, offset = headOffset_;
    auto closeStagingPiece = [&] {
        if (used > pieceStart) batch.pieces[batch.count++] = {nullptr, pieceStart, used - pieceStart};
        pieceStart = used;
    };
    for (const OutFrame &f : frames_) {
        std::string_view payload = f.payload.view();
        do {  // one frame of this message per turn; an empty message is one empty frame
            size_t part = std::min(payload.size() - offset, kMaxFrameBytes);
            size_t staged = 10 + (part <= kGatherCopyBytes ? part : 0);
            if (batch.frames > 0 && (batch.total + part + 10 > kBatchBytes || used + staged > kStagingBytes ||
                                     batch.count + 2 > SendBatch::kMaxPieces || batch.frames == SendBatch::kMaxFrames)) {
                closeStagingPiece();
                return static_cast<size_t>(batch.frames);
            }
            const bool last = offset + part == payload.size();
            size_t h = frameHeader(reinterpret_cast<unsigned char *>(base + used), part, f.binary, offset == 0, last);
            used += h;
            if (part <= kGatherCopyBytes) {
                std::memcpy(base + used, payload.data() + offset, part);
                used += part;
            } else {
                closeStagingPiece();
                batch.pieces[batch.count++] = {payload.data() + offset, 0, part};
            }
            batch.total += h + part;
            offset = last ? 0 : offset + part;
            if (last) ++messagesDone;
            batch.frameEnds[batch.frames++] = {batch.total, messagesDone, offset};
        } while (offset != 0);
    }
    closeStagingPiece();
    return static_cast<size_t>(batch.frames);
}

}  // namespace wsgw
