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

    TEST_CASE("a Web PubSub send keeps its data type and publisher in the Web PubSub form") {
        BusMessage m;
        m.op = Op::Deliver;
        m.origin = "n1";
        m.group = "room";
        m.data = "{\"a\":1}";
        m.wps = wsgw::WpsRendering{wsgw::WpsDataType::Json, true, "alice"};
        CHECK(encode(m) == "M2:n10:0:4:roomWjg5:alice{\"a\":1}");
        auto d = decode(encode(m));
        REQUIRE(d);
        REQUIRE(d->wps);
        CHECK(*d->wps == *m.wps);
        CHECK_FALSE(d->binary);
        CHECK(d->data == m.data);

        BusMessage post;
        post.op = Op::Post;
        post.origin = "n2";
        post.token = "7";
        post.connectionId = "c1";
        post.data = std::string("\0\xff", 2);
        post.wps = wsgw::WpsRendering{wsgw::WpsDataType::Binary, false, ""};
        CHECK(encode(post) == std::string("P2:n21:72:c10:Wbs0:") + std::string("\0\xff", 2));
        auto p = decode(encode(post));
        REQUIRE(p);
        REQUIRE(p->wps);
        CHECK(p->wps->dataType == wsgw::WpsDataType::Binary);
        CHECK_FALSE(p->wps->fromGroup);
        CHECK(p->binary);  // binary follows the data type in this form
        CHECK(p->data == post.data);
        CHECK(decode("M2:n10:0:0:Wts0:hi")->wps->dataType == wsgw::WpsDataType::Text);
    }

    TEST_CASE("the plain form is kept for what it renders alike, so that older nodes still read it") {
        using wsgw::WpsDataType;
        CHECK(plainFormRendersAlike({WpsDataType::Text, false, ""}));
        CHECK(plainFormRendersAlike({WpsDataType::Binary, false, ""}));
        CHECK_FALSE(plainFormRendersAlike({WpsDataType::Json, false, ""}));    // would arrive as text
        CHECK_FALSE(plainFormRendersAlike({WpsDataType::Text, true, "bob"}));  // would arrive from the server
        CHECK_FALSE(decode("M2:n10:0:0:0hi")->wps);
    }

    TEST_CASE("malformed Web PubSub forms are refused") {
        CHECK_FALSE(decode("M2:n10:0:0:W"));               // nothing after the flag
        CHECK_FALSE(decode("M2:n10:0:0:Wx"));              // half a rendering
        CHECK_FALSE(decode("M2:n10:0:0:Wxs0:hi"));         // unknown data type
        CHECK_FALSE(decode("M2:n10:0:0:Wjq0:hi"));         // neither server nor group
        CHECK_FALSE(decode("M2:n10:0:0:Wjs"));             // no publisher field
        CHECK_FALSE(decode("M2:n10:0:0:Wjg9:ab"));         // a publisher past the end
        CHECK_FALSE(decode("M2:n10:0:0:Wjs3:bobhi"));      // a server message with a publisher
        CHECK_FALSE(decode("J2:n10:0:2:c14:roomWjs0:"));   // only sends have a rendering
        CHECK_FALSE(decode("A2:n11:70:0:Wts0:1"));
        CHECK(decode("M2:n10:0:0:Wjg0:{}"));               // a publisher without a user ID
    }

    TEST_CASE("a send that leaves connections out carries them in the 'x' part, in either form") {
        BusMessage m;
        m.op = Op::Deliver;
        m.origin = "n1";
        m.group = "room";
        m.data = "hi";
        m.excluded = {"c1", "conn-22"};
        CHECK(encode(m) == "M2:n10:0:4:roomx13:2:c17:conn-220hi");
        auto d = decode(encode(m));
        REQUIRE(d);
        CHECK(d->excluded == m.excluded);
        CHECK_FALSE(d->wps);
        CHECK(d->data == "hi");

        m.group.clear();
        m.data = "{\"a\":1}";
        m.wps = wsgw::WpsRendering{wsgw::WpsDataType::Json, false, ""};
        m.excluded = {std::string("k3Jd9xQpS2uYb7vT1mWz0A")};
        CHECK(encode(m) == "M2:n10:0:0:x25:22:k3Jd9xQpS2uYb7vT1mWz0AWjs0:{\"a\":1}");
        d = decode(encode(m));
        REQUIRE(d);
        CHECK(d->excluded == m.excluded);
        REQUIRE(d->wps);
        CHECK(*d->wps == *m.wps);
        CHECK(d->data == m.data);

        m.excluded.clear();  // nobody left out: no 'x', so older nodes read it as before
        CHECK(encode(m).find('x') == std::string::npos);
        CHECK(decode(encode(m))->excluded.empty());
    }

    TEST_CASE("a Web PubSub close carries its reason; a plain Delete is as before") {
        BusMessage m;
        m.op = Op::Delete;
        m.origin = "n1";
        m.token = "9";
        m.connectionId = "c1";
        m.wpsClose = true;
        m.data = "maintenance: back at 5";
        CHECK(encode(m) == "D2:n11:92:c10:1maintenance: back at 5");
        auto d = decode(encode(m));
        REQUIRE(d);
        CHECK(d->wpsClose);
        CHECK_FALSE(d->binary);
        CHECK(d->data == m.data);

        m.wpsClose = false;
        m.data.clear();
        CHECK(encode(m) == "D2:n11:92:c10:0");  // what every node sends and reads for a management DELETE
        d = decode(encode(m));
        REQUIRE(d);
        CHECK_FALSE(d->wpsClose);
        CHECK(decode("D2:n11:92:c10:1")->wpsClose);  // a Web PubSub close without a reason
    }

    TEST_CASE("closing every connection: its reason and the connections left out") {
        BusMessage m;
        m.op = Op::CloseAll;
        m.origin = "n1";
        m.data = "bye";
        CHECK(encode(m) == "C2:n10:0:0:0bye");
        auto d = decode(encode(m));
        REQUIRE(d);
        CHECK(d->op == Op::CloseAll);
        CHECK(d->data == "bye");
        CHECK(d->excluded.empty());

        m.excluded = {"a", "b"};
        m.data.clear();
        CHECK(encode(m) == "C2:n10:0:0:x6:1:a1:b0");
        d = decode(encode(m));
        REQUIRE(d);
        CHECK(d->excluded == m.excluded);
        CHECK(d->data.empty());
    }

    TEST_CASE("malformed 'x' parts, Web PubSub closes and close-alls are refused") {
        CHECK_FALSE(decode("M2:n10:0:0:x"));                 // no list
        CHECK_FALSE(decode("M2:n10:0:0:x0:0hi"));            // an empty list: there is nothing to leave out
        CHECK_FALSE(decode("M2:n10:0:0:x2:0:0hi"));          // an empty connection ID
        CHECK_FALSE(decode("M2:n10:0:0:x3:1:a"));            // no flag after the list
        CHECK_FALSE(decode("M2:n10:0:0:x4:1:ab0hi"));        // an ID past the list's end
        CHECK_FALSE(decode("M2:n10:0:0:x5:1:a10hi"));        // the list ends inside a field
        CHECK_FALSE(decode("M2:n10:0:0:x3:1:ax3:1:b0hi"));   // two lists
        CHECK_FALSE(decode("M2:n10:0:0:x3:1:a2hi"));         // a bad flag after the list
        CHECK_FALSE(decode("M2:n10:0:0:x99:1:a0hi"));        // a list past the end
        CHECK_FALSE(decode("P2:n11:72:c10:x3:1:a0hi"));      // only Deliver and CloseAll leave out
        CHECK_FALSE(decode("D2:n11:72:c10:x3:1:a1bye"));
        CHECK_FALSE(decode("J2:n11:72:c14:roomx3:1:a0"));
        CHECK_FALSE(decode("D2:n11:72:c10:Wts0:bye"));       // a close has no rendering
        CHECK_FALSE(decode("C2:n10:0:0:Wts0:bye"));
        CHECK_FALSE(decode("C2:n10:0:0:1bye"));              // a close-all has no binary data
        CHECK_FALSE(decode("C2:n11:70:0:0bye"));             // nor a token (it is not answered)
        CHECK_FALSE(decode("C2:n10:2:c10:0bye"));            // nor a connection
        CHECK_FALSE(decode("C2:n10:0:1:g0bye"));             // nor a group
        CHECK_FALSE(decode("C2:n10:0:0:"));                  // no flag
        CHECK(decode("C2:n10:0:0:x3:1:a0"));
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
