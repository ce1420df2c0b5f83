// routes.json "webPubSub" (docs/webpubsub.md): what is read, the default window, and the message for each
// mistake (file, JSON path, what to do).
#include "config.h"

#include <doctest/doctest.h>

using namespace wsgw;

namespace {

const std::string kKey = "0123456789abcdefghijklmnopqrstuvwxyzABCD";

std::variant<ApiConfig, ConfigError> withWebPubSub(const std::string &json, bool routes = true) {
    return parseApiConfig(R"({"routeSelectionExpression":"$request.body.action","webPubSub":)" + json +
                              (routes ? R"(,"routes":{"$default":{"handler":"echo"}}})" : "}"),
                          "/srv/routes.json");
}

ConfigError webPubSubErrorOf(const std::string &json) {
    auto r = withWebPubSub(json);
    REQUIRE_MESSAGE(std::holds_alternative<ConfigError>(r), "expected an error for " << json);
    return std::get<ConfigError>(r);
}

}  // namespace

TEST_SUITE("config webPubSub") {
    TEST_CASE("hubs, keys and the window are read; the window defaults to 30 s") {
        auto r = withWebPubSub(R"({"hubs":["chat","Game_2"],"accessKeys":[")" + kKey + R"("],"recoveryWindowSeconds":5})");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(r), std::get<ConfigError>(r).message());
        const auto &w = std::get<ApiConfig>(r).webPubSub;
        CHECK(w.enabled());
        CHECK(w.hubs == std::vector<std::string>{"chat", "Game_2"});
        CHECK(w.hasHub("chat"));
        CHECK_FALSE(w.hasHub("other"));
        CHECK(w.accessKeys == std::vector<std::string>{kKey});
        CHECK(w.recoveryWindowSeconds == 5);
        auto d = withWebPubSub(R"({"hubs":["chat"],"accessKeys":[")" + kKey + R"("]})");
        CHECK(std::get<ApiConfig>(d).webPubSub.recoveryWindowSeconds == 30);
    }

    TEST_CASE("an API without webPubSub has it off; with it, routes may be left out") {
        auto plain = parseApiConfig(R"({"routeSelectionExpression":"x","routes":{"$default":{"handler":"echo"}}})", "r.json");
        CHECK_FALSE(std::get<ApiConfig>(plain).webPubSub.enabled());
        auto noRoutes = withWebPubSub(R"({"hubs":["chat"],"accessKeys":[")" + kKey + R"("]})", false);
        CHECK(std::holds_alternative<ApiConfig>(noRoutes));
    }

    TEST_CASE("mistakes name the path and say what to do") {
        auto e = webPubSubErrorOf(R"({"hubs":["2chat"],"accessKeys":[")" + kKey + R"("]})");
        CHECK(e.jsonPath == "/webPubSub/hubs/0");
        CHECK(e.reason.find("start with a letter") != std::string::npos);
        e = webPubSubErrorOf(R"({"hubs":[],"accessKeys":[")" + kKey + R"("]})");
        CHECK(e.jsonPath == "/webPubSub/hubs");
        e = webPubSubErrorOf(R"({"hubs":["a","a"],"accessKeys":[")" + kKey + R"("]})");
        CHECK(e.reason.find("listed twice") != std::string::npos);
        e = webPubSubErrorOf(R"({"hubs":["chat"],"accessKeys":["short"]})");
        CHECK(e.jsonPath == "/webPubSub/accessKeys/0");
        CHECK(e.reason.find("at least 32 characters (this one has 5)") != std::string::npos);
        e = webPubSubErrorOf(R"({"hubs":["chat"],"accessKeys":[]})");
        CHECK(e.jsonPath == "/webPubSub/accessKeys");
        e = webPubSubErrorOf(R"({"hubs":["chat"]})");
        CHECK(e.reason.find("'accessKeys'") != std::string::npos);
        e = webPubSubErrorOf(R"({"hubs":["chat"],"accessKeys":[")" + kKey + R"("],"recoveryWindowSeconds":-1})");
        CHECK(e.jsonPath == "/webPubSub/recoveryWindowSeconds");
        e = webPubSubErrorOf(R"({"hubs":["chat"],"accessKeys":[")" + kKey + R"("],"hub":"x"})");
        CHECK(e.reason.find("unknown property 'hub'") != std::string::npos);
        CHECK(e.message().rfind("/srv/routes.json: /webPubSub", 0) == 0);
    }
}
