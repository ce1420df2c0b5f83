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

    // libwebsockets 4.1.6 reads at most 254 bytes of the header and fails on permessage-deflate taken twice;
    // such offers are declined before $connect instead of its silent close after (found by review).
    TEST_CASE("extension offers libwebsockets would fail on are found, and only those") {
        auto ext = [](std::string v) { return requestWith({{"Sec-WebSocket-Extensions", std::move(v)}}); };
        CHECK_FALSE(extensionOffersRefusedByLibwebsockets(requestWith({}), true));
        CHECK_FALSE(extensionOffersRefusedByLibwebsockets(ext("permessage-deflate"), true));
        CHECK_FALSE(extensionOffersRefusedByLibwebsockets(ext("permessage-deflate; client_max_window_bits"), true));
        CHECK(extensionOffersRefusedByLibwebsockets(ext("permessage-deflate, permessage-deflate"), true));
        CHECK(extensionOffersRefusedByLibwebsockets(ext("permessage-deflate, permessage-deflate; client_max_window_bits"), true));
        // After a taken offer with parameters the rest are alternatives it never reads.
        CHECK_FALSE(extensionOffersRefusedByLibwebsockets(ext("permessage-deflate; client_max_window_bits, permessage-deflate"), true));
        // Not taken (compression off, or proxied): a second mention is no failure.
        CHECK_FALSE(extensionOffersRefusedByLibwebsockets(ext("permessage-deflate, permessage-deflate"), false));
        // Two headers are one list.
        CHECK(extensionOffersRefusedByLibwebsockets(
            requestWith({{"Sec-WebSocket-Extensions", "permessage-deflate"}, {"Sec-WebSocket-Extensions", "permessage-deflate"}}), true));
        // Length: 254 bytes are read, 255 are not, whatever compression says.
        CHECK_FALSE(extensionOffersRefusedByLibwebsockets(ext("x-foo; " + std::string(247, 'a')), false));
        CHECK(extensionOffersRefusedByLibwebsockets(ext("x-foo; " + std::string(248, 'a')), false));
        CHECK(extensionOffersRefusedByLibwebsockets(ext("permessage-deflate; " + std::string(400, 'x')), true));
        // Whitespace the parsed value drops still counts where libwebsockets reads it: the raw head decides.
        std::string head = "GET / HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Extensions: permessage-deflate" + std::string(300, ' ') + "\r\n\r\n";
        UpgradeRequest padded = ext("permessage-deflate");
        padded.headLength = head.size();
        CHECK(extensionOffersRefusedByLibwebsockets(padded, true, head));
        std::string plain = "GET / HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        padded.headLength = plain.size();
        CHECK_FALSE(extensionOffersRefusedByLibwebsockets(padded, true, plain));
    }
}
