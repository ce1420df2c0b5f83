// Tests gateway/net/frame_writer without a socket: what one sendmsg() of a gathered batch carries (its
// iovecs) and what is handed to libwebsockets after a partial write (appendUnsent), read back by a
// WebSocket frame decoder written here from RFC 6455 section 5.2, independent of the gateway's framing:
// header sizes at the 125/126 and 65535/65536 boundaries, the text and binary opcodes, FIN set and no
// mask on every server frame, and every split point of a batch giving exactly the bytes not yet sent.
#include "frame_writer.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using namespace wsgw;

namespace {

struct DecodedFrame {
    bool fin = false;
    int opcode = -1;
    bool masked = false;
    size_t headerBytes = 0;
    std::string payload;
};

// RFC 6455 5.2: byte 0 = FIN, RSV1-3, opcode; byte 1 = MASK, 7-bit length (126: 16-bit length follows,
// 127: 64-bit length follows, network byte order); then the masking key if MASK, then the payload.
std::vector<DecodedFrame> decode(const std::string &wire) {
    std::vector<DecodedFrame> frames;
    size_t at = 0;
    while (at < wire.size()) {
        REQUIRE(wire.size() - at >= 2);
        auto byte = [&](size_t i) { return static_cast<unsigned char>(wire[at + i]); };
        DecodedFrame f;
        f.fin = (byte(0) & 0x80) != 0;
        CHECK((byte(0) & 0x70) == 0);  // no RSV bits: nothing negotiated sets them on these frames
        f.opcode = byte(0) & 0x0f;
        f.masked = (byte(1) & 0x80) != 0;
        uint64_t len = byte(1) & 0x7f;
        size_t h = 2;
        if (len == 126) {
            REQUIRE(wire.size() - at >= 4);
            len = (uint64_t(byte(2)) << 8) | byte(3);
            h = 4;
        } else if (len == 127) {
            REQUIRE(wire.size() - at >= 10);
            len = 0;
            for (int i = 0; i < 8; ++i) len = (len << 8) | byte(2 + i);
            h = 10;
        }
        if (f.masked) h += 4;
        f.headerBytes = h;
        REQUIRE(wire.size() - at - h >= len);
        f.payload = wire.substr(at + h, static_cast<size_t>(len));
        at += h + static_cast<size_t>(len);
        frames.push_back(std::move(f));
    }
    return frames;
}

// What the kernel would receive from one sendmsg() of the batch.
std::string sendmsgBytes(const SendBatch &batch, const std::string &staging) {
    iovec iov[SendBatch::kMaxPieces];
    FrameWriter::toIovecs(batch, staging, iov);
    std::string wire;
    for (int i = 0; i < batch.count; ++i) wire.append(static_cast<const char *>(iov[i].iov_base), iov[i].iov_len);
    return wire;
}

std::string patterned(size_t len, char seed) {
    std::string s(len, '\0');
    for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>(seed + i * 7);
    return s;
}

}  // namespace

TEST_SUITE("frame_writer") {
    TEST_CASE("header sizes at the length boundaries: 2 bytes to 125, 4 from 126 to a frame's 32 KiB") {
        struct Case {
            size_t len;
            size_t header;
        } cases[] = {{0, 2}, {1, 2}, {125, 2}, {126, 4}, {127, 4}, {32768, 4}};  // larger messages: several frames
        for (const Case &c : cases) {
            CAPTURE(c.len);
            SendQueue queue;
            queue.push(OutFrame{Payload(patterned(c.len, 'a')), false});
            FrameWriter writer;
            SendBatch batch;
            CHECK(writer.gather(queue, batch) == 1);
            std::string wire = sendmsgBytes(batch, writer.staging());
            CHECK(wire.size() == batch.total);
            auto frames = decode(wire);
            REQUIRE(frames.size() == 1);
            CHECK(frames[0].headerBytes == c.header);
            CHECK(frames[0].payload == patterned(c.len, 'a'));
        }
    }

    TEST_CASE("every server frame is final and unmasked, text as opcode 1 and binary as opcode 2, in queue order") {
        SendQueue queue;
        auto shared = std::make_shared<const std::string>(patterned(5000, 's'));  // a fan-out payload, left in place
        queue.push(OutFrame{Payload(std::string("hello")), false});
        queue.push(OutFrame{Payload(std::string("\x00\xff", 2)), true});
        queue.push(OutFrame{Payload(shared), false});
        queue.push(OutFrame{Payload(std::string()), true});
        FrameWriter writer;
        SendBatch batch;
        CHECK(writer.gather(queue, batch) == 4);
        auto frames = decode(sendmsgBytes(batch, writer.staging()));
        REQUIRE(frames.size() == 4);
        int opcodes[] = {1, 2, 1, 2};
        std::string payloads[] = {"hello", std::string("\x00\xff", 2), *shared, ""};
        for (size_t i = 0; i < 4; ++i) {
            CAPTURE(i);
            CHECK(frames[i].fin);
            CHECK_FALSE(frames[i].masked);
            CHECK(frames[i].opcode == opcodes[i]);
            CHECK(frames[i].payload == payloads[i]);
        }
    }

    TEST_CASE("after a partial write, libwebsockets gets exactly the rest of the frame the kernel stopped in") {
        SendQueue queue;
        queue.push(OutFrame{Payload(patterned(10, 'x')), false});       // copied into staging
        queue.push(OutFrame{Payload(patterned(3000, 'y')), true});      // large: in place
        queue.push(OutFrame{Payload(patterned(126, 'z')), false});      // 4-byte header
        queue.push(OutFrame{Payload(patterned(70000, 'w')), false});    // three frames
        FrameWriter writer;
        SendBatch batch;
        REQUIRE(writer.gather(queue, batch) == 6);
        std::string whole = sendmsgBytes(batch, writer.staging());
        REQUIRE(whole.size() == batch.total);
        for (size_t sent = 0; sent <= whole.size(); ++sent) {
            FrameWriter::Split split = FrameWriter::splitAt(batch, sent);
            // The frames counted as sent end at split.end, which is the end of the frame `sent` falls in.
            size_t frameEnd = split.framesSent > 0 ? batch.frameEnds[split.framesSent - 1].wireEnd : 0;
            bool atBoundary = sent == 0 || sent == whole.size();
            for (int f = 0; f < batch.frames; ++f) atBoundary |= batch.frameEnds[f].wireEnd == sent;
            std::string unsent = "PRE";  // appended after what the buffer already holds (LWS_PRE in send())
            FrameWriter::appendUnsent(batch, writer.staging(), sent, split.end, unsent);
            if (frameEnd != split.end || (atBoundary ? split.end != sent : split.end <= sent) ||
                unsent != "PRE" + whole.substr(sent, split.end - sent) || split.end - sent > SendQueue::kMaxFrameBytes + 10) {
                FAIL("split at byte " << sent << " of " << whole.size() << " gave the wrong frame or tail");
            }
        }
    }

    TEST_CASE("a batch of many small frames stops at 64 pieces or 64 KiB and the rest follows in the next") {
        SendQueue queue;
        for (int i = 0; i < 200; ++i) queue.push(OutFrame{Payload(std::to_string(i)), false});
        FrameWriter writer;
        std::vector<std::string> seen;
        while (!queue.empty()) {
            SendBatch batch;
            size_t n = writer.gather(queue, batch);
            REQUIRE(n > 0);
            CHECK(batch.count <= SendBatch::kMaxPieces);
            for (auto &f : decode(sendmsgBytes(batch, writer.staging()))) seen.push_back(f.payload);
            queue.commit(batch, static_cast<int>(n), [](std::string &&) {});
        }
        REQUIRE(seen.size() == 200);
        for (int i = 0; i < 200; ++i) CHECK(seen[static_cast<size_t>(i)] == std::to_string(i));
    }
}
