// Tests gateway/net/upgrade_head_io over a real socketpair, as UpgradeReader uses it: a request head taken
// as it arrives in pieces and parsed only once complete, a peer that goes away mid-head, a head over
// UpgradeReader::kMaxHeadBytes refused with 431 and that refusal read by the client before the close, a
// refusal larger than the socket buffer cut short instead of blocking, and the 101-then-close answer
// (RFC 6455's accept key, the close frame, the reason cut at a UTF-8 boundary).
#include "upgrade_head_io.h"

#include "handshake.h"
#include "upgrade_reader.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

using namespace wsgw;

namespace {

// The gateway's end non-blocking (as accepted sockets are), the client's end blocking with a 5 s receive
// timeout so that a test that goes wrong fails instead of hanging.
struct HeadSocketPair {
    int gateway = -1, client = -1;
    HeadSocketPair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
        gateway = fds[0];
        client = fds[1];
        REQUIRE(::fcntl(gateway, F_SETFL, ::fcntl(gateway, F_GETFL) | O_NONBLOCK) == 0);
        timeval fiveSeconds{5, 0};
        ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &fiveSeconds, sizeof fiveSeconds);
    }
    ~HeadSocketPair() {
        if (gateway >= 0) ::close(gateway);
        if (client >= 0) ::close(client);
    }
    void clientSends(const std::string &bytes) const {
        REQUIRE(::send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
    }
    enum class Ending { Eof, Reset, TimedOut };
    // Everything the client receives up to the gateway's close, and how that close looked.
    std::string clientReadsToEnd(Ending *ending) const {
        std::string got;
        char buf[65536];
        while (true) {
            ssize_t n = ::recv(client, buf, sizeof buf, 0);
            if (n <= 0) {
                *ending = n == 0 ? Ending::Eof : errno == ECONNRESET ? Ending::Reset : Ending::TimedOut;
                return got;
            }
            got.append(buf, static_cast<size_t>(n));
        }
    }
};

const std::string kUpgradeHead =
    "GET /chat?room=1 HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

}  // namespace

TEST_SUITE("upgrade_head_io") {
    TEST_CASE("a head arriving in pieces is taken as it comes and parses only once its blank line is in") {
        HeadSocketPair pair;
        std::string head;
        CHECK(receiveHeadBytes(pair.gateway, head) == HeadRead::Wait);  // nothing sent yet: not a close
        CHECK(head.empty());
        size_t cuts[] = {0, 7, 40, kUpgradeHead.size() - 2, kUpgradeHead.size()};
        for (size_t i = 0; i + 1 < std::size(cuts); ++i) {
            CAPTURE(i);
            pair.clientSends(kUpgradeHead.substr(cuts[i], cuts[i + 1] - cuts[i]));
            REQUIRE(receiveHeadBytes(pair.gateway, head) == HeadRead::Received);
            CHECK(head == kUpgradeHead.substr(0, cuts[i + 1]));
            HeadParse parsed = parseUpgradeHead(head, UpgradeReader::kMaxHeadBytes);
            if (cuts[i + 1] < kUpgradeHead.size()) {
                CHECK(parsed.result == HeadResult::NeedMore);
            } else {
                REQUIRE(parsed.result == HeadResult::Upgrade);
                CHECK(parsed.request.path == "/chat");
                CHECK(parsed.request.rawQuery == "room=1");
                REQUIRE(parsed.request.header("sec-websocket-key"));
                CHECK(*parsed.request.header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ==");
            }
        }
        CHECK(receiveHeadBytes(pair.gateway, head) == HeadRead::Wait);  // all taken; the client is still there
    }

    TEST_CASE("a client that leaves before its head is complete reads as Closed, after the bytes it sent") {
        HeadSocketPair pair;
        pair.clientSends("GET / HTTP/1.1\r\nHost: x\r\n");
        ::shutdown(pair.client, SHUT_WR);
        std::string head;
        CHECK(receiveHeadBytes(pair.gateway, head) == HeadRead::Received);
        CHECK(head == "GET / HTTP/1.1\r\nHost: x\r\n");
        CHECK(receiveHeadBytes(pair.gateway, head) == HeadRead::Closed);
    }

    TEST_CASE("a head over kMaxHeadBytes is refused with 431, and the client reads the whole refusal before the close") {
        HeadSocketPair pair;
        std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(UpgradeReader::kMaxHeadBytes, 'f') + "\r\n\r\n";
        pair.clientSends(big);
        std::string head;
        HeadParse parsed;
        for (int reads = 0; reads < 100 && parsed.result == HeadResult::NeedMore; ++reads) {
            REQUIRE(receiveHeadBytes(pair.gateway, head) == HeadRead::Received);
            parsed = parseUpgradeHead(head, UpgradeReader::kMaxHeadBytes);
        }
        REQUIRE(parsed.result == HeadResult::Refuse);
        CHECK(parsed.refusal.status == 431);
        CHECK(head.size() <= UpgradeReader::kMaxHeadBytes + 4096);  // refused as soon as the bound was crossed
        std::string refusal = renderHttpRefusal(parsed.refusal.status, parsed.refusal.reason, parsed.refusal.extraHeaders);
        answerAndClose(pair.gateway, &refusal);
        pair.gateway = -1;
        // The rest of the client's head is never read, so the close may come as a reset after the refusal.
        HeadSocketPair::Ending ending{};
        std::string got = pair.clientReadsToEnd(&ending);
        CHECK(ending != HeadSocketPair::Ending::TimedOut);
        CHECK(got == refusal);
        CHECK(got.rfind("HTTP/1.1 431 ", 0) == 0);
    }

    TEST_CASE("without a response the client sees only the close") {
        HeadSocketPair pair;
        answerAndClose(pair.gateway, nullptr);
        pair.gateway = -1;
        HeadSocketPair::Ending ending{};
        CHECK(pair.clientReadsToEnd(&ending).empty());
        CHECK(ending == HeadSocketPair::Ending::Eof);
    }

    TEST_CASE("a refusal larger than the socket buffer is cut short, not waited for: the client gets a prefix and EOF") {
        HeadSocketPair pair;
        int small = 4096;
        ::setsockopt(pair.gateway, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        ::setsockopt(pair.client, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        std::string huge(8 << 20, 'r');  // far more than the kernel holds for a client that is not reading
        auto before = std::chrono::steady_clock::now();
        answerAndClose(pair.gateway, &huge);
        pair.gateway = -1;
        CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(2));  // it returned (would block otherwise)
        HeadSocketPair::Ending ending{};
        std::string got = pair.clientReadsToEnd(&ending);
        CHECK(ending == HeadSocketPair::Ending::Eof);
        CHECK(!got.empty());
        CHECK(got.size() < huge.size());
        CHECK(got == huge.substr(0, got.size()));
    }

    TEST_CASE("101 then close: the RFC 6455 accept key, the subprotocol when chosen, and a close frame with code and reason") {
        CHECK(websocketAcceptKey("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");  // RFC 6455 section 1.3
        std::string out = renderUpgradeThenClose("dGhlIHNhbXBsZSBub25jZQ==", "json.reliable.webpubsub.azure.v1", 1008, "gone");
        size_t end = out.find("\r\n\r\n");
        REQUIRE(end != std::string::npos);
        std::string head = out.substr(0, end + 4);
        CHECK(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
        CHECK(head.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
        CHECK(head.find("\r\nSec-WebSocket-Protocol: json.reliable.webpubsub.azure.v1\r\n") != std::string::npos);
        std::string frame = out.substr(end + 4);
        CHECK(frame == std::string("\x88\x06\x03\xf0gone", 8));  // FIN+close, unmasked, 2+4 bytes, 1008 = 0x03f0
        std::string plain = renderUpgradeThenClose("dGhlIHNhbXBsZSBub25jZQ==", "", 1000, "");
        CHECK(plain.find("Sec-WebSocket-Protocol") == std::string::npos);
        CHECK(plain.substr(plain.find("\r\n\r\n") + 4) == std::string("\x88\x02\x03\xe8", 4));
    }

    TEST_CASE("a close reason over 123 bytes is cut where a UTF-8 character starts") {
        std::string ascii(123, 'a');
        std::string out = renderUpgradeThenClose("k", "", 1008, ascii);
        std::string frame = out.substr(out.find("\r\n\r\n") + 4);
        CHECK(static_cast<unsigned char>(frame[1]) == 125);  // 123 bytes fit whole
        CHECK(frame.substr(4) == ascii);

        std::string accented;
        for (int i = 0; i < 100; ++i) accented += "\xc3\xa9";  // é, two bytes each: byte 123 is a continuation
        out = renderUpgradeThenClose("k", "", 1008, "x" + accented);  // 'x' then é...: byte 123 starts a character
        frame = out.substr(out.find("\r\n\r\n") + 4);
        CHECK(static_cast<unsigned char>(frame[1]) == 2 + 123);
        CHECK(frame.substr(4) == ("x" + accented).substr(0, 123));
        out = renderUpgradeThenClose("k", "", 1008, accented);
        frame = out.substr(out.find("\r\n\r\n") + 4);
        CHECK(static_cast<unsigned char>(frame[1]) == 2 + 122);  // not 123: that would split an é
        CHECK(frame.substr(4) == accented.substr(0, 122));
    }
}
