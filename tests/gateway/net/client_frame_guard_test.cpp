// Tests gateway/net/client_frame_guard over a real socketpair: bytes that came with the upgrade request are
// unmasked only once the descriptor is watched, and a frame that goes on past them is unmasked as the rest
// of it is read through the screen (recv(2) as libwebsockets calls it); an unwatched guard leaves every
// frame as the client masked it, for libwebsockets to unmask.
#include "client_frame_guard.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

using namespace wsgw;

namespace {

constexpr uint8_t kKey[4] = {0x3C, 0xA1, 0x5E, 0x97};

// A masked binary frame with a 16-bit length (the payload is i % 251 for byte i).
std::string maskedFrame(size_t n) {
    std::string f;
    f += static_cast<char>(0x82);
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
    f.append(reinterpret_cast<const char *>(kKey), 4);
    for (size_t i = 0; i < n; ++i) f += static_cast<char>((i % 251) ^ kKey[i & 3]);
    return f;
}

// The payload of `frame`, unmasked with the key it now carries.
std::string payloadOf(const std::string &frame) {
    std::string p = frame.substr(8);
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>(p[i] ^ frame[4 + (i & 3)]);
    return p;
}

std::string expectedPayload(size_t n) {
    std::string p;
    for (size_t i = 0; i < n; ++i) p += static_cast<char>(i % 251);
    return p;
}

struct SocketPair {
    int gateway = -1, client = -1;
    SocketPair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
        gateway = fds[0];
        client = fds[1];
    }
    ~SocketPair() {
        ::close(gateway);
        ::close(client);
    }
};

}  // namespace

TEST_CASE("a frame begun with the upgrade request and read on through the screen arrives unmasked, key zeroed") {
    const size_t n = 5000;
    std::string frame = maskedFrame(n);
    SocketPair pair;
    ClientFrameGuard guard;
    REQUIRE(guard.watch(pair.gateway, nullptr));
    // The first 1,000 bytes came with the request; the rest is read from the socket.
    std::string handedOn = frame.substr(0, 1000);
    CHECK(guard.screenPreloaded(nullptr, handedOn.data(), handedOn.size()) == handedOn.size());
    REQUIRE(::write(pair.client, frame.data() + 1000, frame.size() - 1000) == static_cast<ssize_t>(frame.size() - 1000));
    while (handedOn.size() < frame.size()) {
        char buf[777];  // uneven reads: the mask resumes part-way through the key
        long got = guard.screenedRecv(pair.gateway, buf, sizeof buf, 0);
        REQUIRE(got > 0);
        handedOn.append(buf, static_cast<size_t>(got));
    }
    CHECK(handedOn.substr(4, 4) == std::string(4, '\0'));
    CHECK(payloadOf(handedOn) == expectedPayload(n));
    guard.unwatch();
}

TEST_CASE("an unwatched guard screens the bytes with the request but leaves their mask to libwebsockets") {
    const size_t n = 300;
    std::string frame = maskedFrame(n);
    ClientFrameGuard guard;  // never watched: as when a descriptor is beyond the table
    std::string handedOn = frame;
    CHECK(guard.screenPreloaded(nullptr, handedOn.data(), handedOn.size()) == handedOn.size());
    CHECK(handedOn == frame);
    CHECK(payloadOf(handedOn) == expectedPayload(n));
    CHECK_FALSE(guard.failed());
}
