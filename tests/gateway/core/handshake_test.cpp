#include "handshake.h"
#include "lws_upgrade_rules.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

using namespace wsgw;

namespace {

// What Chrome 131 sends for `new WebSocket("ws://localhost:8080/chat?room=lobby&token=a%20b")` from a page
// on localhost:3000.
const std::string kChromeHead =
    "GET /chat?room=lobby&token=a%20b HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:3000\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=abc123; theme=dark\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

// A minimal valid upgrade (wscat's header set) with `extra` header lines inserted before the blank line.
std::string upgradeWith(std::string_view extra, std::string_view requestLine = "GET / HTTP/1.1") {
    std::string s(requestLine);
    s += "\r\nHost: gw.example:8080\r\n";
    s += extra;
    s += "\r\n";
    return s;
}

const char *const kWscatHeaders =
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n";

HeadParse parse(std::string_view s, size_t max = 8192) { return parseUpgradeHead(s, max); }

bool contains(const std::string &hay, std::string_view needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE("handshake") {

TEST_CASE("a Chrome upgrade parses into method, target, path, query and every header as received") {
    HeadParse p = parse(kChromeHead);
    REQUIRE(p.result == HeadResult::Upgrade);
    const UpgradeRequest &r = p.request;
    CHECK(r.method == "GET");
    CHECK(r.target == "/chat?room=lobby&token=a%20b");
    CHECK(r.path == "/chat");
    CHECK(r.rawQuery == "room=lobby&token=a%20b");
    CHECK(r.headLength == kChromeHead.size());
    HeaderList expected = {
        {"Host", "localhost:8080"},
        {"Connection", "Upgrade"},
        {"Pragma", "no-cache"},
        {"Cache-Control", "no-cache"},
        {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
                       "Safari/537.36"},
        {"Upgrade", "websocket"},
        {"Origin", "http://localhost:3000"},
        {"Sec-WebSocket-Version", "13"},
        {"Accept-Encoding", "gzip, deflate, br, zstd"},
        {"Accept-Language", "en-US,en;q=0.9"},
        {"Cookie", "session=abc123; theme=dark"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"},
    };
    CHECK(r.headers == expected);
    REQUIRE(r.header("sec-websocket-extensions") != nullptr);
    CHECK(*r.header("sec-websocket-extensions") == "permessage-deflate; client_max_window_bits");
    REQUIRE(r.header("COOKIE") != nullptr);
    CHECK(*r.header("COOKIE") == "session=abc123; theme=dark");
    CHECK(r.header("Sec-WebSocket-Protocol") == nullptr);
    CHECK(r.header("Host ") == nullptr);
}

TEST_CASE("header(): the first of repeated headers, names kept as received, values trimmed of OWS") {
    HeadParse p = parse(upgradeWith(std::string(kWscatHeaders) +
                                    "x-api-key:\t  key-one \t\r\n"
                                    "X-Api-Key: key-two\r\n"
                                    "X-Empty:\r\n"
                                    "X-Inner:  a  b  \r\n"));
    REQUIRE(p.result == HeadResult::Upgrade);
    const UpgradeRequest &r = p.request;
    REQUIRE(r.header("X-API-KEY") != nullptr);
    CHECK(*r.header("X-API-KEY") == "key-one");
    REQUIRE(r.header("x-empty") != nullptr);
    CHECK(r.header("x-empty")->empty());
    CHECK(*r.header("x-inner") == "a  b");
    REQUIRE(r.headers.size() == 9);
    CHECK(r.headers[5] == std::pair<std::string, std::string>{"x-api-key", "key-one"});
    CHECK(r.headers[6] == std::pair<std::string, std::string>{"X-Api-Key", "key-two"});
    CHECK(r.path == "/");
    CHECK(r.rawQuery.empty());
}

TEST_CASE("target forms: no query, empty query, query with '?' inside") {
    HeadParse p = parse(upgradeWith(kWscatHeaders, "GET /a/b HTTP/1.1"));
    REQUIRE(p.result == HeadResult::Upgrade);
    CHECK(p.request.path == "/a/b");
    CHECK(p.request.rawQuery.empty());

    p = parse(upgradeWith(kWscatHeaders, "GET /a? HTTP/1.1"));
    REQUIRE(p.result == HeadResult::Upgrade);
    CHECK(p.request.target == "/a?");
    CHECK(p.request.path == "/a");
    CHECK(p.request.rawQuery.empty());

    p = parse(upgradeWith(kWscatHeaders, "GET /?x=1?2&y HTTP/1.1"));
    REQUIRE(p.result == HeadResult::Upgrade);
    CHECK(p.request.path == "/");
    CHECK(p.request.rawQuery == "x=1?2&y");
}

TEST_CASE("Firefox and curl variants of Connection/Upgrade are accepted") {
    // Firefox: Connection carries keep-alive too; RFC 7230 allows the list split over several headers.
    const char *firefox =
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
        "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n";
    CHECK(parse(upgradeWith(firefox)).result == HeadResult::Upgrade);
    const char *split =
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
        "Connection: keep-alive\r\nconnection: UPGRADE ,\r\nUpgrade: WebSocket\r\n";
    CHECK(parse(upgradeWith(split)).result == HeadResult::Upgrade);
    // An empty list element before the token: libwebsockets' list reader gives up there (after $connect).
    const char *emptyElement =
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
        "Connection: keep-alive\r\nconnection: ,UPGRADE ,\r\nUpgrade: WebSocket\r\n";
    HeadParse refused = parse(upgradeWith(emptyElement));
    REQUIRE(refused.result == HeadResult::Refuse);
    CHECK(refused.refusal.status == 400);
    CHECK_MESSAGE(contains(refused.refusal.reason, "\"keep-alive,  ,UPGRADE ,\""), refused.refusal.reason);
    const char *curl =
        "User-Agent: curl/8.5.0\r\nAccept: */*\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: 7Xg5vbmaX7rmM8gk8qYSUw==\r\nConnection: Upgrade\r\n";
    CHECK(parse(upgradeWith(curl)).result == HeadResult::Upgrade);
}

TEST_CASE("bytes after the blank line (a pipelined first frame) are left for the WebSocket layer") {
    std::string head = upgradeWith(kWscatHeaders);
    std::string frame("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\x00\x0a\x0d", 14);
    HeadParse p = parse(head + frame);
    REQUIRE(p.result == HeadResult::Upgrade);
    CHECK(p.request.headLength == head.size());
}

TEST_CASE("byte-by-byte feeding gives NeedMore until the last byte of the head") {
    for (size_t n = 0; n < kChromeHead.size(); ++n) {
        HeadParse p = parse(std::string_view(kChromeHead).substr(0, n));
        if (p.result != HeadResult::NeedMore) {
            FAIL("prefix of " << n << " bytes gave " << static_cast<int>(p.result) << ": " << p.refusal.reason);
        }
    }
    HeadParse p = parse(kChromeHead);
    CHECK(p.result == HeadResult::Upgrade);
    CHECK(p.request.headLength == kChromeHead.size());
}

TEST_CASE("a refusal never turns into something else as more bytes arrive") {
    // Each prefix is NeedMore or exactly the final refusal: the listener can answer as early as possible.
    const std::vector<std::string> heads = {
        upgradeWith("Upgrade: websocket\r\n", "GET / HTTP/1.0"),
        upgradeWith("Upgrade: websocket\r\n Connection: Upgrade\r\n"),
        std::string("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n"),
        upgradeWith("Connection: Upgrade\r\n"),
    };
    for (const std::string &h : heads) {
        HeadParse whole = parse(h);
        REQUIRE(whole.result == HeadResult::Refuse);
        bool refusedEarly = false;
        for (size_t n = 0; n < h.size(); ++n) {
            HeadParse p = parse(std::string_view(h).substr(0, n));
            if (p.result == HeadResult::NeedMore) continue;
            REQUIRE(p.result == HeadResult::Refuse);
            CHECK(p.refusal.status == whole.refusal.status);
            CHECK(p.refusal.reason == whole.refusal.reason);
            refusedEarly = true;
        }
        // Only the last head (a missing header) needs the blank line to be known bad.
        CHECK(refusedEarly == (&h != &heads.back()));
    }
}

TEST_CASE("a plain HTTP request gets 426 with a hint naming its Host and the upgrade headers") {
    HeadParse p = parse("GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n");
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 426);
    CHECK(p.refusal.reason ==
          "this is a WebSocket endpoint: connect with a WebSocket client, e.g. wscat -c ws://localhost:8080/");
    HeaderList expected = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Version", "13"}};
    CHECK(p.refusal.extraHeaders == expected);

    p = parse("POST /orders HTTP/1.1\r\nhost: api.example.com\r\nContent-Length: 2\r\n\r\n{}");
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 426);
    CHECK(contains(p.refusal.reason, "ws://api.example.com/"));

    p = parse("GET / HTTP/1.1\r\n\r\n");
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 426);
    CHECK(contains(p.refusal.reason, "wscat -c ws://HOST/"));
}

struct RefusalCase {
    const char *name;
    std::string head;
    int status;
    std::vector<std::string> words;
    HeaderList extra;
};

TEST_CASE("query parameters and headers up to the fragment budget are accepted") {
    std::string q;
    for (int i = 0; i < 70; ++i) q += (i ? "&p" : "p") + std::to_string(i) + "=v";
    HeadParse p = parse(upgradeWith(std::string(kWscatHeaders), "GET /?" + q + " HTTP/1.1"));
    CHECK(p.result == HeadResult::Upgrade);
    CHECK(p.request.rawQuery.size() == q.size());
    HeadParse empties = parse(upgradeWith(std::string(kWscatHeaders), "GET /?&&&&a=1&& HTTP/1.1"));
    CHECK(empties.result == HeadResult::Upgrade);
}

TEST_CASE("each malformed upgrade is refused with its status, a reason naming the fault, and headers") {
    const std::string key = "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n";
    const std::string ver = "Sec-WebSocket-Version: 13\r\n";
    const std::string conn = "Connection: Upgrade\r\n";
    const std::string upg = "Upgrade: websocket\r\n";
    const std::vector<RefusalCase> cases = {
        {"Upgrade to another protocol", upgradeWith(key + ver + conn + "Upgrade: h2c\r\n"), 400,
         {"Upgrade header is \"h2c\"", "websocket"}, {}},
        {"Upgrade listing another protocol first", upgradeWith(key + ver + conn + "Upgrade: h2c, websocket\r\n"), 400,
         {"Upgrade header is \"h2c, websocket\"", "nothing else"}, {}},
        {"88 query parameters (libwebsockets would drop it after $connect)",
         upgradeWith(key + ver + conn + upg, "GET /?" + [] {
             std::string q;
             for (int i = 0; i < 88; ++i) q += (i ? "&a" : "a") + std::to_string(i) + "=1";
             return q;
         }() + " HTTP/1.1"),
         431, {"88 query parameters", "need 95 places of its 94", "move the data into the first message"}, {}},
        {"malformed escape in the query (libwebsockets' 403 page after $connect)",
         upgradeWith(key + ver + conn + upg, "GET /?a=%zz HTTP/1.1"), 400,
         {"malformed percent-escape \"%zz\"", "byte 5 of the request target", "%25"}, {}},
        {"a lone % at the end of the path", upgradeWith(key + ver + conn + upg, "GET /a% HTTP/1.1"), 400,
         {"malformed percent-escape \"%\"", "byte 3"}, {}},
        {"an escaped NUL in the query (libwebsockets' silent close after $connect)",
         upgradeWith(key + ver + conn + upg, "GET /?a=%00b HTTP/1.1"), 400, {"escaped NUL byte (%00)", "byte 5"}, {}},
        {"an upgrade with a body (read as frames, it failed as \"not masked\")",
         upgradeWith(key + ver + conn + upg + "Content-Length: 5\r\n"), 400, {"has no body", "Content-Length \"5\""}, {}},
        {"an upgrade with a chunked body", upgradeWith(key + ver + conn + upg + "Transfer-Encoding: chunked\r\n"), 400,
         {"has no body", "Transfer-Encoding \"chunked\""}, {}},
        {"duplicate Upgrade", upgradeWith(key + ver + conn + upg + "Upgrade: websocket\r\n"), 400,
         {"duplicate Upgrade header"}, {}},
        {"POST upgrade", upgradeWith(key + ver + conn + upg, "POST /chat HTTP/1.1"), 405,
         {"method \"POST\"", "must be GET"}, {{"Allow", "GET"}}},
        {"lower-case method", upgradeWith(key + ver + conn + upg, "get / HTTP/1.1"), 405, {"\"get\""},
         {{"Allow", "GET"}}},
        {"missing Connection", upgradeWith(key + ver + upg), 400,
         {"missing Connection header", "Connection: Upgrade"}, {}},
        {"Connection without upgrade", upgradeWith(key + ver + upg + "Connection: keep-alive\r\n"), 400,
         {"\"keep-alive\"", "lacks the token \"Upgrade\""}, {}},
        {"Connection with upgrade only as a substring", upgradeWith(key + ver + upg + "Connection: upgraded\r\n"),
         400, {"\"upgraded\""}, {}},
        {"missing version", upgradeWith(key + conn + upg), 426, {"missing Sec-WebSocket-Version header", "13"},
         {{"Sec-WebSocket-Version", "13"}}},
        {"old version", upgradeWith(key + conn + upg + "Sec-WebSocket-Version: 8\r\n"), 426,
         {"unsupported Sec-WebSocket-Version \"8\"", "only version 13"}, {{"Sec-WebSocket-Version", "13"}}},
        {"version list", upgradeWith(key + conn + upg + "Sec-WebSocket-Version: 13, 8\r\n"), 426, {"\"13, 8\""},
         {{"Sec-WebSocket-Version", "13"}}},
        {"duplicate version", upgradeWith(key + conn + upg + ver + ver), 400,
         {"duplicate Sec-WebSocket-Version header"}, {}},
        {"missing key", upgradeWith(ver + conn + upg), 400,
         {"missing Sec-WebSocket-Key header: a WebSocket client must send it (RFC 6455 4.1)"}, {}},
        {"short key", upgradeWith(ver + conn + upg + "Sec-WebSocket-Key: abc==\r\n"), 400,
         {"invalid Sec-WebSocket-Key \"abc==\"", "16", "24 characters"}, {}},
        {"key of 24 chars without ==", upgradeWith(ver + conn + upg + "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDwAA\r\n"),
         400, {"invalid Sec-WebSocket-Key"}, {}},
        {"key with a non-base64 char", upgradeWith(ver + conn + upg + "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhX-w==\r\n"),
         400, {"invalid Sec-WebSocket-Key"}, {}},
        {"key of 24 bytes", upgradeWith(ver + conn + upg + "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDwx3JJHMbDL1Ez==\r\n"), 400,
         {"invalid Sec-WebSocket-Key"}, {}},
        {"duplicate key", upgradeWith(ver + conn + upg + key + key), 400, {"duplicate Sec-WebSocket-Key header"}, {}},
        {"missing Host", "GET / HTTP/1.1\r\n" + key + ver + conn + upg + "\r\n", 400,
         {"missing Host header", "HTTP/1.1 requires it"}, {}},
        {"two Host headers", upgradeWith(key + ver + conn + upg + "Host: other\r\n"), 400, {"more than one Host"}, {}},
        {"empty Host (libwebsockets' silent close after $connect)", "GET / HTTP/1.1\r\nHost:\r\n" + key + ver + conn + upg + "\r\n",
         400, {"empty Host header", "Host: <host>:<port>"}, {}},
        {"blank Host", "GET / HTTP/1.1\r\nHost: \t \r\n" + key + ver + conn + upg + "\r\n", 400, {"empty Host header"}, {}},
        {"HTTP/1.0", upgradeWith(key + ver + conn + upg, "GET / HTTP/1.0"), 400,
         {"WebSocket needs HTTP/1.1", "\"HTTP/1.0\""}, {}},
        {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, {"WebSocket needs HTTP/1.1", "\"HTTP/2.0\""}, {}},
        {"absolute-form target", upgradeWith(key + ver + conn + upg, "GET http://gw.example/ HTTP/1.1"), 400,
         {"must be a path starting with '/'", "\"http://gw.example/\""}, {}},
        {"asterisk target", upgradeWith(key + ver + conn + upg, "OPTIONS * HTTP/1.1"), 400, {"origin-form"}, {}},
        {"non-ASCII target", upgradeWith(key + ver + conn + upg, "GET /caf\xc3\xa9 HTTP/1.1"), 400,
         {"byte 0xC3 at offset 4", "percent-encode"}, {}},
        {"request line with two parts", upgradeWith(key + ver + conn + upg, "GET /"), 400,
         {"malformed request line", "\"GET /\""}, {}},
        {"double space in request line", upgradeWith(key + ver + conn + upg, "GET  / HTTP/1.1"), 400,
         {"malformed request line"}, {}},
        {"lower-case version", upgradeWith(key + ver + conn + upg, "GET / http/1.1"), 400, {"malformed request line"},
         {}},
        {"method with a non-token char", upgradeWith(key + ver + conn + upg, "G(T / HTTP/1.1"), 400,
         {"malformed request line"}, {}},
        {"empty request line", "\r\nGET / HTTP/1.1\r\n\r\n", 400, {"malformed request line", "got \"\""}, {}},
        {"obs-fold", upgradeWith(key + ver + upg + "Connection: keep-alive,\r\n Upgrade\r\n"), 400,
         {"malformed header line 6", "obs-fold"}, {}},
        {"tab-folded first header", "GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", 400, {"header line 1", "obs-fold"}, {}},
        {"space before colon", upgradeWith(key + ver + conn + "Upgrade : websocket\r\n"), 400,
         {"whitespace between the header name and ':'"}, {}},
        {"header without colon", upgradeWith(key + ver + conn + upg + "JustAWord\r\n"), 400,
         {"expected \"Name: value\"", "\"JustAWord\""}, {}},
        {"empty header name", upgradeWith(key + ver + conn + upg + ": value\r\n"), 400, {"empty header name"}, {}},
        {"header name with a separator", upgradeWith(key + ver + conn + upg + "X(Y): 1\r\n"), 400,
         {"header name \"X(Y)\" has the byte 0x28"}, {}},
        {"NUL in a header value", upgradeWith(key + ver + conn + upg + std::string("X-A: a\0b\r\n", 10)), 400,
         {"control character 0x00"}, {}},
        {"ESC in the request line", upgradeWith(key + ver + conn + upg, "GET /\x1b HTTP/1.1"), 400,
         {"control character 0x1B at byte 5"}, {}},
        {"DEL in a header", upgradeWith(key + ver + conn + upg + "X-A: \x7f\r\n"), 400, {"control character 0x7F"}, {}},
        {"bare LF line endings", "GET / HTTP/1.1\nHost: a\nUpgrade: websocket\n\n", 400,
         {"lines must end with CRLF", "bare LF at byte 14"}, {}},
        {"one bare LF among CRLFs", upgradeWith(key + ver + conn + upg + "X-A: 1\n"), 400, {"lines must end with CRLF"},
         {}},
        {"bare CR", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400, {"CR not followed by LF at byte 14"}, {}},
        {"TLS ClientHello", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400,
         {"TLS handshake", "ws://", "--tls-cert"}, {}},
    };
    for (const RefusalCase &c : cases) {
        CAPTURE(c.name);
        HeadParse p = parse(c.head);
        REQUIRE(p.result == HeadResult::Refuse);
        CHECK(p.refusal.status == c.status);
        for (const std::string &w : c.words) {
            CAPTURE(w);
            CHECK_MESSAGE(contains(p.refusal.reason, w), p.refusal.reason);
        }
        CHECK(p.refusal.extraHeaders == c.extra);
        // Reasons go into logs and a JSON body: printable ASCII only.
        for (char ch : p.refusal.reason) CHECK((ch >= 0x20 && ch < 0x7f));
    }
}

// libwebsockets 4.1.6 reads the head again after $connect and fails some that pass the checks above
// (lws_upgrade_rules.h): each such head is refused here, and the one just inside each limit is accepted.
// kWscatHeaders and Host are 5 header lines libwebsockets knows; the request line costs 2 fragments and a
// query 1 plus 1 per '&' or ';': 94 fragments in all.
namespace {

std::string repeated(std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

std::string withTarget(std::string_view target, std::string_view extra = "") {
    return upgradeWith(std::string(kWscatHeaders) + std::string(extra), "GET " + std::string(target) + " HTTP/1.1");
}

// The wscat head with its Connection line replaced by `connectionLines` (each "Connection: ...\r\n").
std::string withConnection(std::string_view connectionLines) {
    return upgradeWith(std::string("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n") +
                       std::string(connectionLines) + "Upgrade: websocket\r\n");
}

void checkRefused(const std::string &head, int status, std::vector<std::string_view> words) {
    HeadParse p = parse(head);
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == status);
    for (std::string_view w : words) CHECK_MESSAGE(contains(p.refusal.reason, w), p.refusal.reason);
    for (char ch : p.refusal.reason) CHECK((ch >= 0x20 && ch < 0x7f));
}

void checkAccepted(const std::string &head) {
    HeadParse p = parse(head);
    CHECK_MESSAGE(p.result == HeadResult::Upgrade, p.refusal.reason);
}

}  // namespace

TEST_CASE("libwebsockets' fragments: every '&' or ';' of the query counts, empty parameters too") {
    checkAccepted(withTarget("/?" + repeated("a&", 86) + "b"));  // 87 parameters: 94 fragments
    checkRefused(withTarget("/?" + repeated("a&", 87) + "b"), 431, {"88 query parameters", "even an empty one", "95 places of its 94"});
    checkAccepted(withTarget("/?a" + repeated("&", 86)));
    checkRefused(withTarget("/?a" + repeated("&", 87)), 431, {"88 query parameters"});
    checkRefused(withTarget("/?a" + repeated("&", 120) + "b"), 431, {"121 query parameters"});
    checkAccepted(withTarget("/?" + repeated("a;", 86) + "b"));
    checkRefused(withTarget("/?" + repeated("a;", 87) + "b"), 431, {"88 query parameters"});
    checkAccepted(withTarget("/?" + repeated("a%26", 200)));  // an escaped '&' is data
}

TEST_CASE("libwebsockets' fragments: '&' and ';' in the path count, except right after a '/' or a dot segment") {
    checkAccepted(withTarget("/" + repeated("a&", 87)));  // 87 + 2 + 5 = 94
    checkRefused(withTarget("/" + repeated("a&", 88)), 431, {"88 '&' or ';' in the path"});
    checkAccepted(withTarget(repeated("/&", 100)));
    checkAccepted(withTarget(repeated("/.;", 50) + repeated("/..&", 50)));
    checkAccepted(withTarget("/" + repeated("%2F&", 100)));  // an escaped '/' starts a segment too
    checkRefused(withTarget(repeated("/...&", 88)), 431, {"88 '&' or ';' in the path"});
}

TEST_CASE("libwebsockets' fragments: X-Forwarded-For, X-Real-IP and X-Auth-Token are known headers; other X- headers are not") {
    for (std::string name : {"X-Forwarded-For", "X-Real-IP", "x-auth-token"}) {
        CAPTURE(name);
        checkAccepted(upgradeWith(std::string(kWscatHeaders) + repeated(name + ": 1.2.3.4\r\n", 87)));
        checkRefused(upgradeWith(std::string(kWscatHeaders) + repeated(name + ": 1.2.3.4\r\n", 88)), 431,
                     {name + " x88", "93 lines of headers it knows by name", "Host, "});
    }
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + repeated("X-Forwarded-Host: h\r\n", 95)));
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + repeated("X-Api-Key: k\r\n", 95)));
    // The gateway takes Sec-WebSocket-Protocol out before libwebsockets reads the head.
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + repeated("X-Forwarded-For: 1\r\n", 87) +
                              "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: json\r\n"));
    // Known headers cost one per line, however many times they are repeated.
    checkRefused(upgradeWith(std::string(kWscatHeaders) + repeated("Cookie: a=1\r\n", 44) + repeated("User-Agent: u\r\n", 44)), 431,
                 {"Cookie x44", "User-Agent x44"});
    CHECK(isLwsKnownHeader("SEC-WEBSOCKET-ORIGIN"));
    CHECK_FALSE(isLwsKnownHeader("X-Forwarded-Host"));
    CHECK_FALSE(isLwsKnownHeader("Hosts"));
}

TEST_CASE("headers named like a method (Put..., Patch..., Delete...) are read by libwebsockets as a second request line") {
    const std::string xff86 = repeated("X-Forwarded-For: 1\r\n", 86), xff85 = repeated("X-Forwarded-For: 1\r\n", 85);
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + xff85 + "Put-Id: 1\r\n"));  // 2 fragments: 94
    checkRefused(upgradeWith(std::string(kWscatHeaders) + xff86 + "Put-Id: 1\r\n"), 431, {"2 for headers named like an HTTP method"});
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + xff86 + "Put-Id:1\r\n"));  // no space: 1 fragment
    checkRefused(upgradeWith(std::string(kWscatHeaders) + repeated("X-Forwarded-For: 1\r\n", 85) + "Put-Id:a&b c\r\n"), 431, {"3 for headers"});
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + repeated("X-Forwarded-For: 1\r\n", 84) + "Put-Id:a&b c\r\n"));
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + "Put-Id: 1\r\nPatch-Id: 2\r\nDelete-After: 3\r\n"));
    checkRefused(upgradeWith(std::string(kWscatHeaders) + "Put-Id: 1\r\nputs: 2\r\n"), 400,
                 {"header \"puts\" begins with \"put\"", "HTTP method", "rename the header"});
    checkRefused(upgradeWith(std::string(kWscatHeaders) + "Delete%zz: 1\r\n"), 400,
                 {"malformed percent-escape \"%zz\"", "header Delete%zz"});
    checkAccepted(upgradeWith(std::string(kWscatHeaders) + "Delete-After: 100%\r\n"));  // after the space: not a URL
}

TEST_CASE("Upgrade and Sec-WebSocket-Key as libwebsockets keeps them: spaces before dropped, anything else kept") {
    const std::string rest = "Sec-WebSocket-Version: 13\r\nConnection: Upgrade\r\n";
    const std::string key = "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n";
    for (std::string upgrade : {"websocket ", "websocket\t", "\twebsocket", "websocket  \t"}) {
        CAPTURE(upgrade);
        checkRefused(upgradeWith(rest + key + "Upgrade: " + upgrade + "\r\n"), 400, {"byte for byte", "\"Upgrade: websocket\""});
    }
    checkAccepted(upgradeWith(rest + key + "Upgrade:    WebSocket\r\n"));
    checkAccepted(upgradeWith(rest + key + "Upgrade:websocket\r\n"));
    checkRefused(upgradeWith(rest + "Upgrade: websocket\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw== \r\n"), 400,
                 {"Sec-WebSocket-Accept", "the 24-character key alone"});
    checkRefused(upgradeWith(rest + "Upgrade: websocket\r\nSec-WebSocket-Key:\tx3JJHMbDL1EzLkh9GBhXDw==\r\n"), 400, {"Sec-WebSocket-Key"});
    checkAccepted(upgradeWith(rest + "Upgrade: websocket\r\nSec-WebSocket-Key:   x3JJHMbDL1EzLkh9GBhXDw==\r\n"));
}

TEST_CASE("the Connection header as libwebsockets copies it: at most 126 bytes, every line joined with \", \"") {
    checkAccepted(withConnection("Connection: Upgrade, " + repeated("x", 126 - 9) + "\r\n"));
    checkRefused(withConnection("Connection: Upgrade, " + repeated("x", 127 - 9) + "\r\n"), 431,
                 {"Connection header is 127 bytes", "over the 126", "Connection: Upgrade"});
    checkRefused(withConnection("Connection: Upgrade" + repeated(" ", 120) + "\r\n"), 431, {"127 bytes"});
    checkAccepted(withConnection("Connection:" + repeated(" ", 200) + "Upgrade\r\n"));  // spaces before it are dropped
    // 60 + ", " + " Upgrade, " (the second line's own space kept) + 54 = 126; one byte more on either line is too many.
    checkAccepted(withConnection("Connection: " + repeated("k", 60) + "\r\nConnection: Upgrade, " + repeated("u", 54) + "\r\n"));
    checkRefused(withConnection("Connection: " + repeated("k", 61) + "\r\nConnection: Upgrade, " + repeated("u", 54) + "\r\n"), 431,
                 {"127 bytes", "every Connection line joined"});
    checkRefused(withConnection("Connection: " + repeated("k", 60) + "\r\nConnection:  Upgrade, " + repeated("u", 54) + "\r\n"), 431,
                 {"127 bytes"});
}

TEST_CASE("the Connection list as libwebsockets reads it, up to the first token \"upgrade\" begins with") {
    for (std::string value : {"keep alive, Upgrade", "5, Upgrade", "1.5, Upgrade", "1..5x, Upgrade", "\"x\", Upgrade",
                              "a=b, Upgrade", ",Upgrade", "keep-alive,, Upgrade", "close;q, Upgrade",
                              "keep-alive/2, Upgrade", "x\xff, Upgrade"}) {
        CAPTURE(value);
        checkRefused(withConnection("Connection: " + value + "\r\n"), 400,
                     {"cannot be read by the WebSocket library as a comma-separated list", "gives up at", "Connection: Upgrade"});
    }
    checkRefused(withConnection("Connection: keep alive, Upgrade\r\n"), 400, {"gives up at byte 6 (\"alive, Upgrade\")"});
    // An empty first line leaves a leading comma in the copy.
    checkRefused(withConnection("Connection:\r\nConnection: Upgrade\r\n"), 400, {"\", Upgrade\"", "byte 1"});
    for (std::string value : {"keep-alive, Upgrade", "keep-alive,Upgrade", "Upgrade, \"x\"", "Upgrade, 5", "1.5x, Upgrade",
                              ".5, Upgrade", "Upgrade, x\xff", "\tUpgrade", "up, Upgrade", "caf\xc3\xa9, Upgrade",
                              "Upgrade, HTTP2-Settings", "keep-alive ,Upgrade"}) {
        CAPTURE(value);
        checkAccepted(withConnection("Connection: " + value + "\r\n"));
    }
    checkAccepted(withConnection("Connection: keep-alive\r\nConnection: Upgrade\r\n"));
}

TEST_CASE("a NUL or a bare LF is refused as soon as it arrives, without waiting for the blank line") {
    HeadParse p = parse(std::string("GET /\0", 6));
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 400);
    p = parse("GET / HTTP/1.1\n");
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(contains(p.refusal.reason, "CRLF"));
    // A CR as the last byte so far may still be followed by LF.
    CHECK(parse("GET / HTTP/1.1\r").result == HeadResult::NeedMore);
    CHECK(parse("").result == HeadResult::NeedMore);
}

TEST_CASE("client text echoed in a reason is bounded and printable") {
    std::string longVersion(500, '9');
    HeadParse p = parse(upgradeWith("Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nConnection: Upgrade\r\n"
                                    "Upgrade: websocket\r\nSec-WebSocket-Version: " + longVersion + "\r\n"));
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 426);
    CHECK(contains(p.refusal.reason, "\"" + std::string(64, '9') + "...\""));
    CHECK(p.refusal.reason.size() < 250);

    p = parse(upgradeWith("Connection: Upgrade\r\nUpgrade: \xe2\x9c\x93\r\n"));
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(contains(p.refusal.reason, "\"???\""));
}

TEST_CASE("a head larger than maxHeadBytes is refused with 431; one of exactly maxHeadBytes is accepted") {
    std::string huge = upgradeWith(std::string(kWscatHeaders) + "Cookie: " + std::string(9000, 'c') + "\r\n");
    HeadParse p = parse(huge);
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 431);
    CHECK(contains(p.refusal.reason, "request head larger than 8192 bytes"));
    CHECK(p.refusal.extraHeaders.empty());
    // Refused as soon as the limit is passed, not when the head finally ends.
    p = parse(std::string_view(huge).substr(0, 8192));
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 431);
    CHECK(parse(std::string_view(huge).substr(0, 8191)).result == HeadResult::NeedMore);

    std::string exact = upgradeWith(kWscatHeaders);
    REQUIRE(parse(exact, exact.size()).result == HeadResult::Upgrade);
    CHECK(parse(exact, exact.size()).request.headLength == exact.size());
    // The pipelined bytes beyond the limit do not count against the head.
    CHECK(parse(exact + "\x81\x80....", exact.size()).result == HeadResult::Upgrade);
    p = parse(exact, exact.size() - 1);
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 431);
    CHECK(contains(p.refusal.reason, "larger than " + std::to_string(exact.size() - 1) + " bytes"));
}

TEST_CASE("more than 100 header lines is refused with 431; exactly 100 is accepted") {
    std::string lines = kWscatHeaders;  // 4 lines, plus Host from upgradeWith
    for (int i = 0; i < 95; ++i) lines += "X-" + std::to_string(i) + ": v\r\n";
    HeadParse p = parse(upgradeWith(lines));
    REQUIRE(p.result == HeadResult::Upgrade);
    CHECK(p.request.headers.size() == 100);
    p = parse(upgradeWith(lines + "X-One-More: v\r\n"));
    REQUIRE(p.result == HeadResult::Refuse);
    CHECK(p.refusal.status == 431);
    CHECK(contains(p.refusal.reason, "more than 100 header lines"));
}

TEST_CASE("renderHttpRefusal writes the exact response bytes") {
    std::string r = renderHttpRefusal(426, "this is a WebSocket endpoint: connect with a WebSocket client, e.g. wscat -c ws://h/",
                                      {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Version", "13"}});
    const std::string body =
        "{\"message\":\"this is a WebSocket endpoint: connect with a WebSocket client, e.g. wscat -c ws://h/\"}";
    CHECK(body.size() == 98);
    CHECK(r == "HTTP/1.1 426 Upgrade Required\r\n"
               "Content-Type: application/json\r\n"
               "Content-Length: 98\r\n"
               "Connection: close\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\n"
               "\r\n" + body);

    CHECK(renderHttpRefusal(400, "bad") ==
          "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 17\r\nConnection: close\r\n"
          "\r\n{\"message\":\"bad\"}");
}

TEST_CASE("renderHttpRefusal keeps the body valid JSON and the header block unsplittable") {
    auto bodyOf = [](const std::string &resp) {
        size_t end = resp.find("\r\n\r\n");
        REQUIRE(end != std::string::npos);
        std::string body = resp.substr(end + 4);
        size_t cl = resp.find("Content-Length: ");
        REQUIRE(cl != std::string::npos);
        CHECK(std::stoul(resp.substr(cl + 16)) == body.size());
        return body;
    };
    CHECK(bodyOf(renderHttpRefusal(400, "a \"q\" \\ b\n\x01")) == "{\"message\":\"a \\\"q\\\" \\\\ b\\n\\u0001\"}");
    CHECK(bodyOf(renderHttpRefusal(403, "caf\xc3\xa9")) == "{\"message\":\"caf\xc3\xa9\"}");
    CHECK(bodyOf(renderHttpRefusal(403, "bad \xff\xfe")) == "{\"message\":\"bad \xEF\xBF\xBD\xEF\xBF\xBD\"}");
    std::string r = renderHttpRefusal(429, "slow down", {{"Retry-After", "1\r\nSet-Cookie: x=1"}});
    CHECK(contains(r, "\r\nRetry-After: 1Set-Cookie: x=1\r\n"));
    CHECK(r.find("\r\nSet-Cookie") == std::string::npos);
    CHECK(r.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0) == 0);
}

TEST_CASE("httpReasonPhrase names the statuses the gateway sends and falls back by class") {
    CHECK(std::string_view(httpReasonPhrase(400)) == "Bad Request");
    CHECK(std::string_view(httpReasonPhrase(401)) == "Unauthorized");
    CHECK(std::string_view(httpReasonPhrase(403)) == "Forbidden");
    CHECK(std::string_view(httpReasonPhrase(404)) == "Not Found");
    CHECK(std::string_view(httpReasonPhrase(405)) == "Method Not Allowed");
    CHECK(std::string_view(httpReasonPhrase(426)) == "Upgrade Required");
    CHECK(std::string_view(httpReasonPhrase(429)) == "Too Many Requests");
    CHECK(std::string_view(httpReasonPhrase(431)) == "Request Header Fields Too Large");
    CHECK(std::string_view(httpReasonPhrase(500)) == "Internal Server Error");
    CHECK(std::string_view(httpReasonPhrase(502)) == "Bad Gateway");
    CHECK(std::string_view(httpReasonPhrase(503)) == "Service Unavailable");
    CHECK(std::string_view(httpReasonPhrase(504)) == "Gateway Timeout");
    CHECK(std::string_view(httpReasonPhrase(499)) == "Client Error");
    CHECK(std::string_view(httpReasonPhrase(599)) == "Server Error");
    CHECK(std::string_view(httpReasonPhrase(42)) == "Unknown");
}

}  // TEST_SUITE

TEST_CASE("chooseSubprotocol: the client's first offer that the API accepts, over every offer header") {
    HeadParse p = parse(upgradeWith(std::string(kWscatHeaders) + "Sec-WebSocket-Protocol: v3.chat , v2.chat\r\n"
                                                                 "sec-websocket-protocol: json\r\n"));
    REQUIRE(p.result == HeadResult::Upgrade);
    CHECK(chooseSubprotocol(p.request, {"json", "v2.chat"}) == "v2.chat");  // the client's order wins
    CHECK(chooseSubprotocol(p.request, {"json"}) == "json");
    CHECK(chooseSubprotocol(p.request, {"V2.CHAT"}).empty());  // tokens are case-sensitive
    CHECK(chooseSubprotocol(p.request, {}).empty());
    CHECK(offeredSubprotocols(p.request) == "v3.chat, v2.chat, json");
}

TEST_CASE("withoutHeader drops every line of that header from the head and keeps what follows it") {
    std::string head = "GET / HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: a\r\nUpgrade: websocket\r\n"
                       "sec-websocket-protocol: b\r\n\r\n";
    std::string bytes = head + "\x81\x05hello";
    CHECK(withoutHeader(bytes, head.size(), "Sec-WebSocket-Protocol") ==
          "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
    CHECK(withoutHeader(bytes, head.size(), "X-Absent") == bytes);
}
