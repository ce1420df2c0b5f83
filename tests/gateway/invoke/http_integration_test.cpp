// The HTTP backend client's pure parts: backend URLs and HTTP/1.x responses (lengths, chunks, bodies to
// the close, interim 1xx answers, keep-alive) including the malformed ones a backend may send.
#include "http_integration.h"

#include <doctest/doctest.h>

using namespace wsgw;

namespace {

struct ParsedReply {
    bool done = false;
    HttpReply reply;
    size_t consumed = 0;
    bool keepAlive = false;
    std::string error;
};

ParsedReply parseReply(std::string_view bytes, bool closed = false) {
    ParsedReply p;
    p.done = parseHttpResponse(bytes, closed, p.reply, p.consumed, p.keepAlive, p.error);
    return p;
}

}  // namespace

TEST_SUITE("http_integration") {
    TEST_CASE("backend URLs") {
        auto u = std::get<HttpUrl>(HttpUrl::parse("http://127.0.0.1:8081/quote?x=1"));
        CHECK(u.host == "127.0.0.1");
        CHECK(u.port == 8081);
        CHECK(u.path == "/quote?x=1");
        auto d = std::get<HttpUrl>(HttpUrl::parse("http://backend"));
        CHECK(d.port == 80);
        CHECK(d.path == "/");
        auto v6 = std::get<HttpUrl>(HttpUrl::parse("http://[::1]:9000/a"));
        CHECK(v6.host == "::1");
        CHECK(v6.port == 9000);
        CHECK(std::get<std::string>(HttpUrl::parse("https://x/")).find("https:// backends are not spoken yet") != std::string::npos);
        CHECK(std::holds_alternative<std::string>(HttpUrl::parse("ftp://x/")));
        CHECK(std::holds_alternative<std::string>(HttpUrl::parse("http://:80/")));
        CHECK(std::holds_alternative<std::string>(HttpUrl::parse("http://x:99999/")));
        CHECK(std::holds_alternative<std::string>(HttpUrl::parse("http://x/a b")));
        // The rules are core/backend_url's, shared with ws:// URLs: only :port after ']', a port in digits.
        CHECK(std::get<std::string>(HttpUrl::parse("http://[::1]x/")).find("expected ':port'") != std::string::npos);
        CHECK(std::holds_alternative<std::string>(HttpUrl::parse("http://x:/")));
        CHECK(std::holds_alternative<std::string>(HttpUrl::parse("http://x:+80/")));
        CHECK(std::get<HttpUrl>(HttpUrl::parse("http://x:8080")).text == "http://x:8080");
    }

    TEST_CASE("Content-Length, keep-alive, and what follows the response is left") {
        ParsedReply p = parseReply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1");
        REQUIRE(p.done);
        CHECK(p.reply.status == 200);
        CHECK(p.reply.body == "hello");
        CHECK(p.consumed == 43);
        CHECK(p.keepAlive);
        CHECK_FALSE(parseReply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel").done);
        ParsedReply cut = parseReply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", true);
        CHECK(cut.error == "the response body was cut off");
        ParsedReply closing = parseReply("HTTP/1.1 404 Not Found\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n");
        REQUIRE(closing.done);
        CHECK(closing.reply.status == 404);
        CHECK_FALSE(closing.keepAlive);
    }

    TEST_CASE("chunked bodies, with extensions and trailers") {
        ParsedReply p = parseReply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6;ext=1\r\npart1-\r\n5\r\npart2\r\n0\r\nX-T: 1\r\n\r\n");
        REQUIRE(p.done);
        CHECK(p.reply.body == "part1-part2");
        CHECK_FALSE(parseReply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\npart1-\r\n").done);
        CHECK(parseReply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false).error == "a malformed chunk size");
        CHECK(parseReply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n").error == "the response body is over 16 MiB");
    }

    TEST_CASE("no length: the body runs to the close; 1xx answers are skipped; 204 has no body") {
        CHECK_FALSE(parseReply("HTTP/1.0 200 OK\r\n\r\nabc").done);
        ParsedReply p = parseReply("HTTP/1.0 200 OK\r\n\r\nabc", true);
        REQUIRE(p.done);
        CHECK(p.reply.body == "abc");
        CHECK_FALSE(p.keepAlive);
        ParsedReply c = parseReply("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
        REQUIRE(c.done);
        CHECK(c.reply.status == 201);
        CHECK(c.reply.body == "ok");
        ParsedReply n = parseReply("HTTP/1.1 204 No Content\r\n\r\n");
        REQUIRE(n.done);
        CHECK(n.reply.body.empty());
    }

    TEST_CASE("malformed responses are errors, never reads past the bytes") {
        CHECK(parseReply("SMTP ready\r\n\r\n").error == "not an HTTP/1.x response");
        CHECK(parseReply("HTTP/1.1 2x0 OK\r\n\r\n").error == "a malformed status code");
        CHECK(parseReply("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").error == "a malformed or oversized Content-Length");
        CHECK(parseReply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").error == "conflicting Content-Length headers");
        CHECK(parseReply("", true).error == "the backend closed the connection without answering");
        CHECK(parseReply(std::string(70000, 'x')).error == "the response head is over 64 KiB");
    }

    TEST_CASE("the reader: a response cut anywhere reads the same as whole, and what follows is left over") {
        const std::string whole = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nNEXT";
        for (size_t step : {size_t(1), size_t(2), size_t(7), whole.size()}) {
            HttpResponseReader reader;
            HttpResponseReader::State state = HttpResponseReader::State::NeedMore;
            size_t fed = 0;
            for (; fed < whole.size() && state == HttpResponseReader::State::NeedMore; fed += step)
                state = reader.append(std::string_view(whole).substr(fed, step), false);
            fed = std::min(fed, whole.size());
            REQUIRE(state == HttpResponseReader::State::Complete);
            CHECK(reader.reply().status == 200);
            CHECK(reader.reply().body == "abcde");
            CHECK(reader.keepAlive());
            CHECK(reader.leftover() == fed - (whole.size() - 4));  // what was read past the response ("NEXT" or part)
            CHECK(reader.append("more", false) == HttpResponseReader::State::Complete);  // done: nothing else read
        }
    }

    TEST_CASE("the reader: at most 32 interim answers, then an error; an endless body is bounded") {
        std::string interim;
        for (int i = 0; i < HttpResponseReader::kMaxInterim; ++i) interim += "HTTP/1.1 102 Processing\r\n\r\n";
        ParsedReply ok = parseReply(interim + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        REQUIRE(ok.done);
        CHECK(ok.reply.body == "ok");
        ParsedReply tooMany = parseReply(interim + "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        CHECK_FALSE(tooMany.done);
        CHECK(tooMany.error == "more than 32 interim (1xx) responses");

        // A million one-byte chunks: 16 MiB of body would be 7x that on the wire, so the framing is bounded too.
        HttpResponseReader reader;
        reader.append("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false);
        std::string chunks;
        for (int i = 0; i < 4096; ++i) chunks += "1\r\nx\r\n";
        HttpResponseReader::State state = HttpResponseReader::State::NeedMore;
        size_t fed = 0;
        while (state == HttpResponseReader::State::NeedMore && fed < (64u << 20)) {
            state = reader.append(chunks, false);
            fed += chunks.size();
        }
        REQUIRE(state == HttpResponseReader::State::Error);
        CHECK(fed <= (32u << 20) + 65536 + chunks.size());
        CHECK(reader.error().find("takes over 32 MiB with its chunk framing") != std::string::npos);
    }
}
