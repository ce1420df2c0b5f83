// Fuzz target for the client frame scanner (core/client_frame_scanner), which reads every byte a client sends
// after its upgrade: fed the input whole, a byte at a time and in uneven pieces (chosen by the first byte),
// it must find the same first faulty frame (and the same fault) as a plain whole-buffer walk written here
// from RFC 6455's rules, at the right offset of the right piece, count the same completed messages before it,
// and never read past a piece. Each input is tried with permessage-deflate undecided, negotiated and not, and
// without and with limits (sizes and a control frame budget chosen by the first byte, on a clock that stands
// still), which the walk applies as written here. The pieces are read with scanUnmasking: what is handed on,
// decoded with whatever keys it carries, must be the frames of the input, byte for byte.
#include "client_frame_scanner.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

using namespace wsgw;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

constexpr size_t kNone = SIZE_MAX;

struct Walk {
    size_t faultAt = kNone;  // offset of the first faulty frame's header
    size_t decidedAt = kNone;  // offset of the byte that shows the fault (in the header: the second or third)
    ClientFrameFault fault = ClientFrameFault::None;
    uint32_t messagesEnded = 0;  // data frames with FIN, wholly present, before it
    bool atBoundary = true;      // the input ends between frames
};

// RFC 6455's rules for one frame header, as a table of what each opcode may be.
ClientFrameFault ruleFault(uint8_t b0, uint8_t b1, bool fragmentOpen, DeflateNegotiation deflate) {
    if (!(b1 & 0x80)) return ClientFrameFault::Unmasked;
    unsigned opcode = b0 & 0x0f;
    static const bool known[16] = {true, true, true, false, false, false, false, false,
                                   true, true, true, false, false, false, false, false};
    if (!known[opcode]) return ClientFrameFault::ReservedOpcode;
    bool isControl = opcode & 0x8;
    bool rsv1 = b0 & 0x40, rsv2 = b0 & 0x20, rsv3 = b0 & 0x10, fin = b0 & 0x80;
    if (rsv2 || rsv3) return ClientFrameFault::ReservedBits;
    if (rsv1 && deflate == DeflateNegotiation::NotNegotiated) return ClientFrameFault::Rsv1WithoutExtension;
    if (rsv1 && (isControl || opcode == 0)) return ClientFrameFault::ReservedBits;
    if (isControl && !fin) return ClientFrameFault::FragmentedControl;
    if (isControl && (b1 & 0x7f) >= 126) return ClientFrameFault::LongControl;
    if (opcode == 0 && !fragmentOpen) return ClientFrameFault::ContinuationWithoutMessage;
    if ((opcode == 1 || opcode == 2) && fragmentOpen) return ClientFrameFault::MessageInsideMessage;
    return ClientFrameFault::None;
}

int64_t clockStandingStill() { return 1000; }

// The limits' verdict on a frame whose length is known (`messageBytes`: the open message's count so far).
ClientFrameFault limitsFault(const ClientFrameLimits &l, uint8_t b0, uint64_t length, uint64_t &messageBytes,
                             bool &compressed, uint32_t &controlFrames) {
    unsigned opcode = b0 & 0x0f;
    if (opcode == 9 || opcode == 10) {
        if (l.controlFrameBurst && ++controlFrames > l.controlFrameBurst) return ClientFrameFault::ControlFrameFlood;
        return ClientFrameFault::None;
    }
    if (opcode >= 8) return ClientFrameFault::None;
    if (l.maxFrameBytes && length > l.maxFrameBytes) return ClientFrameFault::FrameTooBig;
    if (opcode != 0) {
        messageBytes = 0;
        compressed = b0 & 0x40;
    }
    uint64_t counted = (b0 & 0x80) ? length : std::max<uint64_t>(length, 64);
    messageBytes = counted > UINT64_MAX - messageBytes ? UINT64_MAX : messageBytes + counted;
    uint64_t limit = l.maxMessageBytes + (compressed ? l.maxMessageBytes / 1024 + 64 : 0);
    return l.maxMessageBytes && messageBytes > limit ? ClientFrameFault::MessageTooBig : ClientFrameFault::None;
}

// The frames one after another, from the whole buffer: the reference the scanner must agree with.
Walk walk(const uint8_t *d, size_t n, DeflateNegotiation deflate, const ClientFrameLimits *limits) {
    Walk w;
    size_t pos = 0;
    bool fragmentOpen = false;
    uint64_t messageBytes = 0;
    bool compressed = false;
    uint32_t controlFrames = 0;
    while (pos < n) {
        w.atBoundary = false;
        if (n - pos < 2) return w;
        w.fault = ruleFault(d[pos], d[pos + 1], fragmentOpen, deflate);
        if (w.fault != ClientFrameFault::None) {
            w.faultAt = pos;
            w.decidedAt = pos + 1;
            return w;
        }
        if (!(d[pos] & 0x8)) fragmentOpen = !(d[pos] & 0x80);
        uint64_t length = d[pos + 1] & 0x7f;
        if (length == 127) {  // 5.2: a 64-bit length's most significant bit must be 0
            if (n - pos < 3) return w;
            if (d[pos + 2] & 0x80) {
                w.fault = ClientFrameFault::LengthTopBitSet;
                w.faultAt = pos;
                w.decidedAt = pos + 2;
                return w;
            }
        }
        size_t extended = length == 126 ? 2 : length == 127 ? 8 : 0;
        size_t header = 2 + extended + 4;
        if (n - pos < 2 + extended) return w;
        if (extended) {
            length = 0;
            for (size_t i = 0; i < extended; ++i) length = length << 8 | d[pos + 2 + i];
        }
        if (limits) {
            w.fault = limitsFault(*limits, d[pos], length, messageBytes, compressed, controlFrames);
            if (w.fault != ClientFrameFault::None) {
                w.faultAt = pos;
                w.decidedAt = pos + 1 + extended;
                return w;
            }
        }
        if (n - pos < header) return w;
        if (length > n - pos - header) return w;
        bool endsMessage = (d[pos] & 0x80) && (d[pos] & 0x0f) < 0x8;
        if (endsMessage) ++w.messagesEnded;
        pos += header + static_cast<size_t>(length);
        w.atBoundary = true;
    }
    return w;
}

struct WholeFrame {
    uint8_t first;
    size_t keyAt;  // the masking key's offset
    std::vector<uint8_t> payload;  // unmasked with the key the frame carries
    bool operator==(const WholeFrame &) const = default;
};

// The whole frames at the start of d[0..n).
std::vector<WholeFrame> wholeFrames(const uint8_t *d, size_t n) {
    std::vector<WholeFrame> out;
    size_t pos = 0;
    while (n - pos >= 2) {
        uint64_t length = d[pos + 1] & 0x7f;
        size_t extended = length == 126 ? 2 : length == 127 ? 8 : 0;
        size_t header = 2 + extended + 4;
        if (n - pos < header) break;
        if (extended) {
            length = 0;
            for (size_t i = 0; i < extended; ++i) length = length << 8 | d[pos + 2 + i];
        }
        if (length > n - pos - header) break;
        const uint8_t *key = d + pos + header - 4;
        std::vector<uint8_t> payload(d + pos + header, d + pos + header + length);
        for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= key[i & 3];
        out.push_back({d[pos], pos + header - 4, std::move(payload)});
        pos += header + static_cast<size_t>(length);
    }
    return out;
}

// Feeds `d` in pieces of the given sizes (cycled); checks each answer against the reference walk.
void feed(const uint8_t *d, size_t n, const std::vector<size_t> &sizes, const Walk &ref, DeflateNegotiation deflate,
          const ClientFrameLimits *limits) {
    ClientFrameScanner scanner(deflate);
    scanner.setLimits(limits);
    size_t base = 0, k = 0;
    bool found = false;
    std::vector<uint8_t> handedOn;  // what libwebsockets would read
    std::vector<size_t> pieceStarts;
    while (base < n) {
        pieceStarts.push_back(base);
        size_t len = std::min(sizes[k++ % sizes.size()], n - base);
        // A copy of exactly this piece: a read past it is a heap overflow the sanitizer sees.
        std::vector<uint8_t> piece(d + base, d + base + len);
        size_t at = scanner.scanUnmasking(piece.data(), piece.size());
        // Once failed, nothing more is handed on (the scanner answers kAllMasked and ignores the rest).
        if (!found) handedOn.insert(handedOn.end(), piece.begin(), piece.begin() + static_cast<std::ptrdiff_t>(std::min(at, len)));
        if (at != ClientFrameScanner::kAllMasked) {
            require(!found && ref.faultAt != kNone);
            // It fails in the piece holding the byte that shows the fault; the offset is the header's first
            // byte when that is in this piece, else 0.
            require(ref.decidedAt >= base && ref.decidedAt < base + len);
            require(at == (ref.faultAt >= base ? ref.faultAt - base : 0));
            require(scanner.failed() && scanner.fault() == ref.fault);
            require(clientFrameFaultReason(scanner.fault())[0] != '\0');
            int code = clientFrameFaultCloseCode(scanner.fault());
            require(code == 1002 || code == 1008 || code == 1009);
            found = true;
        }
        base += len;
    }
    require(found == (ref.faultAt != kNone));
    require(scanner.failed() == found);
    require(scanner.messagesEnded() == ref.messagesEnded);
    if (!found) require(scanner.atFrameBoundary() == ref.atBoundary);
    // Up to the faulty header, and the part of it that earlier pieces held (those were handed on whole).
    require(found ? handedOn.size() >= ref.faultAt && handedOn.size() <= ref.decidedAt : handedOn.size() == n);
    std::vector<WholeFrame> seen = wholeFrames(handedOn.data(), handedOn.size());
    require(seen == wholeFrames(d, handedOn.size()));
    // Each key that one piece held whole is zeroed; a key split between pieces is the client's own.
    for (const WholeFrame &f : seen) {
        auto next = std::upper_bound(pieceStarts.begin(), pieceStarts.end(), f.keyAt);
        bool inOnePiece = next == pieceStarts.end() || *next >= f.keyAt + 4;
        bool zero = !(handedOn[f.keyAt] | handedOn[f.keyAt + 1] | handedOn[f.keyAt + 2] | handedOn[f.keyAt + 3]);
        require(inOnePiece ? zero : std::equal(d + f.keyAt, d + f.keyAt + 4, handedOn.begin() + static_cast<std::ptrdiff_t>(f.keyAt)));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t mode = data[0];
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    ClientFrameLimits limits;
    limits.maxFrameBytes = (mode & 0x80) ? 0 : 1 + (mode % 61) * 7u;  // 0: that limit unchecked
    limits.maxMessageBytes = (mode & 0x40) ? 0 : 1 + (mode % 37) * 23u;
    limits.controlFrameBurst = mode % 5;  // 0: no budget
    limits.controlFramesPerSecond = 64;
    limits.nowMs = clockStandingStill;
    const ClientFrameLimits *variants[] = {nullptr, &limits};
    for (const ClientFrameLimits *l : variants) {
        for (DeflateNegotiation deflate :
             {DeflateNegotiation::Undecided, DeflateNegotiation::Negotiated, DeflateNegotiation::NotNegotiated}) {
            Walk ref = walk(d, n, deflate, l);
            feed(d, n, {n ? n : 1}, ref, deflate, l);
            if (n <= 4096) feed(d, n, {1}, ref, deflate, l);
            feed(d, n, {static_cast<size_t>(mode % 7) + 1, static_cast<size_t>(mode % 13) + 2, static_cast<size_t>(mode) + 1},
                 ref, deflate, l);
        }
    }
    return 0;
}
