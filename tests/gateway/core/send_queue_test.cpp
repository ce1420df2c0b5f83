// SendQueue's framing (what a client's parser reads back from one gathered send) and the
// per-connection accounting of docs/limits.md in LiveConnection: the send-queue reservation and the
// pending-message bounds.
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

    TEST_CASE("one send takes at most kBatchBytes and a staging buffer of frames, but always at least one frame") {
        SendQueue q;
        for (int i = 0; i < 20; ++i) q.push({Payload(std::string(20000, char('a' + i))), false});
        std::string staging;
        SendBatch batch;
        CHECK(q.gather(staging, batch) == 13);  // 13 x 20,004 bytes fit in 256 KiB
        CHECK(batch.total <= SendQueue::kBatchBytes);
        SendQueue small;
        for (int i = 0; i < 100; ++i) small.push({Payload(std::string(2000, 'x')), false});
        CHECK(small.gather(staging, batch) == 32);  // copied payloads: the 64 KiB staging buffer is the limit
        CHECK(staging.size() <= SendQueue::kStagingBytes);
    }

    TEST_CASE("a message over 32 KiB goes out as frames of 32 KiB: its opcode first, continuations, FIN on the last") {
        auto shared = std::make_shared<const std::string>(std::string(100000, 'b'));
        for (size_t i = 0; i < shared->size(); ++i) const_cast<char &>((*shared)[i]) = static_cast<char>('a' + i % 26);
        SendQueue q;
        q.push({Payload(shared), true});
        q.push({Payload(std::string("after")), false});
        std::string staging;
        SendBatch batch;
        REQUIRE(q.gather(staging, batch) == 5);  // 32,768 + 32,768 + 32,768 + 1,696, then "after"
        std::string wire = wireBytes(staging, batch);
        size_t at = 0;
        std::string message;
        int expectOpcode[] = {2, 0, 0, 0, 1};
        for (int f = 0; f < 5; ++f) {
            CAPTURE(f);
            auto b0 = static_cast<unsigned char>(wire[at]), b1 = static_cast<unsigned char>(wire[at + 1]);
            CHECK((b0 & 0x0f) == expectOpcode[f]);
            CHECK(((b0 & 0x80) != 0) == (f >= 3));  // FIN on the message's last frame and on "after"
            size_t len = b1 & 0x7f, h = 2;
            if (len == 126) {
                len = (size_t(static_cast<unsigned char>(wire[at + 2])) << 8) | static_cast<unsigned char>(wire[at + 3]);
                h = 4;
            }
            CHECK(len <= SendQueue::kMaxFrameBytes);
            if (f < 4) message += wire.substr(at + h, len);
            else CHECK(wire.substr(at + h, len) == "after");
            at += h + len;
            CHECK(batch.frameEnds[f].wireEnd == at);
        }
        CHECK(at == wire.size());
        CHECK(message == *shared);  // in place: the shared payload was not copied
        for (int i = 0; i < batch.count; ++i)
            if (batch.pieces[i].data) CHECK((batch.pieces[i].data >= shared->data() && batch.pieces[i].data < shared->data() + shared->size()));
    }

    TEST_CASE("a message sent in part keeps its place and goes on from where it stopped") {
        SendQueue q;
        std::string big(80000, 'z');
        for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('0' + i % 10);
        q.push({Payload(big), false});
        q.push({Payload(std::string("next")), false});
        std::string staging, received;
        SendBatch batch;
        REQUIRE(q.gather(staging, batch) == 4);
        // The first two frames were sent: the message stays, charged whole, and the next gather continues it.
        SendQueue::Sent sent = q.commit(batch, 2, [](std::string &&) {});
        CHECK(sent.messages == 0);
        CHECK(q.frames() == 2);
        CHECK(q.headOffset() == 65536);
        CHECK(q.bytes() == 80000 + 4);
        REQUIRE(q.gather(staging, batch) == 2);
        std::string wire = wireBytes(staging, batch);
        CHECK(static_cast<unsigned char>(wire[0]) == 0x80);  // FIN, continuation
        CHECK(wire.substr(4, 80000 - 65536) == big.substr(65536));
        std::vector<std::string> reused;
        sent = q.commit(batch, 2, [&](std::string &&b) { reused.push_back(std::move(b)); });
        CHECK(sent.messages == 2);
        CHECK(sent.payloadBytes == 80000 + 4);
        CHECK(reused.size() == 2);
        CHECK(q.empty());
        CHECK(q.headOffset() == 0);
        CHECK(q.bytes() == 0);
    }

    TEST_CASE("sent messages leave with their byte count; owned buffers are offered for reuse, shared ones not") {
        SendQueue q;
        auto shared = std::make_shared<const std::string>("shared");
        q.push({Payload(std::string("owned-1")), false});
        q.push({Payload(shared), false});
        q.push({Payload(std::string("owned-2")), false});
        std::string staging;
        SendBatch batch;
        REQUIRE(q.gather(staging, batch) == 3);
        std::vector<std::string> reused;
        SendQueue::Sent sent = q.commit(batch, 2, [&](std::string &&b) { reused.push_back(std::move(b)); });
        CHECK(sent.messages == 2);
        CHECK(sent.payloadBytes == 7 + 6);
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
