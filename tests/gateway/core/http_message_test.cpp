// The one HTTP/1.1 message parser (core/http_message): requests and responses, fed whole, one byte at a
// time and in random pieces (the same result each way), chunked bodies with extensions and trailers, bad
// chunk sizes, oversized heads and bodies, and the strict line rules (obs-fold, bare LF) against the
// tolerant ones used for backend responses. Also base64 decoding.
#include "base64.h"
#include "http_message.h"
#include "text.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace wsgw;

namespace {

struct Outcome {
    HttpParseState state = HttpParseState::NeedMore;
    HttpParseError error;
    HttpMessageHead head;
    std::string body;
    size_t consumed = 0;
    HttpBodyFraming framing = HttpBodyFraming::None;
};

Outcome take(HttpMessageParser &p, HttpParseState s) {
    Outcome o;
    o.state = s;
    o.error = p.error();
    o.head = p.head();
    o.body = p.body();
    o.consumed = p.consumed();
    o.framing = p.framing();
    return o;
}

// Feeds `bytes` in pieces whose ends are `cuts` (ascending), then closes if `close`; stops at the first
// answer that is not NeedMore, as a server would.
Outcome feedInPieces(const HttpParserOptions &options, std::string_view bytes, const std::vector<size_t> &cuts, bool close) {
    HttpMessageParser p(options);
    HttpParseState s = HttpParseState::NeedMore;
    for (size_t end : cuts) {
        s = p.feed(bytes.substr(0, end));
        if (s != HttpParseState::NeedMore) return take(p, s);
    }
    s = close ? p.finish(bytes) : p.feed(bytes);
    return take(p, s);
}

void checkSame(const Outcome &a, const Outcome &b) {
    REQUIRE(static_cast<int>(a.state) == static_cast<int>(b.state));
    CHECK(a.error.status == b.error.status);
    CHECK(a.error.reason == b.error.reason);
    CHECK(a.head.method == b.head.method);
    CHECK(a.head.target == b.head.target);
    CHECK(a.head.status == b.head.status);
    CHECK(a.head.headers == b.head.headers);
    CHECK(a.body == b.body);
    CHECK(a.consumed == b.consumed);
}

// The same result whole, a byte at a time, and in 20 random splits.
Outcome parseEveryWay(const HttpParserOptions &options, std::string_view bytes, bool close = false) {
    Outcome whole = feedInPieces(options, bytes, {}, close);
    std::vector<size_t> each;
    for (size_t i = 0; i < bytes.size(); ++i) each.push_back(i);
    checkSame(feedInPieces(options, bytes, each, close), whole);
    std::mt19937 rng(static_cast<unsigned>(bytes.size()));
    for (int round = 0; round < 20; ++round) {
        std::vector<size_t> cuts;
        for (size_t at = 0; at < bytes.size();) {
            at += 1 + rng() % 9;
            if (at < bytes.size()) cuts.push_back(at);
        }
        checkSame(feedInPieces(options, bytes, cuts, close), whole);
    }
    return whole;
}

HttpParserOptions requestOptions(size_t maxBody = 131072) {
    HttpParserOptions o;
    o.maxBodyBytes = maxBody;
    o.maxChunkedWireBytes = 2 * maxBody + 65536;
    return o;
}

HttpParserOptions responseOptions() {
    HttpParserOptions o;
    o.kind = HttpMessageKind::Response;
    o.maxHeadBytes = 65536;
    o.maxBodyBytes = 1 << 20;
    o.tolerant = true;
    return o;
}

const std::string kChunkedHead = "POST /in HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

}  // namespace

TEST_SUITE("http_message") {
    TEST_CASE("a request with Content-Length, the same every way it is split, and the pipelined bytes left") {
        std::string req = "POST /a/b?x=1 HTTP/1.1\r\nHost: example\r\nX-Empty:\r\nContent-Length:  5 \r\n\r\nhello";
        Outcome o = parseEveryWay(requestOptions(), req + "GET / HTTP/1.1\r\n\r\n");
        REQUIRE(o.state == HttpParseState::Complete);
        CHECK(o.head.method == "POST");
        CHECK(o.head.target == "/a/b?x=1");
        CHECK(o.head.version == "HTTP/1.1");
        CHECK(*o.head.header("content-length") == "5");
        CHECK(*o.head.header("x-empty") == "");
        CHECK(o.head.length == req.size() - 5);
        CHECK(o.body == "hello");
        CHECK(o.consumed == req.size());
        CHECK(o.framing == HttpBodyFraming::ContentLength);
        // Every proper prefix needs more.
        for (size_t n = 0; n < req.size(); ++n) {
            HttpMessageParser p(requestOptions());
            CHECK(p.feed(std::string_view(req).substr(0, n)) == HttpParseState::NeedMore);
        }
    }

    TEST_CASE("a response with Content-Length, chunked, to the close, and with no body") {
        Outcome len = parseEveryWay(responseOptions(), "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP");
        REQUIRE(len.state == HttpParseState::Complete);
        CHECK(len.head.status == 201);
        CHECK(len.body == "ok");
        CHECK(len.consumed == 45);
        Outcome chunked = parseEveryWay(responseOptions(),
                                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6;ext=1\r\npart1-\r\n5\r\npart2\r\n0\r\nX-T: 1\r\n\r\n");
        REQUIRE(chunked.state == HttpParseState::Complete);
        CHECK(chunked.body == "part1-part2");
        std::string toClose = "HTTP/1.0 200 OK\r\nServer: s\r\n\r\nall of it";
        CHECK(parseEveryWay(responseOptions(), toClose).state == HttpParseState::NeedMore);
        Outcome closed = parseEveryWay(responseOptions(), toClose, /*close=*/true);
        REQUIRE(closed.state == HttpParseState::Complete);
        CHECK(closed.body == "all of it");
        CHECK(closed.framing == HttpBodyFraming::UntilClose);
        for (const char *noBody : {"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n",
                                   "HTTP/1.1 304 Not Modified\r\n\r\n"}) {
            Outcome o = parseEveryWay(responseOptions(), noBody);
            REQUIRE(o.state == HttpParseState::Complete);
            CHECK(o.body.empty());
            CHECK(o.consumed == std::string_view(noBody).size());
        }
    }

    TEST_CASE("chunked request bodies: extensions and trailers are read and dropped, split anywhere") {
        std::string body = "5;name=value;flag\r\nhello\r\nB \r\n 0123456789\r\n1;q=\"a b\"\r\n!\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n";
        Outcome o = parseEveryWay(requestOptions(), kChunkedHead + body + "NEXT");
        REQUIRE(o.state == HttpParseState::Complete);
        CHECK(o.body == "hello 0123456789!");
        CHECK(o.framing == HttpBodyFraming::Chunked);
        CHECK(o.consumed == kChunkedHead.size() + body.size());
        CHECK(o.head.header("X-Sum") == nullptr);  // trailers never become headers
    }

    TEST_CASE("bad chunk sizes and framing: 400 naming the byte of the chunked body; the same split or whole") {
        struct Case { const char *body; const char *reasonHas; };
        const Case cases[] = {
            {"zz\r\n", "expected hexadecimal digits, got 'z'"},
            {"\r\n", "expected hexadecimal digits"},
            {"-1\r\n", "got '-'"},
            {"5x\r\nhello\r\n", "after '5', got 'x'"},
            {"5 6\r\n", "expected ';' or CRLF after the size"},
            {"5\nhello\r\n", "got 0x0A"},
            {"5\r\rhello", "CR not followed by LF"},
            {"5;a\x01\r\n", "chunk extension"},
            {"3\r\nhello\r\n0\r\n\r\n", "not followed by CRLF"},
            {"0\r\nno colon\r\n\r\n", "expected 'Name: value'"},
            {"0\r\n: v\r\n\r\n", "empty field name"},
        };
        for (const Case &c : cases) {
            CAPTURE(c.body);
            Outcome o = parseEveryWay(requestOptions(), kChunkedHead + c.body);
            REQUIRE(o.state == HttpParseState::Error);
            CHECK(o.error.status == 400);
            CHECK(o.error.kind == HttpErrorKind::BadChunk);
            CHECK_MESSAGE(o.error.reason.find(c.reasonHas) != std::string::npos, o.error.reason);
            CHECK(o.error.reason.find(" of the chunked body") != std::string::npos);
        }
        Outcome at = parseEveryWay(requestOptions(), kChunkedHead + "2\r\nab\r\nq\r\n");
        CHECK(at.error.reason.find("at byte 7 of the chunked body") != std::string::npos);
        Outcome longLine = parseEveryWay(requestOptions(), kChunkedHead + "5;" + std::string(5000, 'e'));
        CHECK(longLine.error.status == 400);
        CHECK(longLine.error.reason.find("longer than 4096 bytes") != std::string::npos);
    }

    TEST_CASE("oversized: head 431, header count 431, declared and decoded body 413, trailers 431") {
        HttpParserOptions small = requestOptions(10);
        small.maxHeadBytes = 64;
        small.maxHeaders = 3;
        small.maxTrailerBytes = 16;
        Outcome head = parseEveryWay(small, "GET / HTTP/1.1\r\nCookie: " + std::string(60, 'c') + "\r\n\r\n");
        CHECK(head.error.status == 431);
        CHECK(head.error.kind == HttpErrorKind::HeadTooLarge);
        CHECK(head.error.reason.find("request head larger than 64 bytes") != std::string::npos);
        // A head of exactly the limit is accepted.
        std::string exact = "GET / HTTP/1.1\r\nA: " + std::string(64 - 23, 'a') + "\r\n\r\n";
        REQUIRE(exact.size() == 64);
        CHECK(parseEveryWay(small, exact).state == HttpParseState::Complete);
        Outcome many = parseEveryWay(small, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
        CHECK(many.error.status == 431);
        CHECK(many.error.reason.find("more than 3 header lines") != std::string::npos);
        CHECK(parseEveryWay(small, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n").error.kind == HttpErrorKind::ContentLengthTooLarge);
        CHECK(parseEveryWay(small, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789").state == HttpParseState::Complete);
        Outcome decoded = parseEveryWay(small, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n");
        CHECK(decoded.error.status == 413);
        CHECK(decoded.error.reason.find("decodes to more than 10 bytes") != std::string::npos);
        CHECK(parseEveryWay(small, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + std::string(20, 't'))
                  .error.status == 431);
        HttpParserOptions resp = responseOptions();
        resp.maxBodyBytes = 4;
        CHECK(parseEveryWay(resp, "HTTP/1.1 200 OK\r\n\r\n12345").error.kind == HttpErrorKind::BodyTooLarge);
    }

    TEST_CASE("framing rules of requests: smuggling shapes are refused with 400/501") {
        struct Case { const char *bytes; int status; HttpErrorKind kind; };
        const Case cases[] = {
            {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, HttpErrorKind::BadTransferEncoding},
            {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, HttpErrorKind::BadTransferEncoding},
            {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, HttpErrorKind::BadTransferEncoding},
            {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, HttpErrorKind::UnsupportedTransferCoding},
            {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, HttpErrorKind::ConflictingContentLength},
            {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, HttpErrorKind::BadContentLength},
            {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, HttpErrorKind::EmptyContentLength},
        };
        for (const Case &c : cases) {
            CAPTURE(c.bytes);
            Outcome o = parseEveryWay(requestOptions(), c.bytes);
            REQUIRE(o.state == HttpParseState::Error);
            CHECK(o.error.status == c.status);
            CHECK(o.error.kind == c.kind);
        }
        // Two Transfer-Encoding headers are one list: the reason names all of it, not the first header alone.
        Outcome two = parseEveryWay(requestOptions(), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n");
        REQUIRE(two.state == HttpParseState::Error);
        CHECK(two.error.status == 400);
        CHECK(two.error.reason == "Transfer-Encoding must end with chunked, got \"chunked, identity\" (all Transfer-Encoding headers together)");
        // "Transfer-Encoding: Chunked ; x=1" is chunked (case and parameters do not matter).
        Outcome ok = parseEveryWay(requestOptions(), "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked ; x=1\r\n\r\n0\r\n\r\n");
        CHECK(ok.state == HttpParseState::Complete);
    }

    TEST_CASE("strict lines: obs-fold, bare LF, bare CR and control bytes are refused where they are") {
        struct Case { std::string bytes; const char *reasonHas; };
        const std::vector<Case> cases = {
            {"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", "malformed header line 2: a line starting with a space or tab (obs-fold"},
            {"GET / HTTP/1.1\r\n\tA: 1\r\n\r\n", "header line 1"},
            {"GET / HTTP/1.1\nA: 1\n\n", "bare LF at byte 14"},
            {"GET / HTTP/1.1\r\nA: 1\n", "bare LF at byte 20"},
            {"GET / HTTP/1.1\rA: 1\r\n\r\n", "CR not followed by LF at byte 14"},
            {std::string("GET / HTTP/1.1\r\nA: \0\r\n\r\n", 24), "control character 0x00 at byte 19"},
            {"GET / HTTP/1.1\r\nA B: 1\r\n\r\n", "whitespace between the header name and ':'"},
            {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "expected \"Name: value\", got \"NoColon\""},
            {"GET / HTTP/1.1\r\n: v\r\n\r\n", "empty header name"},
            {"GET / HTTP/1.1\r\nA(B): v\r\n\r\n", "has the byte 0x28"},
            {"GARBAGE\r\n\r\n", "malformed request line"},
            {"GET  / HTTP/1.1\r\n\r\n", "malformed request line"},
            {"GET x HTTP/1.1\r\n\r\n", "origin-form"},
            {"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "byte 0xC3 at offset 4"},
        };
        for (const Case &c : cases) {
            CAPTURE(c.bytes);
            Outcome o = parseEveryWay(requestOptions(), c.bytes);
            REQUIRE(o.state == HttpParseState::Error);
            CHECK(o.error.status == 400);
            CHECK_MESSAGE(o.error.reason.find(c.reasonHas) != std::string::npos, o.error.reason);
            for (char ch : o.error.reason) CHECK((ch >= 0x20 && ch < 0x7f));
        }
        // Refused as soon as the offending byte is there, without waiting for the blank line.
        HttpMessageParser p(requestOptions());
        CHECK(p.feed("GET / HTTP/1.1\r\nA: 1\n") == HttpParseState::Error);
        HttpMessageParser q(requestOptions());
        CHECK(q.feed("GET / HTTP/1.1\r") == HttpParseState::NeedMore);  // the LF may still come
    }

    TEST_CASE("tolerant (responses): lines that are not fields are skipped, names trimmed, chunk framing loose") {
        Outcome o = parseEveryWay(responseOptions(),
                                  "HTTP/1.1 200 OK\r\nJunk line\r\n folded: x\r\nContent-Length : 3\r\nX: a\nb\r\n\r\nabc");
        REQUIRE(o.state == HttpParseState::Complete);
        CHECK(o.body == "abc");
        CHECK(*o.head.header("folded") == "x");
        CHECK(*o.head.header("X") == "a\nb");
        Outcome loose = parseEveryWay(responseOptions(),
                                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3zz\r\nabcXY0\r\n\r\n");
        REQUIRE(loose.state == HttpParseState::Complete);
        CHECK(loose.body == "abc");
        CHECK(parseEveryWay(responseOptions(), "SMTP ready\r\n\r\n").error.kind == HttpErrorKind::BadStartLine);
        CHECK(parseEveryWay(responseOptions(), "HTTP/1.1 2x0 OK\r\n\r\n").error.kind == HttpErrorKind::BadStatusCode);
        CHECK(parseEveryWay(responseOptions(), "HTTP/1.1 099 Low\r\n\r\n").error.kind == HttpErrorKind::BadStatusCode);
    }

    TEST_CASE("finish(): a message cut off by the close is Truncated; the request line check may refuse") {
        CHECK(parseEveryWay(responseOptions(), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", true).error.kind ==
              HttpErrorKind::Truncated);
        CHECK(parseEveryWay(responseOptions(), "", true).error.kind == HttpErrorKind::Truncated);
        HttpParserOptions o = requestOptions();
        o.checkRequestLine = [](const HttpMessageHead &head, HttpParseError *e) {
            if (head.version == "HTTP/1.1") return true;
            e->status = 505;
            e->reason = "no";
            return false;
        };
        Outcome refused = parseEveryWay(o, "GET x HTTP/2.0\r\n");  // the version is checked before the target
        CHECK(refused.error.status == 505);
        CHECK(refused.error.kind == HttpErrorKind::Refused);
    }

    TEST_CASE("reset() reads the next message with the same options") {
        HttpMessageParser p(requestOptions());
        std::string two = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        REQUIRE(p.feed(two) == HttpParseState::Complete);
        size_t used = p.consumed();
        p.reset();
        REQUIRE(p.feed(std::string_view(two).substr(used)) == HttpParseState::Complete);
        CHECK(p.head().target == "/2");
    }
}

TEST_SUITE("base64") {
    TEST_CASE("base64 decoding in either alphabet, with or without padding, canonical or not") {
        std::string out;
        CHECK(decodeBase64("Zm9vYg", out, true, false, false, true));
        CHECK(out == "foob");
        CHECK_FALSE(decodeBase64("Zm9vYg==", out, true, false, false, true));  // padding not allowed
        CHECK(decodeBase64("Zm9vYg==", out, true, true, true, false));
        CHECK(out == "foob");
        CHECK_FALSE(decodeBase64("Zm9vYh", out, true, false, false, true));  // non-zero trailing bits
        CHECK(decodeBase64("Zm9vYh", out, true, false, false, false));
        CHECK(decodeBase64("-_-_", out, true, false, false, true));
        CHECK_FALSE(decodeBase64("+/+/", out, true, false, false, true));
        CHECK(decodeBase64("+/+/", out, false, true, false, true));
        const unsigned char bytes[] = {0xfb, 0xff, 0x00, 0x41};
        CHECK(decodeBase64(encodeBase64(bytes, 4, kBase64Url, false), out, true, false, false, true));
        CHECK(out == std::string("\xfb\xff\x00\x41", 4));
    }
}
