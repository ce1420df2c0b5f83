// A connection's frames on their way to its client, and how several of them become one send.
// limits.maxSendQueueBytes bounds what it may hold (the reservation is LiveConnection::reserveSend, made
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

// What one send of queued messages consists of: pieces of the caller's staging buffer (frame headers and the
// small payloads copied next to them) and larger payloads left in place; and, for each frame, where it ends
// on the wire and where the queue stands once it has been sent, so that a send the kernel takes only part
// of is committed frame by frame.
struct SendBatch {
    static constexpr int kMaxPieces = 64;
    static constexpr int kMaxFrames = 256;
    struct Piece {
        const char *data;  // a payload in place, or nullptr for staging[offset, offset + len)
        size_t offset;
        size_t len;
    };
    struct FrameEnd {
        size_t wireEnd;        // bytes of the batch up to the end of this frame
        size_t messagesDone;   // messages of the queue complete once this frame is sent
        size_t headOffset;     // payload bytes of the next message already framed (0: none)
    };
    Piece pieces[kMaxPieces];
    FrameEnd frameEnds[kMaxFrames];
    int count = 0;   // pieces
    int frames = 0;  // frames
    size_t total = 0;  // bytes of every piece
};

class SendQueue {
public:
    static constexpr size_t kBatchBytes = 256 * 1024;   // at most this much per send (its first frame always goes)
    static constexpr size_t kGatherCopyBytes = 2048;     // payloads up to this size are copied next to their header
    static constexpr size_t kStagingBytes = 64 * 1024;   // what gather() may put in the staging buffer
    // A message larger than this goes out as several frames of at most this size, as AWS API Gateway
    // splits messages into 32 KB frames. A send the kernel takes only part of hands the rest of its current
    // frame to libwebsockets (a copy: nothing may come between a frame's bytes, its pings' pongs neither), so
    // this bounds what a slow recipient holds of its own beside the queue: one frame, whatever the message's
    // size (a fan-out payload shared by a thousand recipients stays one copy).
    static constexpr size_t kMaxFrameBytes = 32 * 1024;

    bool empty() const { return frames_.empty(); }
    size_t frames() const { return frames_.size(); }
    size_t bytes() const { return bytes_; }  // payload bytes queued
    // What the queued frames are charged against maxSendQueueBytes (payloads and per-frame overhead).
    size_t chargedBytes() const { return bytes_ + frames_.size() * kQueuedFrameOverheadBytes; }
    void push(OutFrame &&frame) {
        bytes_ += frame.payload.size();
        frames_.push_back(std::move(frame));
    }
    // Frames the head of the queue: fills `staging` and `batch`, returns how many frames it made (at least
    // one when the queue is not empty). The queue is unchanged until commit().
    size_t gather(std::string &staging, SendBatch &batch) const;
    // The first `framesSent` frames of `batch` (from the gather() just before) were sent: the messages they
    // complete leave the queue, and a message sent in part keeps its place with its progress. Owned buffers
    // of the messages that left are handed to `reuse` (a std::string&&), so that a sent reply can become a
    // later message's receive buffer.
    struct Sent {
        size_t messages = 0;
        size_t payloadBytes = 0;
    };
    template <class Reuse> Sent commit(const SendBatch &batch, int framesSent, Reuse &&reuse) {
        Sent sent;
        if (framesSent <= 0) return sent;
        const SendBatch::FrameEnd &end = batch.frameEnds[framesSent - 1];
        for (; sent.messages < end.messagesDone && !frames_.empty(); ++sent.messages) {
            OutFrame &f = frames_.front();
            sent.payloadBytes += f.payload.size();
            if (!f.payload.shared) reuse(std::move(f.payload.owned));
            frames_.pop_front();
        }
        headOffset_ = end.headOffset;
        bytes_ -= sent.payloadBytes;
        return sent;
    }
    size_t clear() {  // returns the payload bytes dropped
        size_t dropped = bytes_;
        frames_.clear();
        bytes_ = 0;
        headOffset_ = 0;
        return dropped;
    }
    // Payload bytes of the first message already sent (it went out in several frames and is not done).
    size_t headOffset() const { return headOffset_; }
    // The header of an unmasked frame of `len` bytes into `out` (room for 10); returns its length. The first
    // frame of a message carries its opcode (text or binary), the others are continuations; the last has FIN.
    static size_t frameHeader(unsigned char *out, size_t len, bool binary, bool first = true, bool last = true);

private:
    FifoQueue<OutFrame> frames_;
    size_t bytes_ = 0;
    size_t headOffset_ = 0;
};

}  // namespace wsgw
