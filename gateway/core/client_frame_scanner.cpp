// Owns: the incremental scan of client frame headers for a missing mask (client_frame_scanner.h).
#include "client_frame_scanner.h"

#include <algorithm>

namespace wsgw {

namespace {

constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kFinBit = 0x80, kOpcodeBits = 0x0f, kFirstControlOpcode = 0x8;
constexpr uint8_t kLength16 = 126, kLength64 = 127;
constexpr uint8_t kMaskKeyBytes = 4;

}  // namespace

size_t ClientFrameScanner::scan(const uint8_t *data, size_t len) {
    if (failed_) return kAllMasked;
    size_t i = 0;
    while (i < len) {
        if (headerRead_ == 0 && payloadLeft_ != 0) {  // inside a payload: skip what this piece holds of it
            uint64_t skip = std::min<uint64_t>(payloadLeft_, len - i);
            payloadLeft_ -= skip;
            i += static_cast<size_t>(skip);
            if (payloadLeft_ == 0 && endsMessage_) ++messagesEnded_;
            continue;
        }
        uint8_t b = data[i];
        if (headerRead_ == 0) {  // FIN, RSV and opcode: only counted (libwebsockets checks them)
            endsMessage_ = (b & kFinBit) && (b & kOpcodeBits) < kFirstControlOpcode;
            headerRead_ = 1;
            ++i;
            continue;
        }
        if (headerRead_ == 1) {  // MASK and the 7-bit length
            if (!(b & kMaskBit)) {
                failed_ = true;
                return i == 0 ? 0 : i - 1;  // where its first byte was, if in this piece
            }
            uint8_t length7 = b & 0x7f;
            uint8_t extended = length7 == kLength16 ? 2 : length7 == kLength64 ? 8 : 0;
            headerLength_ = static_cast<uint8_t>(2 + extended + kMaskKeyBytes);
            payloadLeft_ = extended ? 0 : length7;
            headerRead_ = 2;
            ++i;
            continue;
        }
        // The extended length (big-endian), then the masking key.
        if (headerRead_ < headerLength_ - kMaskKeyBytes) payloadLeft_ = payloadLeft_ << 8 | b;
        ++headerRead_;
        ++i;
        if (headerRead_ == headerLength_) {  // the payload (if any) follows
            headerRead_ = 0;
            if (payloadLeft_ == 0 && endsMessage_) ++messagesEnded_;
        }
    }
    return kAllMasked;
}

}  // namespace wsgw
