// Owns: the incremental scan of client frame headers for what fails a connection (client_frame_scanner.h).
#include "client_frame_scanner.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace wsgw {

namespace {

constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kFinBit = 0x80, kRsv1Bit = 0x40, kRsv2And3Bits = 0x30, kOpcodeBits = 0x0f, kFirstControlOpcode = 0x8;
constexpr uint8_t kContinuation = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xa;
constexpr uint8_t kMaxControlPayload = 125;
constexpr uint8_t kLength16 = 126, kLength64 = 127;
constexpr uint8_t kMaskKeyBytes = 4;
constexpr uint8_t kLongHeaderLength = 2 + 8 + kMaskKeyBytes;  // with a 64-bit length
constexpr uint8_t kLengthTopBit = 0x80;                        // of a 64-bit length's first (most significant) byte

// XORs n payload bytes with the key, starting at key byte `phase`: written 8 bytes a step, which the compiler
// makes 16 (SSE2), the last few through the same 8-byte pattern.
void unmaskInPlace(uint8_t *p, uint64_t n, const uint8_t key[4], unsigned phase) {
    uint32_t k;
    std::memcpy(&k, key, sizeof k);
    // In memory order the pattern starts at key byte `phase`: a rotation of the word as it is stored.
    unsigned shift = 8 * phase;
    if constexpr (std::endian::native == std::endian::little) k = std::rotr(k, static_cast<int>(shift));
    else k = std::rotl(k, static_cast<int>(shift));
    uint64_t mask = uint64_t{k} << 32 | k;
    uint64_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t v;
        std::memcpy(&v, p + i, sizeof v);
        v ^= mask;
        std::memcpy(p + i, &v, sizeof v);
    }
    if (i < n) {
        uint8_t pattern[8];
        std::memcpy(pattern, &mask, sizeof pattern);
        for (unsigned j = 0; i < n; ++i, ++j) p[i] ^= pattern[j];
    }
}

}  // namespace

const char *clientFrameFaultReason(ClientFrameFault fault) {
    switch (fault) {
    case ClientFrameFault::None: return "";
    case ClientFrameFault::Unmasked: return "Protocol error: client frame not masked (RFC 6455 5.1)";
    case ClientFrameFault::ReservedBits: return "Protocol error: reserved bits set (RFC 6455 5.2)";
    case ClientFrameFault::Rsv1WithoutExtension:
        return "Protocol error: RSV1 set but no extension was negotiated (RFC 6455 5.2)";
    case ClientFrameFault::LengthTopBitSet:
        return "Protocol error: 64-bit payload length with its most significant bit set (RFC 6455 5.2)";
    case ClientFrameFault::ReservedOpcode: return "Protocol error: reserved opcode (RFC 6455 5.2)";
    case ClientFrameFault::FragmentedControl: return "Protocol error: fragmented control frame (RFC 6455 5.5)";
    case ClientFrameFault::LongControl: return "Protocol error: control frame payload over 125 bytes (RFC 6455 5.5)";
    case ClientFrameFault::ContinuationWithoutMessage:
        return "Protocol error: continuation frame with no message to continue (RFC 6455 5.4)";
    case ClientFrameFault::MessageInsideMessage:
        return "Protocol error: new message before the fragmented one ended (RFC 6455 5.4)";
    case ClientFrameFault::FrameTooBig:
    case ClientFrameFault::MessageTooBig: return "Message too big";
    case ClientFrameFault::ControlFrameFlood: return "Too many control frames: over 256 at once or 64 per second";
    }
    return "Protocol error";
}

int clientFrameFaultCloseCode(ClientFrameFault fault) {
    switch (fault) {
    case ClientFrameFault::FrameTooBig:
    case ClientFrameFault::MessageTooBig: return 1009;
    case ClientFrameFault::ControlFrameFlood: return 1008;
    default: return 1002;
    }
}

ClientFrameFault ClientFrameScanner::controlFrameFault() {
    if (!limits_ || limits_->controlFrameBurst == 0 || !limits_->nowMs) return ClientFrameFault::None;
    const uint64_t full = uint64_t{limits_->controlFrameBurst} * 1000;
    int64_t now = limits_->nowMs();
    if (!controlBudgetStarted_) {
        controlBudgetStarted_ = true;
        controlMilliTokens_ = static_cast<uint32_t>(full);
        controlRefilledAtMs_ = now;
    } else if (now > controlRefilledAtMs_) {
        // A thousandth of a frame per millisecond per frame-per-second of rate.
        uint64_t refill = static_cast<uint64_t>(now - controlRefilledAtMs_) * limits_->controlFramesPerSecond;
        controlMilliTokens_ = static_cast<uint32_t>(std::min<uint64_t>(full, controlMilliTokens_ + refill));
    }
    if (now > controlRefilledAtMs_) controlRefilledAtMs_ = now;
    if (controlMilliTokens_ < 1000) return ClientFrameFault::ControlFrameFlood;
    controlMilliTokens_ -= 1000;
    return ClientFrameFault::None;
}

ClientFrameFault ClientFrameScanner::limitFault() {
    uint8_t opcode = firstByte_ & kOpcodeBits;
    if (opcode == kPing || opcode == kPong) return controlFrameFault();
    if (opcode >= kFirstControlOpcode || !limits_) return ClientFrameFault::None;  // a close ends it all anyway
    if (limits_->maxFrameBytes && payloadLeft_ > limits_->maxFrameBytes) return ClientFrameFault::FrameTooBig;
    if (opcode != kContinuation) {
        messageWireBytes_ = 0;
        messageCompressed_ = firstByte_ & kRsv1Bit;
    }
    bool fin = firstByte_ & kFinBit;
    // Saturating: a 64-bit length may be up to 2^63 - 1.
    uint64_t counted = fin ? payloadLeft_ : std::max(payloadLeft_, ClientFrameLimits::kFragmentFloorBytes);
    messageWireBytes_ = counted > UINT64_MAX - messageWireBytes_ ? UINT64_MAX : messageWireBytes_ + counted;
    uint64_t limit = limits_->maxMessageBytes;
    if (limit == 0) return ClientFrameFault::None;
    // Deflate may grow incompressible data: 5 bytes per 64 KiB stored block, and a block's end.
    if (messageCompressed_) limit += limit / 1024 + 64;
    return messageWireBytes_ > limit ? ClientFrameFault::MessageTooBig : ClientFrameFault::None;
}

ClientFrameFault ClientFrameScanner::faultOf(uint8_t first, uint8_t second) const {
    if (!(second & kMaskBit)) return ClientFrameFault::Unmasked;
    uint8_t opcode = first & kOpcodeBits;
    bool control = opcode >= kFirstControlOpcode;
    if (opcode != kContinuation && opcode != kText && opcode != kBinary && opcode != kClose && opcode != kPing &&
        opcode != kPong)
        return ClientFrameFault::ReservedOpcode;
    if (first & kRsv2And3Bits) return ClientFrameFault::ReservedBits;
    if (first & kRsv1Bit) {
        if (deflate_ == DeflateNegotiation::NotNegotiated) return ClientFrameFault::Rsv1WithoutExtension;
        if (control || opcode == kContinuation) return ClientFrameFault::ReservedBits;
    }
    if (control && !(first & kFinBit)) return ClientFrameFault::FragmentedControl;
    if (control && (second & 0x7f) > kMaxControlPayload) return ClientFrameFault::LongControl;
    if (opcode == kContinuation && !inMessage_) return ClientFrameFault::ContinuationWithoutMessage;
    if ((opcode == kText || opcode == kBinary) && inMessage_) return ClientFrameFault::MessageInsideMessage;
    return ClientFrameFault::None;
}

size_t ClientFrameScanner::fail(ClientFrameFault fault, size_t at) {
    fault_ = fault;
    return at >= headerRead_ ? at - headerRead_ : 0;
}

void ClientFrameScanner::takeMaskKey(uint8_t *key) {
    std::memcpy(maskKey_, key, sizeof maskKey_);
    std::memset(key, 0, sizeof maskKey_);
    maskPhase_ = 0;
    unmasking_ = true;
}

template <bool Unmask>
size_t ClientFrameScanner::scanPiece(uint8_t *data, size_t len) {
    if (failed()) return kAllMasked;
    size_t i = 0;
    while (i < len) {
        if (headerRead_ == 0 && payloadLeft_ != 0) {  // inside a payload: skip what this piece holds of it
            uint64_t skip = std::min<uint64_t>(payloadLeft_, len - i);
            if constexpr (Unmask) {
                if (unmasking_) {
                    unmaskInPlace(data + i, skip, maskKey_, maskPhase_);
                    maskPhase_ = static_cast<uint8_t>((maskPhase_ + skip) & 3);
                }
            }
            payloadLeft_ -= skip;
            i += static_cast<size_t>(skip);
            if (payloadLeft_ == 0 && endsMessage_) ++messagesEnded_;
            continue;
        }
        // A whole short header (7-bit length, then the masking key) in this piece: read at once, as the
        // byte-by-byte steps below would (a small message's frame, the common case).
        if (headerRead_ == 0 && len - i >= 2 + kMaskKeyBytes && (data[i + 1] & 0x7f) < kLength16) {
            uint8_t first = data[i], second = data[i + 1];
            firstByte_ = first;
            unmasking_ = false;
            endsMessage_ = (first & kFinBit) && (first & kOpcodeBits) < kFirstControlOpcode;
            if (ClientFrameFault fault = faultOf(first, second); fault != ClientFrameFault::None) {
                headerRead_ = 1;
                return fail(fault, i + 1);
            }
            if ((first & kOpcodeBits) < kFirstControlOpcode) inMessage_ = !(first & kFinBit);
            payloadLeft_ = second & 0x7f;
            if (ClientFrameFault fault = limitFault(); fault != ClientFrameFault::None) {
                headerRead_ = 1;
                return fail(fault, i + 1);
            }
            if constexpr (Unmask) takeMaskKey(data + i + 2);
            i += 2 + kMaskKeyBytes;
            if (payloadLeft_ == 0 && endsMessage_) ++messagesEnded_;
            continue;
        }
        uint8_t b = data[i];
        if (headerRead_ == 0) {  // FIN, RSV and opcode: checked with the next byte
            firstByte_ = b;
            unmasking_ = false;
            endsMessage_ = (b & kFinBit) && (b & kOpcodeBits) < kFirstControlOpcode;
            headerRead_ = 1;
            ++i;
            continue;
        }
        if (headerRead_ == 1) {  // MASK and the 7-bit length
            if (ClientFrameFault fault = faultOf(firstByte_, b); fault != ClientFrameFault::None) return fail(fault, i);
            if ((firstByte_ & kOpcodeBits) < kFirstControlOpcode) inMessage_ = !(firstByte_ & kFinBit);
            uint8_t length7 = b & 0x7f;
            uint8_t extended = length7 == kLength16 ? 2 : length7 == kLength64 ? 8 : 0;
            headerLength_ = static_cast<uint8_t>(2 + extended + kMaskKeyBytes);
            payloadLeft_ = extended ? 0 : length7;
            if (!extended) {
                if (ClientFrameFault fault = limitFault(); fault != ClientFrameFault::None) return fail(fault, i);
            }
            headerRead_ = 2;
            ++i;
            continue;
        }
        // The extended length (big-endian), then the masking key. A 64-bit length's top bit must be clear:
        // libwebsockets drops such a frame's connection without a close frame (and $disconnect saw 1006).
        if (headerRead_ == 2 && headerLength_ == kLongHeaderLength && (b & kLengthTopBit))
            return fail(ClientFrameFault::LengthTopBitSet, i);
        if constexpr (Unmask) {
            // The whole key in this piece (the length before it is complete and checked): taken off here.
            if (headerRead_ == headerLength_ - kMaskKeyBytes && len - i >= kMaskKeyBytes) {
                takeMaskKey(data + i);
                i += kMaskKeyBytes;
                headerRead_ = 0;
                if (payloadLeft_ == 0 && endsMessage_) ++messagesEnded_;
                continue;
            }
        }
        if (headerRead_ < headerLength_ - kMaskKeyBytes) {
            payloadLeft_ = payloadLeft_ << 8 | b;
            if (headerRead_ + 1 == headerLength_ - kMaskKeyBytes) {  // the length is complete
                if (ClientFrameFault fault = limitFault(); fault != ClientFrameFault::None) return fail(fault, i);
            }
        }
        ++headerRead_;
        ++i;
        if (headerRead_ == headerLength_) {  // the payload (if any) follows
            headerRead_ = 0;
            if (payloadLeft_ == 0 && endsMessage_) ++messagesEnded_;
        }
    }
    return kAllMasked;
}

template size_t ClientFrameScanner::scanPiece<false>(uint8_t *, size_t);
template size_t ClientFrameScanner::scanPiece<true>(uint8_t *, size_t);

}  // namespace wsgw
