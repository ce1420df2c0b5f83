// A connection's frames on their way to its client, and how several of them become one send. SPEC section
// 10 bounds what it may hold (limits.maxSendQueueBytes; the reservation is LiveConnection::reserveSend, made
// by whoever queues, on any thread); this is the network thread's side: the frames themselves, their byte
// count, and their framing. A server frame is an unmasked 2..10-byte header and the payload: headers and
// small payloads are gathered into one staging buffer, larger payloads stay where they lie and go out by
// sendmsg() as separate pieces. A payload is either the frame's own buffer or one shared by every recipient
// of a group send or broadcast (held once, not once per recipient). Pure: no sockets, no libwebsockets.
#pragma once

#include "fifo_queue.h"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace wsgw {

// What a queued frame holds besides its payload: its OutFrame in the queue (or the Command that carries it to
// the network thread). A frame's reservation against maxSendQueueBytes is its payload plus this, so that a
// flood of empty or one-byte frames (an echo of empty messages to a client that never reads) meets the bound
// too: counting payload bytes alone let empty frames pile up without limit (500 MB in 20 s).
constexpr size_t kQueuedFrameOverheadBytes = 64;
constexpr size_t queuedFrameCost(size_t payloadBytes) { return payloadBytes + kQueuedFrameOverheadBytes; }

struct Payload {
    std::string owned;
    std::shared_ptr<const std::string> shared;  // set: a fan-out payload; `owned` is empty

    Payload() = default;
    explicit Payload(std::string bytes) : owned(std::move(bytes)) {}
    explicit Payload(std::shared_ptr<const std::string> bytes) : shared(std::move(bytes)) {}
    std::string_view view() const { return shared ? std::string_view(*shared) : std::string_view(owned); }
    size_t size() const { return shared ? shared->size() : owned.size(); }
};

struct OutFrame {
    Payload payload;
    bool binary = false;
};

// What one send of queued frames consists of: pieces of the caller's staging buffer (frame headers and the
// small payloads copied next to them) and larger payloads left in place.
struct SendBatch {
    static constexpr int kMaxPieces = 64;
    struct Piece {
        const char *data;  // a payload in place, or nullptr for staging[offset, offset + len)
        size_t offset;
        size_t len;
    };
    Piece pieces[kMaxPieces];
    int count = 0;
    size_t total = 0;  // bytes of every piece
};

class SendQueue {
public:
    static constexpr size_t kCoalesceBytes = 64 * 1024;  // at most this much per send (one frame may be more)
    static constexpr size_t kGatherCopyBytes = 2048;     // payloads up to this size are copied next to their header
    static constexpr size_t kStagingBytes = kCoalesceBytes + 16;  // what gather() may put in the staging buffer

    bool empty() const { return frames_.empty(); }
    size_t frames() const { return frames_.size(); }
    size_t bytes() const { return bytes_; }  // payload bytes queued
    // What the queued frames are charged against maxSendQueueBytes (payloads and per-frame overhead).
    size_t chargedBytes() const { return bytes_ + frames_.size() * kQueuedFrameOverheadBytes; }
    void push(OutFrame &&frame) {
        bytes_ += frame.payload.size();
        frames_.push_back(std::move(frame));
    }
    // Frames the head of the queue: fills `staging` and `batch`, returns how many frames it covers (at least
    // one when the queue is not empty).
    size_t gather(std::string &staging, SendBatch &batch);
    // The first `count` frames were sent: they leave the queue. Their owned buffers are handed to `reuse`
    // (a std::string&&), so that a sent reply can become a later message's receive buffer. Returns the
    // payload bytes removed.
    template <class Reuse> size_t popSent(size_t count, Reuse &&reuse) {
        size_t removed = 0;
        for (size_t i = 0; i < count && !frames_.empty(); ++i) {
            OutFrame &f = frames_.front();
            removed += f.payload.size();
            if (!f.payload.shared) reuse(std::move(f.payload.owned));
            frames_.pop_front();
        }
        bytes_ -= removed;
        return removed;
    }
    size_t clear() {  // returns the payload bytes dropped
        size_t dropped = bytes_;
        frames_.clear();
        bytes_ = 0;
        return dropped;
    }
    // The header of an unmasked final frame of `len` bytes into `out` (room for 10); returns its length.
    static size_t frameHeader(unsigned char *out, size_t len, bool binary);

private:
    FifoQueue<OutFrame> frames_;
    size_t bytes_ = 0;
};

}  // namespace wsgw
