// Client close frames: what is echoed, and what fails the connection with 1002 or 1007 (Autobahn|Testsuite
// 7.3.x, 7.5.1, 7.7.x and 7.9.x send these).
#include "close_frame.h"

#include <doctest/doctest.h>

#include <string>

using namespace wsgw;

namespace {

PeerClose check(int code, const std::string &reason) {
    std::string p;
    p += static_cast<char>(code >> 8);
    p += static_cast<char>(code & 0xff);
    p += reason;
    return checkPeerClose(reinterpret_cast<const unsigned char *>(p.data()), p.size());
}

}  // namespace

TEST_SUITE("close_frame") {
    TEST_CASE("an empty close frame is valid and carries no code") {
        PeerClose c = checkPeerClose(nullptr, 0);
        CHECK(c.valid);
        CHECK(c.code == 0);
    }

    TEST_CASE("a 1-byte payload fails with 1002") {
        unsigned char one = 0x03;
        PeerClose c = checkPeerClose(&one, 1);
        CHECK_FALSE(c.valid);
        CHECK(c.failWith == 1002);
    }

    TEST_CASE("codes an endpoint may send are echoed with their reason") {
        for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
            PeerClose c = check(code, "bye");
            CHECK_MESSAGE(c.valid, code);
            CHECK(c.code == code);
            CHECK(c.reason == "bye");
        }
    }

    TEST_CASE("codes that may not appear on the wire fail with 1002") {
        for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
            PeerClose c = check(code, "");
            CHECK_MESSAGE(!c.valid, code);
            CHECK(c.failWith == 1002);
        }
    }

    TEST_CASE("a reason that is not UTF-8 fails with 1007") {
        PeerClose c = check(1000, std::string("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64"));
        CHECK_FALSE(c.valid);
        CHECK(c.failWith == 1007);
        CHECK(check(1000, "κόσμε").valid);
    }
}
