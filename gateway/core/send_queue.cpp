#include "send_queue.h"

#include <algorithm>
#include <cstdint>

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
    staging.clear();
    if (staging.capacity() < kStagingBytes) staging.reserve(kStagingBytes);  // never grows past it below
    batch.count = 0;
    batch.frames = 0;
    batch.total = 0;
    size_t pieceStart = 0, messagesDone = 0, offset = headOffset_;
    auto closeStagingPiece = [&] {
        if (staging.size() > pieceStart) batch.pieces[batch.count++] = {nullptr, pieceStart, staging.size() - pieceStart};
        pieceStart = staging.size();
    };
    for (const OutFrame &f : frames_) {
        std::string_view payload = f.payload.view();
        do {  // one frame of this message per turn; an empty message is one empty frame
            size_t part = std::min(payload.size() - offset, kMaxFrameBytes);
            size_t staged = 10 + (part <= kGatherCopyBytes ? part : 0);
            if (batch.frames > 0 && (batch.total + part + 10 > kBatchBytes || staging.size() + staged > kStagingBytes ||
                                     batch.count + 2 > SendBatch::kMaxPieces || batch.frames == SendBatch::kMaxFrames)) {
                closeStagingPiece();
                return static_cast<size_t>(batch.frames);
            }
            const bool last = offset + part == payload.size();
            unsigned char header[10];
            size_t h = frameHeader(header, part, f.binary, offset == 0, last);
            staging.append(reinterpret_cast<const char *>(header), h);
            if (part <= kGatherCopyBytes) {
                staging.append(payload.substr(offset, part));
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
