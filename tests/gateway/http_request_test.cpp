#include "http_request.h"
#include "management_path.h"

#include <doctest/doctest.h>

using namespace wsgw;

TEST_SUITE("http_request") {
    TEST_CASE("a POST with a body, and a pipelined request after it") {
        std::string bytes = "POST /@connections/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        HttpParse p = parseHttpRequest(bytes);
        REQUIRE(p.state == HttpParseState::Complete);
        CHECK(p.request.method == "POST");
        CHECK(p.request.path == "/@connections/abc");
        CHECK(p.request.body == "hello");
        CHECK(p.request.keepAlive);
        CHECK(*p.request.header("host") == "x");
        HttpParse next = parseHttpRequest(std::string_view(bytes).substr(p.consumed));
        REQUIRE(next.state == HttpParseState::Complete);
        CHECK(next.request.method == "GET");
    }

    TEST_CASE("incomplete heads and bodies need more bytes") {
        std::string full = "POST /x?a=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        for (size_t n = 0; n < full.size(); ++n)
            CHECK(parseHttpRequest(std::string_view(full).substr(0, n)).state == HttpParseState::NeedMore);
        HttpParse p = parseHttpRequest(full);
        REQUIRE(p.state == HttpParseState::Complete);
        CHECK(p.request.rawQuery == "a=1");
    }

    TEST_CASE("bad requests get the right status and a reason") {
        struct Case { const char *bytes; int status; };
        Case cases[] = {
            {"GARBAGE\r\n\r\n", 400},
            {"GET /x HTTP/2.0\r\n\r\n", 505},
            {"GET x HTTP/1.1\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\n folded\r\n\r\n", 400},
            {"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", 400},
            {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
            {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400},
            {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
            {"POST / HTTP/1.1\r\nContent-Length: 131073\r\n\r\n", 413},
        };
        for (const auto &c : cases) {
            HttpParse p = parseHttpRequest(c.bytes);
            CAPTURE(c.bytes);
            REQUIRE(p.state == HttpParseState::Error);
            CHECK(p.error.status == c.status);
            CHECK(!p.error.reason.empty());
        }
        CHECK(parseHttpRequest(std::string(20000, 'a')).error.status == 431);
    }

    TEST_CASE("Connection: close and HTTP/1.0 end keep-alive") {
        CHECK_FALSE(parseHttpRequest("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").request.keepAlive);
        CHECK_FALSE(parseHttpRequest("GET / HTTP/1.0\r\n\r\n").request.keepAlive);
        CHECK(parseHttpRequest("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").request.keepAlive);
    }

    TEST_CASE("responses: 204 has no body or length; others have Content-Length") {
        std::string r = renderHttpResponse(204, "application/json", "", {}, true);
        CHECK(r == "HTTP/1.1 204 No Content\r\n\r\n");
        std::string e = renderHttpResponse(410, "application/json", "{\"message\":\"gone\"}", {{"x-amzn-ErrorType", "GoneException"}}, false);
        CHECK(e == "HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: 18\r\n"
                   "x-amzn-ErrorType: GoneException\r\nConnection: close\r\n\r\n{\"message\":\"gone\"}");
    }
}

TEST_SUITE("management_path") {
    TEST_CASE("connection paths with and without a stage, percent-decoded") {
        ManagementPath a = parseManagementPath("/@connections/k3Jd9xQpS2uYb7vT1mWz0A");
        CHECK(a.target == ManagementTarget::Connection);
        CHECK(a.connectionId == "k3Jd9xQpS2uYb7vT1mWz0A");
        CHECK(a.stage.empty());
        ManagementPath b = parseManagementPath("/prod/%40connections/abc%3D");
        CHECK(b.target == ManagementTarget::Connection);
        CHECK(b.stage == "prod");
        CHECK(b.connectionId == "abc=");
        CHECK(parseManagementPath("/@connections").target == ManagementTarget::ConnectionList);
        CHECK(parseManagementPath("/dev/@connections").target == ManagementTarget::ConnectionList);
    }

    TEST_CASE("group and broadcast paths, with and without a stage") {
        ManagementPath g = parseManagementPath("/@groups/room-1");
        CHECK(g.target == ManagementTarget::Group);
        CHECK(g.group == "room-1");
        ManagementPath m = parseManagementPath("/prod/%40groups/a%3Ab/connections/abc%3D");
        CHECK(m.target == ManagementTarget::GroupMember);
        CHECK(m.stage == "prod");
        CHECK(m.group == "a:b");
        CHECK(m.connectionId == "abc=");
        CHECK(parseManagementPath("/@broadcast").target == ManagementTarget::Broadcast);
        CHECK(parseManagementPath("/dev/@broadcast").target == ManagementTarget::Broadcast);
        // The group name is checked by the API (isValidGroupName), not by the path parser.
        CHECK(parseManagementPath("/@groups/no%20spaces").group == "no spaces");
    }

    TEST_CASE("everything else is unknown, with a reason") {
        for (const char *p : {"/", "/nothing", "/@connections/", "/@connections/a/b", "/a/b/@connections/x", "/@connections/%zz",
                              "/@connections/a%00b", "x", "/@groups", "/@groups/", "/@groups/g/x/id",
                              "/@groups/g/connections", "/@groups/g/connections/", "/@broadcast/x"}) {
            CAPTURE(p);
            ManagementPath mp = parseManagementPath(p);
            CHECK(mp.target == ManagementTarget::Unknown);
            CHECK(!mp.error.empty());
        }
    }
}
