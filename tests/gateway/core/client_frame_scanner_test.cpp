// ClientFrameScanner: masked frames of every length encoding pass whatever the reads' boundaries, and the
// first unmasked frame (RFC 6455 5.1), or other frame that fails the connection (5.2, 5.4, 5.5), is reported
// at the offset of its header, also across reads.
#include "client_frame_scanner.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace wsgw;

namespace {

using Bytes = std::vector<uint8_t>;

// A frame as a client would send it (masked), or with the MASK bit clear (then no masking key).
Bytes frame(uint8_t opcode, size_t payloadLength, bool masked = true, bool fin = true) {
    Bytes f;
    f.push_back(static_cast<uint8_t>((fin ? 0x80 : 0) | opcode));
    uint8_t maskBit = masked ? 0x80 : 0;
    if (payloadLength < 126) {
        f.push_back(static_cast<uint8_t>(maskBit | payloadLength));
    } else if (payloadLength < 65536) {
        f.push_back(maskBit | 126);
        f.push_back(static_cast<uint8_t>(payloadLength >> 8));
        f.push_back(static_cast<uint8_t>(payloadLength));
    } else {
        f.push_back(maskBit | 127);
        for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<uint8_t>(static_cast<uint64_t>(payloadLength) >> shift));
    }
    if (masked) f.insert(f.end(), {0x12, 0x34, 0x56, 0x78});
    // Payload bytes that look like headers with the MASK bit clear: only skipping them by length passes.
    f.insert(f.end(), payloadLength, uint8_t{0x01});
    return f;
}

Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes all;
    for (const Bytes &p : parts) all.insert(all.end(), p.begin(), p.end());
    return all;
}

// Feeds `bytes` in two reads split at `cut`; returns the offset reported in the whole stream, or kAllMasked.
size_t scanSplit(const Bytes &bytes, size_t cut, DeflateNegotiation deflate = DeflateNegotiation::Undecided) {
    ClientFrameScanner scanner(deflate);
    size_t first = scanner.scan(bytes.data(), cut);
    if (first != ClientFrameScanner::kAllMasked) return first;
    size_t second = scanner.scan(bytes.data() + cut, bytes.size() - cut);
    if (second == ClientFrameScanner::kAllMasked) return second;
    return cut + second;
}

}  // namespace

TEST_CASE("masked frames of 0, 125, 126, 65535 and 65536+ byte payloads pass, split at every byte") {
    for (size_t length : {size_t{0}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536}, size_t{70000}}) {
        CAPTURE(length);
        Bytes stream = concat({frame(0x1, length), frame(0x2, 3)});
        // Every cut in the headers and around the payload's ends (every cut of a 64 KiB payload adds nothing).
        for (size_t cut = 0; cut <= stream.size(); ++cut) {
            if (cut > 20 && cut + 20 < stream.size() && cut % 997 != 0) continue;
            CAPTURE(cut);
            ClientFrameScanner scanner;
            CHECK(scanner.scan(stream.data(), cut) == ClientFrameScanner::kAllMasked);
            CHECK(scanner.scan(stream.data() + cut, stream.size() - cut) == ClientFrameScanner::kAllMasked);
            CHECK(scanner.atFrameBoundary());
            CHECK_FALSE(scanner.failed());
        }
    }
}

TEST_CASE("one byte per read: headers carried across reads, including 16- and 64-bit lengths") {
    Bytes stream = concat({frame(0x1, 126), frame(0x2, 65536), frame(0x9, 0), frame(0x1, 5)});
    ClientFrameScanner scanner;
    for (uint8_t b : stream) REQUIRE(scanner.scan(&b, 1) == ClientFrameScanner::kAllMasked);
    CHECK(scanner.atFrameBoundary());
}

TEST_CASE("an unmasked frame after masked ones is reported at its header's offset, at every split") {
    Bytes before = concat({frame(0x1, 10), frame(0x2, 300), frame(0x9, 4)});
    Bytes stream = concat({before, frame(0x1, 5, false), frame(0x1, 5)});
    ClientFrameScanner whole;
    CHECK(whole.scan(stream.data(), stream.size()) == before.size());
    CHECK(whole.failed());
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        size_t found = scanSplit(stream, cut);
        // Cut between the unmasked header's two bytes: it began in the first read, which was handed on.
        if (cut == before.size() + 1) CHECK(found == cut);
        else CHECK(found == before.size());
    }
}

TEST_CASE("an unmasked frame first, and unmasked control frames (close, ping, pong)") {
    for (uint8_t opcode : {uint8_t{0x1}, uint8_t{0x8}, uint8_t{0x9}, uint8_t{0xA}}) {
        CAPTURE(opcode);
        Bytes f = frame(opcode, 2, false);
        ClientFrameScanner scanner;
        CHECK(scanner.scan(f.data(), f.size()) == 0);
        CHECK(scanner.failed());
    }
    Bytes stream = concat({frame(0x1, 1, true, false), frame(0x9, 0), frame(0x0, 3, false)});  // a ping inside a fragmented message
    ClientFrameScanner scanner;
    CHECK(scanner.scan(stream.data(), stream.size()) == frame(0x1, 1, true, false).size() + frame(0x9, 0).size());
}

TEST_CASE("after a failure further input is ignored") {
    Bytes bad = frame(0x1, 0, false);
    ClientFrameScanner scanner;
    CHECK(scanner.scan(bad.data(), bad.size()) == 0);
    CHECK(scanner.scan(bad.data(), bad.size()) == ClientFrameScanner::kAllMasked);
    CHECK(scanner.failed());
}

TEST_CASE("an unmasked frame with a 64-bit length, and a masked one whose length has the top bit set") {
    Bytes stream = concat({frame(0x2, 70000), frame(0x2, 70000, false)});
    CHECK(scanSplit(stream, 70010) == frame(0x2, 70000).size());
    // RFC 6455 5.2: the most significant bit must be 0. libwebsockets dropped such a frame's connection
    // without a close frame; the scanner fails it at its header, as soon as the length's first byte is read.
    Bytes huge = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    ClientFrameScanner scanner;
    CHECK(scanner.scan(huge.data(), 3) == 0);
    CHECK(scanner.fault() == ClientFrameFault::LengthTopBitSet);
    // The largest length RFC 6455 allows is counted, not failed: its payload is still to come.
    Bytes largest = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 0x81, 0x00};
    ClientFrameScanner counting;
    CHECK(counting.scan(largest.data(), largest.size()) == ClientFrameScanner::kAllMasked);
    CHECK_FALSE(counting.failed());
    CHECK_FALSE(counting.atFrameBoundary());
}

TEST_CASE("messages that ended before the unmasked frame are counted: FIN data frames, not control frames") {
    // A fragmented message (text, continuation with FIN) with a ping inside, a whole binary message, an
    // empty text message, then the unmasked frame and a masked message after it (not counted).
    Bytes before = concat({frame(0x1, 3, true, false), frame(0x9, 1), frame(0x0, 200, true, true), frame(0x2, 70000), frame(0x1, 0)});
    Bytes stream = concat({before, frame(0x1, 4, false), frame(0x1, 4)});
    for (size_t cut : {size_t{1}, size_t{7}, size_t{300}, before.size() - 1, before.size() + 1}) {
        CAPTURE(cut);
        ClientFrameScanner scanner;
        scanner.scan(stream.data(), cut);
        scanner.scan(stream.data() + cut, stream.size() - cut);
        CHECK(scanner.failed());
        CHECK(scanner.messagesEnded() == 3);
    }
    ClientFrameScanner partial;  // the binary message's payload not all there yet: not ended
    partial.scan(before.data(), before.size() - 10);
    CHECK(partial.messagesEnded() == 1);
}

TEST_CASE("frames RFC 6455 says fail the connection are found at their header, with their fault and reason") {
    struct Case {
        const char *what;
        Bytes before, bad;
        ClientFrameFault fault;
        DeflateNegotiation deflate = DeflateNegotiation::Undecided;
        size_t headerBytesToDecide = 2;  // the fault is known once this many bytes of the header are read
    };
    auto withBits = [](Bytes f, uint8_t bits) {
        f[0] |= bits;
        return f;
    };
    constexpr uint8_t kRsv1 = 0x40, kRsv2 = 0x20, kRsv3 = 0x10;
    Bytes rsv2 = withBits(frame(0x1, 3), kRsv2), rsv1Ping = withBits(frame(0x9, 1), kRsv1),
          rsv1Continuation = withBits(frame(0x0, 1), kRsv1), rsv1Text = withBits(frame(0x1, 3), kRsv1);
    // A 64-bit length of 2^63 + 1 (a frame(0x2, 70000) with the length's top bit set; its payload is short).
    Bytes topBitLength = frame(0x2, 70000);
    topBitLength[2] |= 0x80;
    const DeflateNegotiation deflate = DeflateNegotiation::Negotiated, noDeflate = DeflateNegotiation::NotNegotiated;
    const Case cases[] = {
        {"reserved data opcode 0x3", {}, frame(0x3, 2), ClientFrameFault::ReservedOpcode},
        {"reserved control opcode 0xB", frame(0x1, 5), frame(0xB, 0), ClientFrameFault::ReservedOpcode},
        {"RSV2 on a text frame", {}, rsv2, ClientFrameFault::ReservedBits},
        {"RSV1 on a ping", {}, rsv1Ping, ClientFrameFault::ReservedBits},
        {"RSV1 on a continuation", frame(0x1, 2, true, false), rsv1Continuation, ClientFrameFault::ReservedBits},
        {"a ping without FIN", {}, frame(0x9, 1, true, false), ClientFrameFault::FragmentedControl},
        {"a close of 126 bytes", {}, frame(0x8, 126), ClientFrameFault::LongControl},
        {"a continuation with nothing open", frame(0x2, 4), frame(0x0, 4), ClientFrameFault::ContinuationWithoutMessage},
        {"a text frame inside a fragmented message", frame(0x1, 4, true, false), frame(0x1, 4),
         ClientFrameFault::MessageInsideMessage},
        {"an unmasked frame", {}, frame(0x1, 4, false), ClientFrameFault::Unmasked},
        {"a 64-bit length with its top bit set", frame(0x1, 2), topBitLength, ClientFrameFault::LengthTopBitSet,
         DeflateNegotiation::Undecided, 3},
        {"RSV1 on a text frame without permessage-deflate", frame(0x2, 1), rsv1Text, ClientFrameFault::Rsv1WithoutExtension,
         noDeflate},
        {"RSV1 on a ping without permessage-deflate", {}, rsv1Ping, ClientFrameFault::Rsv1WithoutExtension, noDeflate},
        {"RSV1 on a continuation without permessage-deflate", frame(0x1, 2, true, false), rsv1Continuation,
         ClientFrameFault::Rsv1WithoutExtension, noDeflate},
        {"RSV1 on a continuation with permessage-deflate", withBits(frame(0x1, 2, true, false), kRsv1), rsv1Continuation,
         ClientFrameFault::ReservedBits, deflate},
        {"RSV1 on a close with permessage-deflate", {}, withBits(frame(0x8, 2), kRsv1), ClientFrameFault::ReservedBits, deflate},
        {"RSV3 on a text frame with permessage-deflate", {}, withBits(frame(0x1, 2), kRsv3), ClientFrameFault::ReservedBits,
         deflate},
        {"RSV2 without permessage-deflate", {}, rsv2, ClientFrameFault::ReservedBits, noDeflate},
    };
    for (const Case &c : cases) {
        CAPTURE(c.what);
        Bytes stream = concat({c.before, c.bad, frame(0x1, 2)});
        for (size_t cut = 0; cut <= stream.size(); ++cut) {
            CAPTURE(cut);
            // Cut inside the bytes that decide the fault: the header began in the first read, which was handed on.
            bool cutInsideDecidingBytes = cut > c.before.size() && cut < c.before.size() + c.headerBytesToDecide;
            CHECK(scanSplit(stream, cut, c.deflate) == (cutInsideDecidingBytes ? cut : c.before.size()));
        }
        ClientFrameScanner scanner(c.deflate);
        CHECK(scanner.scan(stream.data(), stream.size()) == c.before.size());
        CHECK(scanner.fault() == c.fault);
        std::string reason = clientFrameFaultReason(scanner.fault());
        CHECK(reason.rfind("Protocol error: ", 0) == 0);
        CHECK(reason.size() <= 123);  // what a close frame's reason may hold
    }
}

TEST_CASE("well-formed fragmentation passes: control frames between fragments, RSV1 on a message's first frame") {
    Bytes first = frame(0x1, 3, true, false);
    first[0] |= 0x40;  // permessage-deflate's bit (libwebsockets checks it against the negotiation)
    Bytes stream = concat({first, frame(0x9, 125), frame(0xA, 0), frame(0x0, 2, true, false), frame(0x8, 2, true),
                           frame(0x0, 1), frame(0x2, 0), frame(0x1, 0, true, false), frame(0x0, 0)});
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        CHECK(scanSplit(stream, cut) == ClientFrameScanner::kAllMasked);
    }
    for (DeflateNegotiation deflate : {DeflateNegotiation::Undecided, DeflateNegotiation::Negotiated}) {
        ClientFrameScanner scanner(deflate);
        CHECK(scanner.scan(stream.data(), stream.size()) == ClientFrameScanner::kAllMasked);
        CHECK(scanner.fault() == ClientFrameFault::None);
        CHECK(scanner.messagesEnded() == 3);
    }
}

TEST_CASE("the negotiation applies from when it is known: RSV1 passed before, fails after none was negotiated") {
    Bytes compressed = frame(0x1, 3);
    compressed[0] |= 0x40;
    Bytes stream = concat({compressed, compressed});
    ClientFrameScanner scanner;  // frames pipelined with the request: libwebsockets checks them
    CHECK(scanner.scan(stream.data(), compressed.size()) == ClientFrameScanner::kAllMasked);
    scanner.setDeflateNegotiation(DeflateNegotiation::NotNegotiated);
    CHECK(scanner.scan(stream.data() + compressed.size(), compressed.size()) == 0);
    CHECK(scanner.fault() == ClientFrameFault::Rsv1WithoutExtension);
    CHECK(scanner.messagesEnded() == 1);
    CHECK(std::string(clientFrameFaultReason(scanner.fault())).find("RSV1 set but no extension was negotiated") !=
          std::string::npos);
}

// ---- the gateway's limits ---------------------------------------------------------------------------------

namespace {

int64_t g_nowMs = 0;
int64_t testClock() { return g_nowMs; }

ClientFrameLimits testLimits(uint64_t maxFrame = 32768, uint64_t maxMessage = 131072) {
    ClientFrameLimits l;
    l.maxFrameBytes = maxFrame;
    l.maxMessageBytes = maxMessage;
    l.controlFrameBurst = ClientFrameLimits::kControlFrameBurst;
    l.controlFramesPerSecond = ClientFrameLimits::kControlFramesPerSecond;
    l.nowMs = testClock;
    return l;
}

// A frame's header alone (masked, 64-bit length), as a client that announces more than it sends.
Bytes headerOnly(uint8_t opcode, uint64_t length) {
    Bytes f{static_cast<uint8_t>(0x80 | opcode), 0x80 | 127};
    for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<uint8_t>(length >> shift));
    f.insert(f.end(), {1, 2, 3, 4});
    return f;
}

}  // namespace

TEST_CASE("a data frame announced over maxFrameBytes fails at its header, before any of its payload") {
    ClientFrameLimits limits = testLimits();
    Bytes ok = frame(0x1, 32768);
    for (uint64_t length : {uint64_t{32769}, uint64_t{1} << 40, (uint64_t{1} << 63) - 1}) {
        CAPTURE(length);
        Bytes stream = concat({ok, headerOnly(0x2, length)});
        ClientFrameScanner whole;
        whole.setLimits(&limits);
        CHECK(whole.scan(stream.data(), stream.size()) == ok.size());
        CHECK(whole.fault() == ClientFrameFault::FrameTooBig);
        CHECK(clientFrameFaultCloseCode(whole.fault()) == 1009);
        CHECK(std::string(clientFrameFaultReason(whole.fault())) == "Message too big");
        CHECK(whole.messagesEnded() == 1);
        // Read a byte at a time, it fails on the header's last length byte: the masking key is not waited for.
        ClientFrameScanner bytewise;
        bytewise.setLimits(&limits);
        size_t failedOn = ClientFrameScanner::kAllMasked;
        for (size_t i = 0; i < stream.size() && failedOn == ClientFrameScanner::kAllMasked; ++i)
            if (bytewise.scan(&stream[i], 1) != ClientFrameScanner::kAllMasked) failedOn = i;
        CHECK(failedOn == ok.size() + 9);
    }
    SUBCASE("16-bit lengths and a 7-bit one over a small limit") {
        ClientFrameLimits small = testLimits(100, 1000);
        ClientFrameScanner s16;
        s16.setLimits(&small);
        Bytes f16 = frame(0x2, 200);
        CHECK(s16.scan(f16.data(), f16.size()) == 0);
        CHECK(s16.fault() == ClientFrameFault::FrameTooBig);
        ClientFrameLimits tiny = testLimits(10, 1000);
        ClientFrameScanner s7;
        s7.setLimits(&tiny);
        Bytes f7 = concat({frame(0x1, 10), frame(0x1, 11)});
        CHECK(s7.scan(f7.data(), f7.size()) == 16);
    }
    SUBCASE("without limits the same frame passes (only RFC 6455's rules)") {
        ClientFrameScanner scanner;
        Bytes stream = headerOnly(0x2, uint64_t{1} << 40);
        CHECK(scanner.scan(stream.data(), stream.size()) == ClientFrameScanner::kAllMasked);
    }
}

TEST_CASE("a message's frames count towards maxMessageBytes; fragments before the last count at least 64") {
    ClientFrameLimits limits = testLimits(32768, 131072);
    SUBCASE("four full frames are the limit; a fifth byte is over") {
        Bytes stream = concat({frame(0x1, 32768, true, false), frame(0x0, 32768, true, false), frame(0x0, 32768, true, false),
                               frame(0x0, 32768)});
        ClientFrameScanner scanner;
        scanner.setLimits(&limits);
        CHECK(scanner.scan(stream.data(), stream.size()) == ClientFrameScanner::kAllMasked);
        CHECK(scanner.messagesEnded() == 1);
        Bytes over = concat({frame(0x1, 32768, true, false), frame(0x0, 32768, true, false), frame(0x0, 32768, true, false),
                             frame(0x0, 32768, true, false), frame(0x0, 1)});
        ClientFrameScanner overScanner;
        overScanner.setLimits(&limits);
        CHECK(overScanner.scan(over.data(), over.size()) == 4 * (32768 + 8));
        CHECK(overScanner.fault() == ClientFrameFault::MessageTooBig);
        CHECK(clientFrameFaultCloseCode(overScanner.fault()) == 1009);
    }
    SUBCASE("2,048 empty fragments are the limit, the 2,049th is over; the last frame counts what it holds") {
        Bytes within = frame(0x1, 0, true, false);
        for (int i = 1; i < 2048; ++i) within = concat({within, frame(0x0, 0, true, false)});
        Bytes ended = concat({within, frame(0x0, 0)});  // 2,048 fragments at 64 and a last one of 0
        ClientFrameScanner scanner;
        scanner.setLimits(&limits);
        CHECK(scanner.scan(ended.data(), ended.size()) == ClientFrameScanner::kAllMasked);
        CHECK(scanner.messagesEnded() == 1);
        Bytes over = concat({within, frame(0x0, 0, true, false)});
        ClientFrameScanner overScanner;
        overScanner.setLimits(&limits);
        CHECK(overScanner.scan(over.data(), over.size()) == within.size());
        CHECK(overScanner.fault() == ClientFrameFault::MessageTooBig);
    }
    SUBCASE("each message starts again from 0") {
        Bytes stream;
        for (int i = 0; i < 10; ++i) stream = concat({stream, frame(0x2, 30000, true, false), frame(0x0, 30000)});
        ClientFrameScanner scanner;
        scanner.setLimits(&limits);
        CHECK(scanner.scan(stream.data(), stream.size()) == ClientFrameScanner::kAllMasked);
        CHECK(scanner.messagesEnded() == 10);
    }
    SUBCASE("a compressed message's wire bytes may exceed the limit by deflate's growth") {
        ClientFrameLimits l = testLimits(0, 102400);  // no frame limit: one 100 KiB frame
        Bytes compressed = frame(0x1, 102400 + 100);
        compressed[0] |= 0x40;
        ClientFrameScanner scanner(DeflateNegotiation::Negotiated);
        scanner.setLimits(&l);
        CHECK(scanner.scan(compressed.data(), compressed.size()) == ClientFrameScanner::kAllMasked);
        Bytes plain = frame(0x1, 102400 + 100);
        ClientFrameScanner plainScanner(DeflateNegotiation::Negotiated);
        plainScanner.setLimits(&l);
        CHECK(plainScanner.scan(plain.data(), plain.size()) == 0);
        Bytes tooMuch = frame(0x1, 102400 + 100 + 64 + 1);
        tooMuch[0] |= 0x40;
        ClientFrameScanner overScanner(DeflateNegotiation::Negotiated);
        overScanner.setLimits(&l);
        CHECK(overScanner.scan(tooMuch.data(), tooMuch.size()) == 0);
        CHECK(overScanner.fault() == ClientFrameFault::MessageTooBig);
    }
}

TEST_CASE("pings and pongs: a burst of 256, then 64 a second; a close is not counted") {
    ClientFrameLimits limits = testLimits();
    g_nowMs = 5000;
    ClientFrameScanner scanner;
    scanner.setLimits(&limits);
    Bytes ping = frame(0x9, 4), pong = frame(0xa, 0);
    for (int i = 0; i < 256; ++i) {
        const Bytes &f = i % 2 ? pong : ping;
        REQUIRE(scanner.scan(f.data(), f.size()) == ClientFrameScanner::kAllMasked);
    }
    Bytes text = frame(0x1, 10);
    CHECK(scanner.scan(text.data(), text.size()) == ClientFrameScanner::kAllMasked);  // data frames do not count
    // The budget is spent; half a second refills 32.
    g_nowMs += 500;
    for (int i = 0; i < 32; ++i) REQUIRE(scanner.scan(ping.data(), ping.size()) == ClientFrameScanner::kAllMasked);
    CHECK(scanner.scan(ping.data(), ping.size()) == 0);
    CHECK(scanner.fault() == ClientFrameFault::ControlFrameFlood);
    CHECK(clientFrameFaultCloseCode(scanner.fault()) == 1008);
    CHECK(std::string(clientFrameFaultReason(scanner.fault())).rfind("Too many control frames", 0) == 0);
    CHECK(std::strlen(clientFrameFaultReason(scanner.fault())) <= 123);

    SUBCASE("an idle hour refills no more than the burst") {
        ClientFrameScanner idle;
        idle.setLimits(&limits);
        g_nowMs = 10000;
        REQUIRE(idle.scan(ping.data(), ping.size()) == ClientFrameScanner::kAllMasked);
        g_nowMs += 3600 * 1000;
        for (int i = 0; i < 256; ++i) REQUIRE(idle.scan(ping.data(), ping.size()) == ClientFrameScanner::kAllMasked);
        CHECK(idle.scan(ping.data(), ping.size()) == 0);
    }
    SUBCASE("close frames are not counted") {
        ClientFrameScanner closes;
        closes.setLimits(&limits);
        Bytes close = frame(0x8, 2);
        for (int i = 0; i < 300; ++i) REQUIRE(closes.scan(close.data(), close.size()) == ClientFrameScanner::kAllMasked);
    }
}

namespace {

// A client frame with the given payload and masking key, as a client sends it.
Bytes maskedWith(uint8_t opcode, const Bytes &payload, const uint8_t key[4], bool fin = true) {
    Bytes f{static_cast<uint8_t>((fin ? 0x80 : 0) | opcode)};
    size_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<uint8_t>(0x80 | n));
    } else if (n < 65536) {
        f.insert(f.end(), {0x80 | 126, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    } else {
        f.push_back(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<uint8_t>(static_cast<uint64_t>(n) >> shift));
    }
    f.insert(f.end(), key, key + 4);
    for (size_t i = 0; i < n; ++i) f.push_back(payload[i] ^ key[i & 3]);
    return f;
}

struct Decoded {
    uint8_t first;
    size_t keyAt;        // the key's offset in the stream
    Bytes key, payload;  // the key as the frame carries it, the payload unmasked with it
};

// The frames of a whole stream, each unmasked with the key it carries (zero or not), as libwebsockets reads them.
std::vector<Decoded> decodeFrames(const Bytes &s) {
    std::vector<Decoded> out;
    size_t pos = 0;
    while (pos < s.size()) {
        Decoded d;
        d.first = s[pos];
        uint64_t n = s[pos + 1] & 0x7f;
        pos += 2;
        size_t extended = n == 126 ? 2 : n == 127 ? 8 : 0;
        if (extended) {
            n = 0;
            for (size_t i = 0; i < extended; ++i) n = n << 8 | s[pos + i];
            pos += extended;
        }
        d.keyAt = pos;
        d.key.assign(s.begin() + pos, s.begin() + pos + 4);
        pos += 4;
        for (uint64_t i = 0; i < n; ++i) d.payload.push_back(s[pos + i] ^ d.key[i & 3]);
        pos += n;
        out.push_back(d);
    }
    return out;
}

}  // namespace

TEST_CASE("scanUnmasking: the payloads arrive unmasked under a zeroed key, whatever the reads' boundaries") {
    // Payloads of every length class, bytes that differ from frame to frame, and keys with every byte set.
    std::vector<Bytes> payloads;
    std::vector<std::array<uint8_t, 4>> keys;
    for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{7}, size_t{8}, size_t{9}, size_t{91}, size_t{125}, size_t{126},
                     size_t{300}, size_t{65535}, size_t{65536}, size_t{70001}}) {
        Bytes p(n);
        for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 7 + n);
        payloads.push_back(p);
        uint8_t k = static_cast<uint8_t>(n);
        keys.push_back({static_cast<uint8_t>(0x81 ^ k), static_cast<uint8_t>(0x42 ^ k), static_cast<uint8_t>(0xA5 ^ k), static_cast<uint8_t>(0x1C ^ k)});
    }
    // A fragmented text message with a ping and a pong inside it, then every payload as a binary message.
    const uint8_t pingKey[4] = {9, 8, 7, 6};
    Bytes stream = concat({maskedWith(0x1, payloads[6], keys[6].data(), false), maskedWith(0x9, {1, 2, 3}, pingKey),
                           maskedWith(0xA, {}, pingKey), maskedWith(0x0, payloads[3], keys[3].data(), true)});
    for (size_t i = 0; i < payloads.size(); ++i) stream = concat({stream, maskedWith(0x2, payloads[i], keys[i].data())});
    std::vector<Decoded> original = decodeFrames(stream);
    REQUIRE(original.size() == payloads.size() + 4);

    // Read sizes: one byte (every key split), a whole header's worth, odd sizes, and the whole stream.
    for (size_t readSize : {size_t{1}, size_t{2}, size_t{5}, size_t{6}, size_t{13}, size_t{97}, size_t{4096}, stream.size()}) {
        CAPTURE(readSize);
        Bytes out = stream;
        ClientFrameScanner scanner;
        for (size_t at = 0; at < out.size(); at += readSize) {
            size_t len = std::min(readSize, out.size() - at);
            REQUIRE(scanner.scanUnmasking(out.data() + at, len) == ClientFrameScanner::kAllMasked);
        }
        CHECK(scanner.atFrameBoundary());
        std::vector<Decoded> seen = decodeFrames(out);
        REQUIRE(seen.size() == original.size());
        size_t zeroed = 0;
        for (size_t f = 0; f < seen.size(); ++f) {
            CAPTURE(f);
            CHECK(seen[f].first == original[f].first);
            CHECK(seen[f].payload == original[f].payload);
            // A key read whole is zeroed (its payload unmasked here); a key split between two reads keeps
            // its mask, as libwebsockets already has its first bytes.
            bool keyInOneRead = seen[f].keyAt / readSize == (seen[f].keyAt + 3) / readSize;
            if (keyInOneRead) {
                CHECK(seen[f].key == Bytes{0, 0, 0, 0});
                ++zeroed;
            } else {
                CHECK(seen[f].key == original[f].key);
            }
        }
        if (readSize < 4) CHECK(zeroed == 0);
        if (readSize == stream.size()) CHECK(zeroed == seen.size());
    }
}

TEST_CASE("scanUnmasking: frames before an unmasked one are delivered unmasked; the bad frame is not touched") {
    const uint8_t key[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    Bytes good = maskedWith(0x1, Bytes(40, 'a'), key);
    Bytes bad = frame(0x1, 5, false);
    Bytes stream = concat({good, bad});
    Bytes out = stream;
    ClientFrameScanner scanner;
    CHECK(scanner.scanUnmasking(out.data(), out.size()) == good.size());
    CHECK(scanner.failed());
    std::vector<Decoded> seen = decodeFrames(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(good.size())));
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].key == Bytes{0, 0, 0, 0});
    CHECK(seen[0].payload == Bytes(40, 'a'));
    CHECK(Bytes(out.begin() + static_cast<std::ptrdiff_t>(good.size()), out.end()) == bad);
}
