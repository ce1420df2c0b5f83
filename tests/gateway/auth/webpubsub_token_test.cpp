// Azure Web PubSub access tokens (docs/webpubsub.md): tokens exactly as @azure/web-pubsub 1.2.0 made them
// (getClientAccessToken, and the REST pipeline's bearer token; captured once, checked at a fixed "now"),
// the audience rules, 401 for no token and 403 for any refused one, and our own signer.
#include "webpubsub_token.h"

#include <doctest/doctest.h>

using namespace wsgw;

namespace {

const std::string kAccessKey = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
const std::string kOtherKey = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxw";
constexpr int64_t kIssued = 1796552249;  // the SDK's tokens' "iat"; they live an hour

// getClientAccessToken({userId:"alice", roles:["webpubsub.joinLeaveGroup.lobby","webpubsub.sendToGroup"],
// groups:["lobby"]}) for endpoint http://127.0.0.1:8080, hub "chat".
const std::string kSdkClientToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjpbIndlYnB1YnN1Yi5qb2luTGVhdmVHcm91cC5sb2JieSIsIndlYnB1YnN1Yi5zZW5kVG9Hcm91cCJdLCJ3ZWJwdWJzdWIuZ3JvdXAiOlsibG9iYnkiXSwiaWF0IjoxNzk2NTUyMjQ5LCJleHAiOjE3OTY1NTU4NDksImF1ZCI6Imh0dHA6Ly8xMjcuMC4wLjE6ODA4MC9jbGllbnQvaHVicy9jaGF0Iiwic3ViIjoiYWxpY2UifQ.7MZMfN7mQeXwXyt4yP7aiz2BN6j4kHcrS0oz4AO_8VA";
// getClientAccessToken({}) for the same endpoint and hub: no sub, no roles.
const std::string kSdkAnonymousToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3OTY1NTIyNDksImV4cCI6MTc5NjU1NTg0OSwiYXVkIjoiaHR0cDovLzEyNy4wLjAuMTo4MDgwL2NsaWVudC9odWJzL2NoYXQifQ.uIQoA7T7dOe3mt3imyofVr56d9ml-YRB-zvwSTVe-aI";
// The bearer token of sendToAll for endpoint http://127.0.0.1:45443, hub "chat" (iat 1796552257).
const std::string kSdkRestToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3OTY1NTIyNTcsImV4cCI6MTc5NjU1NTg1NywiYXVkIjoiaHR0cDovLzEyNy4wLjAuMTo0NTQ0My9hcGkvaHVicy9jaGF0LzpzZW5kP2FwaS12ZXJzaW9uPTIwMjQtMTItMDEifQ.7k3LVFIH-ITi2FAfqYz-hVnPkyf67-abNDa6lSvL2ck";

}  // namespace

TEST_SUITE("webpubsub token") {
    TEST_CASE("the SDK's client token: user, roles and groups") {
        auto c = verifyWpsClientToken(kSdkClientToken, {kAccessKey}, "chat", "127.0.0.1:8080", kIssued + 10);
        REQUIRE_MESSAGE(c.ok(), c.reason);
        CHECK(c.userId == "alice");
        CHECK(c.roles == std::vector<std::string>{"webpubsub.joinLeaveGroup.lobby", "webpubsub.sendToGroup"});
        CHECK(c.groups == std::vector<std::string>{"lobby"});
        CHECK(c.expiresAt == kIssued + 3600);
        auto anonymous = verifyWpsClientToken(kSdkAnonymousToken, {kAccessKey}, "chat", "127.0.0.1:8080", kIssued + 10);
        REQUIRE(anonymous.ok());
        CHECK(anonymous.userId.empty());
        CHECK(anonymous.roles.empty());
    }

    TEST_CASE("any of the access keys verifies (rotation)") {
        CHECK(verifyWpsClientToken(kSdkClientToken, {kOtherKey, kAccessKey}, "chat", "127.0.0.1:8080", kIssued).ok());
    }

    TEST_CASE("missing 401; foreign key, other hub, other host, expired: 403") {
        auto missing = verifyWpsClientToken("", {kAccessKey}, "chat", "127.0.0.1:8080", kIssued);
        CHECK(missing.status == 401);
        CHECK(missing.reason.find("access_token") != std::string::npos);
        auto foreign = verifyWpsClientToken(kSdkClientToken, {kOtherKey}, "chat", "127.0.0.1:8080", kIssued);
        CHECK(foreign.status == 403);
        CHECK(foreign.reason.find("accessKeys") != std::string::npos);
        auto hub = verifyWpsClientToken(kSdkClientToken, {kAccessKey}, "game", "127.0.0.1:8080", kIssued);
        CHECK(hub.status == 403);
        CHECK(hub.reason.find("audience") != std::string::npos);
        CHECK(verifyWpsClientToken(kSdkClientToken, {kAccessKey}, "chat", "127.0.0.1:9999", kIssued).status == 403);
        CHECK(verifyWpsClientToken(kSdkClientToken, {kAccessKey}, "chat", "127.0.0.1:8080", kIssued + 3600 + 61).status == 403);
        CHECK(verifyWpsClientToken("garbage", {kAccessKey}, "chat", "127.0.0.1:8080", kIssued).status == 403);
    }

    TEST_CASE("audience: scheme, default port, host and hub case are not held against the client") {
        auto make = [](const std::string &aud) {
            return signWpsToken(kAccessKey, {aud, "u", {}, {}, kIssued, 3600});
        };
        CHECK(verifyWpsClientToken(make("https://Example.com:443/client/hubs/Chat"), {kAccessKey}, "chat", "example.com", kIssued).ok());
        CHECK(verifyWpsClientToken(make("ws://example.com/client/hubs/chat"), {kAccessKey}, "chat", "example.com:80", kIssued).ok());
        CHECK_FALSE(verifyWpsClientToken(make("ftp://example.com/client/hubs/chat"), {kAccessKey}, "chat", "example.com", kIssued).ok());
        CHECK_FALSE(verifyWpsClientToken(make("http://example.com/client/hubs/chat/x"), {kAccessKey}, "chat", "example.com", kIssued).ok());
        CHECK_FALSE(verifyWpsClientToken(make("http://example.com/api/hubs/chat"), {kAccessKey}, "chat", "example.com", kIssued).ok());
    }

    TEST_CASE("audience read by the shared URL parser: ports, a trailing slash, IPv6 hosts, a query, the scheme's case") {
        auto client = [](const std::string &aud, std::string_view host) {
            return verifyWpsClientToken(signWpsToken(kAccessKey, {aud, "u", {}, {}, kIssued, 3600}), {kAccessKey}, "chat", host, kIssued).ok();
        };
        // A port other than the scheme's default must be the Host header's; the default may be written or not.
        CHECK(client("http://example.com:8080/client/hubs/chat", "example.com:8080"));
        CHECK_FALSE(client("http://example.com:8080/client/hubs/chat", "example.com"));
        CHECK_FALSE(client("http://example.com/client/hubs/chat", "example.com:8080"));
        CHECK(client("http://example.com:80/client/hubs/chat", "example.com"));
        CHECK(client("wss://example.com/client/hubs/chat", "example.com:443"));
        CHECK_FALSE(client("https://example.com/client/hubs/chat", "example.com:80"));  // 80 is not https's default
        CHECK(client("http://example.com:443/client/hubs/chat", "example.com:443"));    // nor 443 http's
        CHECK_FALSE(client("http://example.com:443/client/hubs/chat", "example.com"));
        CHECK_FALSE(client("http://example.com:99999/client/hubs/chat", "example.com:99999"));  // not a port
        CHECK_FALSE(client("http://example.com:/client/hubs/chat", "example.com:"));
        // The path is the hub's, exactly: a trailing slash is another path; a query or fragment is not part of it.
        CHECK_FALSE(client("http://example.com/client/hubs/chat/", "example.com"));
        CHECK(client("http://example.com/client/hubs/chat?x=1", "example.com"));
        CHECK(client("http://example.com/client/hubs/chat#f", "example.com"));
        CHECK_FALSE(client("http://example.com?/client/hubs/chat", "example.com"));
        // IPv6 literals: in brackets on both sides, their own port, the default port dropped, hex case ignored.
        CHECK(client("http://[::1]:8080/client/hubs/chat", "[::1]:8080"));
        CHECK_FALSE(client("http://[::1]:8080/client/hubs/chat", "[::1]:8081"));
        CHECK(client("https://[2001:DB8::1]:443/client/hubs/chat", "[2001:db8::1]"));
        CHECK_FALSE(client("http://[::1/client/hubs/chat", "[::1"));  // unterminated
        CHECK_FALSE(client("http://[::2]/client/hubs/chat", "[::1]"));
        // The scheme in any case; no host, no scheme, or a Host header with a path: refused.
        CHECK(client("HTTP://example.com/client/hubs/chat", "example.com"));
        CHECK_FALSE(client("http:///client/hubs/chat", ""));
        CHECK_FALSE(client("example.com/client/hubs/chat", "example.com"));
        CHECK_FALSE(client("http://example.com/client/hubs/chat", "example.com/x"));
        // A REST token's audience with a port and a query: the query is not compared, the path is.
        auto server = [](const std::string &aud, std::string_view host, std::string_view target) {
            return verifyWpsServerToken(signWpsToken(kAccessKey, {aud, "", {}, {}, kIssued, 3600}), {kAccessKey}, host, target, kIssued).ok();
        };
        CHECK(server("https://[::1]:8443/api/hubs/chat/:send?api-version=2024-12-01", "[::1]:8443", "/api/hubs/chat/:send?api-version=1"));
        CHECK_FALSE(server("https://[::1]:8443/api/hubs/chat/:send/", "[::1]:8443", "/api/hubs/chat/:send"));
        CHECK_FALSE(server("https://[::1]:8443/api/hubs/chat/:send", "[::1]", "/api/hubs/chat/:send"));
    }

    TEST_CASE("the SDK's REST token: audience is the request URL") {
        auto ok = verifyWpsServerToken(kSdkRestToken, {kAccessKey}, "127.0.0.1:45443", "/api/hubs/chat/:send?api-version=2024-12-01",
                                       kIssued + 20);
        CHECK_MESSAGE(ok.ok(), ok.reason);
        // A token is for its own request: replayed on another path it is refused.
        auto other = verifyWpsServerToken(kSdkRestToken, {kAccessKey}, "127.0.0.1:45443", "/api/hubs/chat/:closeConnections?api-version=2024-12-01",
                                          kIssued + 20);
        CHECK(other.status == 403);
        CHECK(other.reason.find("request's URL") != std::string::npos);
        CHECK(verifyWpsServerToken("", {kAccessKey}, "h", "/api/hubs/chat/:send", kIssued).status == 401);
        CHECK(wpsBearerToken("Bearer abc.def.ghi ") == "abc.def.ghi");
        CHECK(wpsBearerToken("bearer x") == "x");
        CHECK(wpsBearerToken("Basic x").empty());
        CHECK(wpsBearerToken("").empty());
    }

    TEST_CASE("our signer's tokens verify, with roles and groups") {
        std::string t = signWpsToken(kAccessKey, {"http://h:1/client/hubs/chat", "bob", {"webpubsub.sendToGroup"}, {"a", "b"}, 1000, 60});
        auto c = verifyWpsClientToken(t, {kAccessKey}, "chat", "h:1", 1010);
        REQUIRE_MESSAGE(c.ok(), c.reason);
        CHECK(c.userId == "bob");
        CHECK(c.roles == std::vector<std::string>{"webpubsub.sendToGroup"});
        CHECK(c.groups == std::vector<std::string>{"a", "b"});
        CHECK(verifyWpsClientToken(t, {kAccessKey}, "chat", "h:1", 1000 + 60 + 61).status == 403);
    }
}
