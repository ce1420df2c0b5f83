#include "send_queue.h"

#include <cstdint>

namespace wsgw {

size_t SendQueue::frameHeader(unsigned char *out, size_t len, bool binary) {
    size_t h = 0;
    out[h++] = static_cast<unsigned char>(0x80 | (binary ? 0x2 : 0x1));
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

size_t SendQueue::gather(std::string &staging, SendBatch &batch) {
    staging.clear();
    if (staging.capacity() < kStagingBytes) staging.reserve(kStagingBytes);  // never grows past it below
    batch.count = 0;
    batch.total = 0;
    size_t frames = 0, pieceStart = 0;
    auto closeStagingPiece = [&] {
        if (staging.size() > pieceStart) batch.pieces[batch.count++] = {nullptr, pieceStart, staging.size() - pieceStart};
        pieceStart = staging.size();
    };
    for (const OutFrame &f : frames_) {
        std::string_view payload = f.payload.view();
        size_t len = payload.size();
        if (frames > 0 && (batch.total + len + 10 > kCoalesceBytes || batch.count + 2 > SendBatch::kMaxPieces)) break;
        unsigned char header[10];
        size_t h = frameHeader(header, len, f.binary);
        staging.append(reinterpret_cast<const char *>(header), h);
        if (len <= kGatherCopyBytes) {
            staging.append(payload);
        } else {
            closeStagingPiece();
            batch.pieces[batch.count++] = {payload.data(), 0, len};
        }
        batch.total += h + len;
        ++frames;
    }
    closeStagingPiece();
    return frames;
}

}  // namespace wsgw
