// The one backend URL parser (core/backend_url) and the ws:// URLs read with it (core/ws_url): schemes and
// default ports, IPv6 hosts, the port's digits, the path's bytes. The HTTP integration's http:// URLs are
// tested with it in tests/gateway/invoke/http_integration_test.cpp.
#include "backend_url.h"
#include "ws_url.h"

#include <doctest/doctest.h>

#include <string>

using namespace wsgw;

namespace {

BackendUrl acceptedUrl(const std::string &url) {
    auto r = parseBackendUrl(url, {{"ws", 80}, {"wss", 443}}, "is not a ws:// or wss:// URL");
    REQUIRE_MESSAGE(std::holds_alternative<BackendUrl>(r), url << " -> " << std::get<std::string>(r));
    return std::get<BackendUrl>(r);
}

std::string refusedUrl(const std::string &url) {
    auto r = parseBackendUrl(url, {{"ws", 80}, {"wss", 443}}, "is not a ws:// or wss:// URL");
    REQUIRE_MESSAGE(std::holds_alternative<std::string>(r), url << " was accepted");
    return std::get<std::string>(r);
}

}  // namespace

TEST_SUITE("backend_url") {
    TEST_CASE("scheme, default port, host, port and path") {
        BackendUrl a = acceptedUrl("ws://backend");
        CHECK(a.scheme == "ws");
        CHECK(a.host == "backend");
        CHECK(a.port == 80);
        CHECK(a.path == "/");
        BackendUrl b = acceptedUrl("wss://127.0.0.1:9443/chat/room?x=1");
        CHECK(b.scheme == "wss");
        CHECK(b.host == "127.0.0.1");
        CHECK(b.port == 9443);
        CHECK(b.path == "/chat/room?x=1");
        CHECK(acceptedUrl("wss://h").port == 443);
        CHECK(acceptedUrl("ws://h:1/").port == 1);
        CHECK(acceptedUrl("ws://h:65535/").port == 65535);
    }

    TEST_CASE("IPv6 hosts are bracketed, and only :port may follow the bracket") {
        BackendUrl v6 = acceptedUrl("ws://[::1]:9000/a");
        CHECK(v6.host == "::1");
        CHECK(v6.port == 9000);
        CHECK(acceptedUrl("wss://[fe80::1]").port == 443);
        CHECK(refusedUrl("ws://[::1]x/").find("expected ':port' after the IPv6 host") != std::string::npos);
        CHECK(refusedUrl("ws://[::1]9000/").find("expected ':port'") != std::string::npos);
        CHECK(refusedUrl("ws://[::1/").find("unterminated [IPv6] host") != std::string::npos);
        CHECK(refusedUrl("ws://[]:80/").find("has no host") != std::string::npos);
    }

    TEST_CASE("a port is 1 to 65535 in digits: not empty, signed, spaced or too long") {
        for (const char *bad : {"ws://h:/", "ws://h:0/", "ws://h:65536/", "ws://h:+80/", "ws://h: 80/", "ws://h:80x/",
                                "ws://h:000080/", "ws://[::1]:/", "ws://h:-1/"})
            CHECK_MESSAGE(refusedUrl(bad).find("the port must be 1 to 65535") != std::string::npos, bad);
    }

    TEST_CASE("what is refused says so, quoting the URL") {
        CHECK(refusedUrl("http://h/") == "'http://h/' is not a ws:// or wss:// URL");
        CHECK(refusedUrl("WS://h/") == "'WS://h/' is not a ws:// or wss:// URL");
        CHECK(refusedUrl("ws:///path") == "'ws:///path' has no host");
        CHECK(refusedUrl("ws://:80/") == "'ws://:80/' has no host");
        CHECK(refusedUrl("ws://h/a b").find("the path has a space or control character") != std::string::npos);
        CHECK(refusedUrl(std::string("ws://h/a\x7f")).find("control character") != std::string::npos);
    }

    TEST_CASE("ws:// URLs: TLS for wss, the parser's rules") {
        auto plain = std::get<WsUrl>(WsUrl::parse("ws://127.0.0.1:8080/x"));
        CHECK_FALSE(plain.tls);
        CHECK(plain.port == 8080);
        CHECK(plain.path == "/x");
        auto tls = std::get<WsUrl>(WsUrl::parse("wss://example.test"));
        CHECK(tls.tls);
        CHECK(tls.port == 443);
        // Bytes after an IPv6 literal's ']' were once ignored here; they are refused, as for http:// URLs.
        CHECK(std::holds_alternative<std::string>(WsUrl::parse("ws://[::1]junk/")));
        CHECK(std::get<std::string>(WsUrl::parse("http://x/")).find("is not a ws:// or wss:// URL") != std::string::npos);
    }
}
