// Owns: finding the first client frame that RFC 6455 says a server must fail the connection on, in the bytes a
// client sends after the upgrade, read in arbitrary pieces: a frame without a mask (5.1), a reserved opcode,
// reserved bits or a 64-bit length with its most significant bit set (5.2; RSV1 only where permessage-deflate
// may put it: on a message's first frame, and only once the handshake negotiated it), a fragmented or
// over-long control frame (5.5), a continuation with no message to continue or a new message inside a
// fragmented one (5.4). Only frame headers are looked at: payloads (7-, 16- and 64-bit lengths) are skipped
// by count, so the cost per read is a few steps per frame whatever its size. Pure: the network layer feeds it what each read returned. libwebsockets checks
// most of these too, but then waits 30 s for the client's close and reports 1006; failing them here closes
// as every other protocol error does (1002, the 5 s close deadline, $disconnect with 1002 and the reason).
//
// scanUnmasking() also takes each frame's mask off in place, 16 bytes a step, and zeroes its masking key:
// a frame masked with 0000 is the same frame (RFC 6455 5.3), and libwebsockets 4.1.6, which would unmask it
// again one byte at a time (about a third of the gateway's instructions per 16 KiB message), skips a key
// that is all zero. A frame whose key is split between two reads keeps its mask: the first part of the
// key is already with libwebsockets.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wsgw {

// Why a client frame fails the connection (each with its close reason, clientFrameFaultReason).
enum class ClientFrameFault : uint8_t {
    None,
    Unmasked,                    // 5.1
    ReservedBits,                // 5.2: RSV2 or RSV3, or RSV1 on a control frame or a continuation
    Rsv1WithoutExtension,        // 5.2: RSV1 on a connection that negotiated no extension
    LengthTopBitSet,             // 5.2: a 64-bit payload length whose most significant bit is set
    ReservedOpcode,              // 5.2: 0x3-0x7, 0xB-0xF
    FragmentedControl,           // 5.5: a control frame without FIN
    LongControl,                 // 5.5: a control frame's payload over 125 bytes
    ContinuationWithoutMessage,  // 5.4
    MessageInsideMessage,        // 5.4: a text or binary frame while a fragmented message is open
    // The gateway's limits (ClientFrameLimits), not RFC 6455's rules:
    FrameTooBig,        // a data frame's announced payload over maxFrameBytes
    MessageTooBig,      // a message's frames announce more than maxMessageBytes (fragments count at least 64)
    ControlFrameFlood,  // pings and pongs faster than the control frame budget allows
};

// The close reason (under 123 bytes, as a close frame allows) a connection fails with for `fault`.
const char *clientFrameFaultReason(ClientFrameFault fault);
// The close code: 1002 for RFC 6455's faults, 1009 for the size limits, 1008 for a control frame flood.
int clientFrameFaultCloseCode(ClientFrameFault fault);

// What the gateway allows a client beyond RFC 6455 (0: not checked). Sizes count the wire: a compressed
// message's inflated size is checked where it is inflated, and here its wire bytes may exceed
// maxMessageBytes by deflate's worst-case growth (kCompressedSlack).
struct ClientFrameLimits {
    // A fragment that does not end its message counts at least this much towards maxMessageBytes: a message
    // of empty fragments would otherwise never end and never count (2,048 fragments with the defaults).
    static constexpr uint64_t kFragmentFloorBytes = 64;
    // Pings and pongs: a burst of this many, then this many per second (a heartbeat needs one in tens of
    // seconds; a client may measure round trips a few times a second).
    static constexpr uint32_t kControlFrameBurst = 256;
    static constexpr uint32_t kControlFramesPerSecond = 64;

    uint64_t maxFrameBytes = 0;
    uint64_t maxMessageBytes = 0;
    uint32_t controlFrameBurst = 0;
    uint32_t controlFramesPerSecond = 0;
    // Milliseconds on a monotonic clock, read only when a control frame arrives (the budget's refill).
    int64_t (*nowMs)() = nullptr;
};

// Whether the connection's handshake negotiated permessage-deflate, the only extension that may set RSV1.
enum class DeflateNegotiation : uint8_t {
    // Not known yet: frames read before libwebsockets answered the handshake (pipelined with the request).
    // RSV1 on a message's first frame passes, and libwebsockets checks it against the negotiation.
    Undecided,
    Negotiated,     // RSV1 may mark a message's first frame as compressed (RFC 7692 6)
    NotNegotiated,  // RSV1 fails the connection on any frame
};

class ClientFrameScanner {
public:
    static constexpr size_t kAllMasked = SIZE_MAX;  // no fault so far

    explicit ClientFrameScanner(DeflateNegotiation deflate = DeflateNegotiation::Undecided) : deflate_(deflate) {}
    // Once the handshake is answered: applies to the frames scanned from then on.
    void setDeflateNegotiation(DeflateNegotiation deflate) { deflate_ = deflate; }
    // The limits checked from here on (nullptr: RFC 6455's rules only). Not owned: the network thread's,
    // which a routes.json reload updates in place.
    void setLimits(const ClientFrameLimits *limits) { limits_ = limits; }

    // The next `len` bytes from the client, in order. Returns kAllMasked while every frame header so far is
    // well-formed; else the offset in `data` where the first faulty frame's header begins (0 when that header
    // began in an earlier piece), and from then on the scanner has failed and ignores further input.
    size_t scan(const uint8_t *data, size_t len) { return scanPiece<false>(const_cast<uint8_t *>(data), len); }
    // The same, and the frames' payloads unmasked in place, their keys zeroed (above); what scan() returns.
    size_t scanUnmasking(uint8_t *data, size_t len) { return scanPiece<true>(data, len); }
    bool failed() const { return fault_ != ClientFrameFault::None; }
    ClientFrameFault fault() const { return fault_; }
    // Messages whose last frame (a data frame with FIN set) was wholly seen, before the faulty frame once
    // failed(): what libwebsockets will deliver of them. Counts modulo 2^32.
    uint32_t messagesEnded() const { return messagesEnded_; }
    // Between frames (no header or payload partly seen): for tests.
    bool atFrameBoundary() const { return headerRead_ == 0 && payloadLeft_ == 0; }

private:
    uint64_t payloadLeft_ = 0;  // in a header: the extended length read so far; after it: payload bytes to skip
    uint8_t headerRead_ = 0;    // bytes of the current frame's header seen (0: none, or skipping its payload)
    uint8_t headerLength_ = 0;  // the current header's full length, known from its second byte
    uint8_t firstByte_ = 0;     // the current header's FIN, RSV and opcode
    bool endsMessage_ = false;  // the current frame is a data frame with FIN set
    bool inMessage_ = false;    // a fragmented message is open: its next data frame must be a continuation
    DeflateNegotiation deflate_;
    ClientFrameFault fault_ = ClientFrameFault::None;
    uint32_t messagesEnded_ = 0;
    const ClientFrameLimits *limits_ = nullptr;
    uint64_t messageWireBytes_ = 0;  // the open message's frames so far, fragments at their floor
    bool messageCompressed_ = false;  // its first frame had RSV1
    uint32_t controlMilliTokens_ = 0;  // the control frame budget, in thousandths of a frame
    int64_t controlRefilledAtMs_ = 0;
    bool controlBudgetStarted_ = false;  // at the first control frame, full
    bool unmasking_ = false;  // the current frame's key was taken out of a piece: its payload is unmasked here
    uint8_t maskPhase_ = 0;   // which key byte the payload's next byte is masked with
    uint8_t maskKey_[4] = {};

    template <bool Unmask>
    size_t scanPiece(uint8_t *data, size_t len);
    // Keeps the key at `key` and zeroes it there: the payload that follows is unmasked as it is scanned.
    void takeMaskKey(uint8_t *key);

    // The fault of a frame whose first two header bytes are `first` and `second`, given the frames before it.
    ClientFrameFault faultOf(uint8_t first, uint8_t second) const;
    // The limits' verdict on the current frame once its payload length (payloadLeft_) is known.
    ClientFrameFault limitFault();
    ClientFrameFault controlFrameFault();
    // Records `fault` for the frame whose header byte headerRead_ is data[at]; returns where that header
    // began in `data` (0 when it began in an earlier piece), as scan() does.
    size_t fail(ClientFrameFault fault, size_t at);
};

}  // namespace wsgw
