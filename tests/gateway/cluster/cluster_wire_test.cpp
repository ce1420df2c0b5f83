#include "cluster_wire.h"

#include <doctest/doctest.h>

using namespace wsgw::cluster;

TEST_SUITE("cluster_wire") {
    TEST_CASE("every field survives a round trip, binary data and empty fields included") {
        BusMessage m;
        m.op = Op::Post;
        m.origin = "node-1";
        m.token = "42";
        m.connectionId = "k3Jd9xQpS2uYb7vT1mWz0A";
        m.binary = true;
        m.data = std::string("\0\xff:1:2\n", 7);
        auto d = decode(encode(m));
        REQUIRE(d);
        CHECK(d->op == Op::Post);
        CHECK(d->origin == m.origin);
        CHECK(d->token == "42");
        CHECK(d->connectionId == m.connectionId);
        CHECK(d->group.empty());
        CHECK(d->binary);
        CHECK(d->data == m.data);
    }

    TEST_CASE("the layout is the documented one") {
        BusMessage m;
        m.op = Op::Deliver;
        m.origin = "n1";
        m.group = "room";
        m.data = "hi";
        CHECK(encode(m) == "M2:n10:0:4:room0hi");
    }

    TEST_CASE("malformed messages are refused, not half-read") {
        CHECK_FALSE(decode(""));
        CHECK_FALSE(decode("X2:n10:0:0:0"));             // unknown op
        CHECK_FALSE(decode("P2:n1"));                    // fields missing
        CHECK_FALSE(decode("P9:n10:0:0:0"));             // a length past the end
        CHECK_FALSE(decode("P2:n10:0:0:2"));             // binary flag not 0 or 1
        CHECK_FALSE(decode("P2:n10:0:0:"));              // no binary flag
        CHECK_FALSE(decode("P99999999999:x0:0:0:0"));    // absurd length
        CHECK_FALSE(decode("P:n10:0:0:0"));              // no digits
        CHECK(decode("A2:n11:70:0:01"));                 // an ack: token 7, rc 1
        CHECK(decode("A2:n11:70:0:01")->data == "1");
    }
}
