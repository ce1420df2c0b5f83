// SendQueue's framing (what a client's parser reads back from one gathered send) and SPEC section 10's
// per-connection accounting in LiveConnection: the send-queue reservation and the pending-message bounds.
#include "connection_registry.h"
#include "send_queue.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace wsgw;

namespace {

// The bytes of a batch, as they would go on the wire.
std::string wireBytes(const std::string &staging, const SendBatch &batch) {
    std::string out;
    for (int i = 0; i < batch.count; ++i) {
        const SendBatch::Piece &p = batch.pieces[i];
        out.append(p.data ? p.data : staging.data() + p.offset, p.len);
    }
    return out;
}

struct Parsed {
    int opcode;
    std::string payload;
};

// A client's reading of server frames: FIN set, no mask, 7/16/64-bit lengths.
std::vector<Parsed> parseFrames(const std::string &wire) {
    std::vector<Parsed> frames;
    size_t i = 0;
    while (i < wire.size()) {
        auto b0 = static_cast<unsigned char>(wire[i]), b1 = static_cast<unsigned char>(wire[i + 1]);
        REQUIRE((b0 & 0x80) != 0);
        REQUIRE((b1 & 0x80) == 0);
        uint64_t len = b1 & 0x7f;
        i += 2;
        if (len == 126) {
            len = (uint64_t(static_cast<unsigned char>(wire[i])) << 8) | static_cast<unsigned char>(wire[i + 1]);
            i += 2;
        } else if (len == 127) {
            len = 0;
            for (int k = 0; k < 8; ++k) len = (len << 8) | static_cast<unsigned char>(wire[i + k]);
            i += 8;
        }
        frames.push_back({b0 & 0x0f, wire.substr(i, len)});
        i += len;
    }
    return frames;
}

}  // namespace

TEST_SUITE("send_queue") {
    TEST_CASE("frame headers use the shortest length form") {
        unsigned char h[10];
        CHECK(SendQueue::frameHeader(h, 0, false) == 2);
        CHECK(h[0] == 0x81);
        CHECK(h[1] == 0);
        CHECK(SendQueue::frameHeader(h, 125, true) == 2);
        CHECK(h[0] == 0x82);
        CHECK(SendQueue::frameHeader(h, 126, false) == 4);
        CHECK(h[1] == 126);
        CHECK(h[2] == 0);
        CHECK(h[3] == 126);
        CHECK(SendQueue::frameHeader(h, 65535, false) == 4);
        CHECK(SendQueue::frameHeader(h, 65536, false) == 10);
        CHECK(h[1] == 127);
        CHECK(h[7] == 1);
        CHECK(h[8] == 0);
    }

    TEST_CASE("a gathered batch reads back as the queued frames, small ones copied and large ones in place") {
        SendQueue q;
        auto shared = std::make_shared<const std::string>(std::string(5000, 's'));
        q.push({Payload(std::string("hello")), false});
        q.push({Payload(shared), true});
        q.push({Payload(std::string()), false});  // an empty message is a frame too
        q.push({Payload(std::string(300, 'm')), false});
        CHECK(q.frames() == 4);
        CHECK(q.bytes() == 5 + 5000 + 0 + 300);
        std::string staging;
        SendBatch batch;
        REQUIRE(q.gather(staging, batch) == 4);
        bool sharedInPlace = false;
        for (int i = 0; i < batch.count; ++i) sharedInPlace |= batch.pieces[i].data == shared->data();
        CHECK(sharedInPlace);  // the 5,000-byte payload was not copied
        std::string wire = wireBytes(staging, batch);
        CHECK(wire.size() == batch.total);
        auto frames = parseFrames(wire);
        REQUIRE(frames.size() == 4);
        CHECK(frames[0].opcode == 1);
        CHECK(frames[0].payload == "hello");
        CHECK(frames[1].opcode == 2);
        CHECK(frames[1].payload == *shared);
        CHECK(frames[2].payload.empty());
        CHECK(frames[3].payload == std::string(300, 'm'));
    }

    TEST_CASE("one send takes at most 64 KiB of frames, but always at least one frame") {
        SendQueue q;
        for (int i = 0; i < 10; ++i) q.push({Payload(std::string(20000, char('a' + i))), false});
        std::string staging;
        SendBatch batch;
        size_t frames = q.gather(staging, batch);
        CHECK(frames == 3);
        CHECK(batch.total <= SendQueue::kCoalesceBytes);
        SendQueue big;
        big.push({Payload(std::string(200000, 'b')), true});
        CHECK(big.gather(staging, batch) == 1);
        CHECK(batch.total == 200000 + 10);
    }

    TEST_CASE("sent frames leave with their byte count; owned buffers are offered for reuse, shared ones not") {
        SendQueue q;
        auto shared = std::make_shared<const std::string>("shared");
        q.push({Payload(std::string("owned-1")), false});
        q.push({Payload(shared), false});
        q.push({Payload(std::string("owned-2")), false});
        std::vector<std::string> reused;
        CHECK(q.popSent(2, [&](std::string &&b) { reused.push_back(std::move(b)); }) == 7 + 6);
        CHECK(reused == std::vector<std::string>{"owned-1"});
        CHECK(shared.use_count() == 1);  // the queue let go of its reference
        CHECK(q.bytes() == 7);
        CHECK(q.clear() == 7);
        CHECK(q.empty());
        CHECK(q.bytes() == 0);
    }
}

TEST_SUITE("connection bounds") {
    TEST_CASE("the send queue reservation: queued up to the bound, then overflowed once, then gone") {
        LiveConnection c;
        CHECK(c.reserveSend(600, 1000) == LiveConnection::Reserve::Queued);
        CHECK(c.reserveSend(400, 1000) == LiveConnection::Reserve::Queued);
        CHECK(c.sendQueueBytes.load() == 1000);
        CHECK(c.reserveSend(1, 1000) == LiveConnection::Reserve::Overflowed);  // the sender that crossed it closes
        CHECK(c.sendQueueBytes.load() == 1000);                               // the refused frame is not counted
        CHECK(c.isSlowConsumer());
        c.releaseSend(1000);
        CHECK(c.reserveSend(1, 1000) == LiveConnection::Reserve::Gone);  // closing: nothing more is accepted
    }

    TEST_CASE("one frame larger than the bound is accepted into an empty queue") {
        LiveConnection c;
        CHECK(c.reserveSend(5000, 1000) == LiveConnection::Reserve::Queued);
        CHECK(c.reserveSend(1, 1000) == LiveConnection::Reserve::Overflowed);
    }

    TEST_CASE("frames sent give their room back") {
        LiveConnection c;
        for (int i = 0; i < 100; ++i) {
            REQUIRE(c.reserveSend(900, 1000) == LiveConnection::Reserve::Queued);
            c.releaseSend(900);
        }
        CHECK(c.sendQueueBytes.load() == 0);
    }

    TEST_CASE("pending messages: at a bound, and one resume owed once the lane is below half") {
        LiveConnection c;
        for (int i = 0; i < 4; ++i) c.addPending(10);
        CHECK(c.pendingAtBound(4, 1000));  // four messages, bound 4
        CHECK_FALSE(c.pendingAtBound(5, 1000));
        c.addPending(1000);
        CHECK(c.pendingAtBound(100, 1000));  // bytes
        c.readPaused.store(true);
        CHECK_FALSE(c.donePending(1000, 4, 1000));  // 4 messages left: not below half of 4
        CHECK_FALSE(c.donePending(10, 4, 1000));    // 3 left
        CHECK(c.donePending(10, 4, 1000));          // 2 left = half: resume
        CHECK_FALSE(c.readPaused.load());
        CHECK_FALSE(c.donePending(10, 4, 1000));  // already resumed: nobody asks twice
        CHECK_FALSE(c.donePending(10, 4, 1000));
        CHECK(c.pendingMessages.load() == 0);
        CHECK(c.pendingBytes.load() == 0);
    }

    TEST_CASE("a lane that was never paused owes no resume") {
        LiveConnection c;
        c.addPending(10);
        CHECK_FALSE(c.donePending(10, 4, 1000));
    }
}
