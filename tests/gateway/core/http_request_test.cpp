#include "http_request.h"
#include "management_path.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>

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
            {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
            {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
            {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
            {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
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

    TEST_CASE("a chunked body is decoded, and the request after it is left alone") {
        std::string bytes = "POST /@connections/abc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n"
                            "GET / HTTP/1.1\r\n\r\n";
        HttpParse p = parseHttpRequest(bytes);
        REQUIRE(p.state == HttpParseState::Complete);
        CHECK(p.request.chunked);
        CHECK(p.request.body == "hello 0123456789abcdefghijk");
        CHECK(std::string_view(bytes).substr(p.consumed) == "GET / HTTP/1.1\r\n\r\n");
        CHECK(p.request.keepAlive);
    }

    TEST_CASE("chunk sizes in upper and lower case hex, with leading zeros") {
        std::string body(0xAB + 0xcd, 'x');
        std::string bytes = "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\nAB\r\n" + std::string(0xAB, 'x') + "\r\n00cd\r\n" +
                            std::string(0xcd, 'x') + "\r\n000\r\n\r\n";
        HttpParse p = parseHttpRequest(bytes);
        REQUIRE(p.state == HttpParseState::Complete);
        CHECK(p.request.body == body);
        CHECK(p.consumed == bytes.size());
    }

    TEST_CASE("chunk extensions and trailers are tolerated and dropped") {
        std::string bytes = "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
                            "3 ; name=value;flag\r\nabc\r\n3;q=\"quoted; text\"\r\ndef\r\n0;last\r\n"
                            "X-Checksum: 1234\r\nX-Other:\r\n\r\n";
        HttpParse p = parseHttpRequest(bytes);
        REQUIRE(p.state == HttpParseState::Complete);
        CHECK(p.request.body == "abcdef");
        CHECK(p.consumed == bytes.size());
        CHECK(p.request.header("X-Checksum") == nullptr);  // trailers never become headers
    }

    TEST_CASE("a chunked request split at every point: NeedMore before the end, the same body after") {
        std::string full = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
                           "4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\n";
        const std::string expected = "Wikipedia in\r\n\r\nchunks.";
        for (size_t n = 0; n < full.size(); ++n) {
            CAPTURE(n);
            CHECK(parseHttpRequest(std::string_view(full).substr(0, n)).state == HttpParseState::NeedMore);
        }
        CHECK(parseHttpRequest(full).request.body == expected);
        // The resumable reader, fed the growing buffer in two pieces at every split, and a byte at a time.
        for (size_t split = 0; split <= full.size(); ++split) {
            CAPTURE(split);
            HttpRequestReader reader;
            CHECK(reader.parse(std::string_view(full).substr(0, split)).state ==
                  (split == full.size() ? HttpParseState::Complete : HttpParseState::NeedMore));
            HttpParse &p = reader.parse(full);
            REQUIRE(p.state == HttpParseState::Complete);
            CHECK(p.request.body == expected);
            CHECK(p.consumed == full.size());
        }
        HttpRequestReader reader;
        for (size_t n = 1; n < full.size(); ++n) REQUIRE(reader.parse(std::string_view(full).substr(0, n)).state == HttpParseState::NeedMore);
        CHECK(reader.parse(full).request.body == expected);
        reader.reset();
        CHECK(reader.parse("GET / HTTP/1.1\r\n\r\n").request.method == "GET");
    }

    TEST_CASE("the body limit counts decoded bytes") {
        auto chunkedOf = [](size_t n, size_t chunk) {
            std::string s = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
            char size[32];
            for (size_t sent = 0; sent < n; sent += chunk) {
                size_t k = std::min(chunk, n - sent);
                snprintf(size, sizeof size, "%zx\r\n", k);
                s += size + std::string(k, 'z') + "\r\n";
            }
            return s + "0\r\n\r\n";
        };
        HttpParse atLimit = parseHttpRequest(chunkedOf(131072, 8192));
        REQUIRE(atLimit.state == HttpParseState::Complete);
        CHECK(atLimit.request.body.size() == 131072);
        HttpParse over = parseHttpRequest(chunkedOf(131073, 8192));
        REQUIRE(over.state == HttpParseState::Error);
        CHECK(over.error.status == 413);
        CHECK(over.error.reason.find("131072") != std::string::npos);
        // One chunk that declares too much is refused at its size line, before its data comes.
        HttpParse declared = parseHttpRequest("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n20001\r\n");
        CHECK(declared.state == HttpParseState::Error);
        CHECK(declared.error.status == 413);
        // A huge hex size neither overflows nor waits.
        CHECK(parseHttpRequest("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff").error.status == 413);
        // Framing is bounded too: 131072 one-byte chunks with long extensions are refused.
        std::string framing = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        while (framing.size() < 400000) framing += "1;" + std::string(100, 'e') + "\r\nz\r\n";
        CHECK(parseHttpRequest(framing).error.status == 413);
        // A smaller limit is honoured.
        CHECK(parseHttpRequest(chunkedOf(11, 4), 16384, 10).error.status == 413);
        CHECK(parseHttpRequest(chunkedOf(10, 4), 16384, 10).state == HttpParseState::Complete);
    }

    TEST_CASE("a malformed chunk size or chunk framing gets 400 with a clear reason") {
        const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        struct Case { const char *body; const char *reasonHas; };
        Case cases[] = {
            {"zz\r\n", "chunk size"},
            {"\r\n", "chunk size"},
            {"-5\r\nhello\r\n0\r\n\r\n", "chunk size"},
            {"5x\r\nhello\r\n", "chunk size"},
            {"0x5\r\nhello\r\n", "chunk size"},
            {"5 6\r\n", "chunk size"},
            {"5\nhello\r\n", "chunk size"},
            {"5\r\rhello", "CR not followed by LF"},
            {"5;a\x01\r\n", "chunk extension"},
            {"3\r\nhello\r\n0\r\n\r\n", "not followed by CRLF"},
            {"5\r\nhelloXY", "not followed by CRLF"},
            {"0\r\nno colon\r\n\r\n", "trailer"},
            {"0\r\n: empty\r\n\r\n", "trailer"},
            {"0\r\nA: b\x01\r\n\r\n", "trailer"},
        };
        for (const auto &c : cases) {
            CAPTURE(c.body);
            HttpParse p = parseHttpRequest(head + c.body);
            REQUIRE(p.state == HttpParseState::Error);
            CHECK(p.error.status == 400);
            CHECK(p.error.reason.find(c.reasonHas) != std::string::npos);
            CHECK(p.error.reason.find("of the chunked body") != std::string::npos);  // says where
        }
        HttpParse longLine = parseHttpRequest(head + "5;" + std::string(5000, 'e'));
        CHECK(longLine.error.status == 400);
        CHECK(parseHttpRequest(head + "0\r\n" + std::string(20000, 'T')).error.status == 431);
    }

    TEST_CASE("Expect: 100-continue is seen once the head is complete, before the body") {
        HttpParse waiting = parseHttpRequest("POST /x HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n");
        CHECK(waiting.state == HttpParseState::NeedMore);
        CHECK(waiting.headComplete);
        CHECK(waiting.request.expectContinue);
        CHECK(waiting.request.contentLength == 5);
        CHECK(waiting.request.path == "/x");
        HttpParse chunked = parseHttpRequest("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
        CHECK(chunked.state == HttpParseState::NeedMore);
        CHECK(chunked.headComplete);
        CHECK(chunked.request.expectContinue);
        CHECK_FALSE(parseHttpRequest("POST /x HTTP/1.1\r\nContent-Length: 5\r\n").headComplete);
        CHECK_FALSE(parseHttpRequest("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n").request.expectContinue);
        // HTTP/1.0 has no 100 Continue; other expectations are not ours.
        CHECK_FALSE(parseHttpRequest("POST /x HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").request.expectContinue);
        CHECK_FALSE(parseHttpRequest("POST /x HTTP/1.1\r\nContent-Length: 5\r\nExpect: something\r\n\r\n").request.expectContinue);
        // An oversized Content-Length is refused from the head alone (413, not 100).
        CHECK(parseHttpRequest("POST /x HTTP/1.1\r\nContent-Length: 131073\r\nExpect: 100-continue\r\n\r\n").error.status == 413);
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

    TEST_CASE("user paths (Azure Web PubSub user IDs, docs/webpubsub.md, Users), with and without a stage") {
        ManagementPath u = parseManagementPath("/@users/alice%40example.com");
        CHECK(u.target == ManagementTarget::User);
        CHECK(u.user == "alice@example.com");
        CHECK(parseManagementPath("/prod/@users/bob").user == "bob");
        CHECK(parseManagementPath("/@users").target == ManagementTarget::Unknown);
        CHECK(parseManagementPath("/@users/a/b").error == "expected /@users/{userId}");
    }

    TEST_CASE("a malformed percent-escape or an encoded NUL is bad encoding, not an unknown path (issue 18)") {
        for (const char *p : {"/@connections/%00bad", "/@connections/%zz", "/@connections/a%0", "/@connections/ab%",
                              "/prod/@connections/%G1", "/@groups/g%00/connections/abc", "/%00/@connections/abc"}) {
            CAPTURE(p);
            ManagementPath mp = parseManagementPath(p);
            CHECK(mp.target == ManagementTarget::Unknown);
            CHECK(mp.badEncoding);
            CHECK(mp.error.find("percent-encoding") != std::string::npos);
        }
        CHECK_FALSE(parseManagementPath("/nothing").badEncoding);
        CHECK_FALSE(parseManagementPath("/@connections/a/b").badEncoding);
        bool ok = true;
        CHECK(percentDecode("a%00b", &ok).find('\0') == std::string::npos);
        CHECK_FALSE(ok);
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
