// The listener's decisions before $connect that depend on routes.json alone: allowed Origins, the
// per-address refusal, and the subprotocol the 101 names (or the offers a proxy backend gets).
#include "upgrade_admission.h"

#include <doctest/doctest.h>

using namespace wsgw;

namespace {

UpgradeRequest requestWith(std::vector<std::pair<std::string, std::string>> headers) {
    UpgradeRequest r;
    r.method = "GET";
    r.path = "/";
    r.headers = std::move(headers);
    return r;
}

}  // namespace

TEST_SUITE("upgrade_admission") {
    TEST_CASE("Origin: any when none is listed or \"*\" is, else only those listed") {
        Limits limits;
        auto fromApp = requestWith({{"Origin", "https://app.example.com"}});
        CHECK_FALSE(checkOrigin(fromApp, limits));
        limits.allowedOrigins = {"https://app.example.com"};
        CHECK_FALSE(checkOrigin(fromApp, limits));
        CHECK_FALSE(checkOrigin(requestWith({}), limits));  // no Origin: not a browser, not refused
        auto evil = checkOrigin(requestWith({{"Origin", "https://evil.example"}}), limits);
        REQUIRE(evil);
        CHECK(evil->status == 403);
        CHECK(evil->reason.find("https://evil.example") != std::string::npos);
        CHECK(evil->reason.find("limits.allowedOrigins") != std::string::npos);
        limits.allowedOrigins.push_back("*");
        CHECK_FALSE(checkOrigin(requestWith({{"Origin", "https://evil.example"}}), limits));
    }

    TEST_CASE("the per-address refusal names the address and the limit") {
        UpgradeRefusal r = perAddressRefusal("10.1.2.3", 3);
        CHECK(r.status == 429);
        CHECK(r.reason.find("10.1.2.3 already has 3 connections") != std::string::npos);
    }

    TEST_CASE("subprotocols: none offered, one accepted, none accepted, and a proxy's backend choosing") {
        std::vector<std::string> accepted = {"chat.v2", "chat.v1"};
        SubprotocolDecision none = decideSubprotocol(requestWith({}), accepted, false);
        CHECK(none.chosen.empty());
        CHECK_FALSE(none.stripOffers);
        CHECK_FALSE(none.refusal);

        SubprotocolDecision chosen = decideSubprotocol(requestWith({{"Sec-WebSocket-Protocol", "x, chat.v1"}}), accepted, false);
        CHECK(chosen.chosen == "chat.v1");
        CHECK(chosen.stripOffers);
        CHECK_FALSE(chosen.refusal);

        SubprotocolDecision refused = decideSubprotocol(requestWith({{"Sec-WebSocket-Protocol", "mqtt"}}), accepted, false);
        REQUIRE(refused.refusal);
        CHECK(refused.refusal->status == 400);
        CHECK(refused.refusal->reason.find("(mqtt)") != std::string::npos);
        CHECK(refused.refusal->reason.find("chat.v2, chat.v1") != std::string::npos);

        SubprotocolDecision noneListed = decideSubprotocol(requestWith({{"Sec-WebSocket-Protocol", "mqtt"}}), {}, false);
        REQUIRE(noneListed.refusal);
        CHECK(noneListed.refusal->reason.find("accepts none") != std::string::npos);

        SubprotocolDecision proxied = decideSubprotocol(requestWith({{"Sec-WebSocket-Protocol", "mqtt, x"}}), {}, true);
        CHECK_FALSE(proxied.refusal);
        CHECK(proxied.chosen.empty());
        CHECK(proxied.offersForBackend.find("mqtt") != std::string::npos);
        CHECK(proxied.stripOffers);
    }
}
