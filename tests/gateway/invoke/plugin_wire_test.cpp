// The framing between the gateway and isolated workers: what is written is read back field for field,
// and a short or lying payload (a plugin can scribble on its worker's socket) is caught, not overread.
#include "plugin_wire.h"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace wsgw::wire;

TEST_SUITE("plugin_wire") {
    TEST_CASE("fields round-trip through a socketpair") {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        std::string body(100000, 'b');  // bigger than one socket buffer write: readAll must loop
        Writer w(Kind::Invoke);
        w.u64(42).u8(2).bytes("$default").bytes("").bytes(body).i64(-7);
        std::thread writer([&] { CHECK(writeAll(sv[0], w.frame())); });
        auto frame = readFrame(sv[1]);
        writer.join();
        REQUIRE(frame);
        CHECK(frame->kind == Kind::Invoke);
        Reader r(frame->payload);
        CHECK(r.u64() == 42);
        CHECK(r.u8() == 2);
        CHECK(r.bytes() == "$default");
        CHECK(r.bytes().empty());
        CHECK(r.bytes() == body);
        CHECK(r.i64() == -7);
        CHECK(r.ok());
        close(sv[0]);
        CHECK_FALSE(readFrame(sv[1]));  // EOF
        close(sv[1]);
    }

    TEST_CASE("a short payload marks the reader bad instead of reading past the end") {
        std::string payload("\x05\x00\x00\x00" "ab", 6);  // says 5 bytes, has 2
        Reader r(payload);
        CHECK(r.bytes().empty());
        CHECK_FALSE(r.ok());
        Reader empty(std::string_view{});
        CHECK(empty.u64() == 0);
        CHECK_FALSE(empty.ok());
    }

    TEST_CASE("a zero or oversized frame length is refused") {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        uint32_t huge = kMaxFrame + 1;
        REQUIRE(write(sv[0], &huge, sizeof huge) == sizeof huge);
        CHECK_FALSE(readFrame(sv[1]));
        uint32_t zero = 0;
        REQUIRE(write(sv[0], &zero, sizeof zero) == sizeof zero);
        CHECK_FALSE(readFrame(sv[1]));
        close(sv[0]);
        close(sv[1]);
    }
}
