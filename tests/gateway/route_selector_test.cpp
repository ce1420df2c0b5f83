#include "route_selector.h"

#include <doctest/doctest.h>

#include <string>

using namespace wsgw;

namespace {
RouteSelector compiled(const char *expr) {
    std::string error;
    auto sel = RouteSelector::compile(expr, &error);
    REQUIRE_MESSAGE(sel.has_value(), error);
    return *sel;
}

// The selected key, or "<default>" when the message goes to $default.
std::string route(const char *expr, std::string_view body, bool binary = false) {
    std::string key;
    return compiled(expr).select(body, binary, key) ? key : "<default>";
}
}  // namespace

TEST_SUITE("route_selector") {
    TEST_CASE("$request.body.PATH selects the string value, nested paths too") {
        CHECK(route("$request.body.action", R"({"action":"join"})") == "join");
        CHECK(route("$request.body.action", R"({"x":1,"action":"sendmessage","y":[1,{"action":"no"}]})") == "sendmessage");
        CHECK(route("$request.body.meta.type", R"({"meta":{"type":"order"}})") == "order");
        CHECK(route("$request.body.action", R"({"action":"caf\u00e9"})") == "café");
    }

    TEST_CASE("numbers keep their text as written; booleans are their JSON text") {
        CHECK(route("$request.body.action", R"({"action":5})") == "5");
        CHECK(route("$request.body.action", R"({"action":5.0})") == "5.0");
        CHECK(route("$request.body.action", R"({"action":1e2})") == "1e2");
        CHECK(route("$request.body.action", R"({"action":-1})") == "-1");
        CHECK(route("$request.body.action", R"({"action":true})") == "true");
        CHECK(route("$request.body.action", R"({"action":false})") == "false");
    }

    TEST_CASE("every fallback goes to $default") {
        const char *e = "$request.body.action";
        CHECK(route(e, "not json") == "<default>");
        CHECK(route(e, R"(["action"])") == "<default>");
        CHECK(route(e, R"("action")") == "<default>");
        CHECK(route(e, R"({"action":"join"})", true) == "<default>");
        CHECK(route(e, R"({"other":"join"})") == "<default>");
        CHECK(route(e, R"({"action":null})") == "<default>");
        CHECK(route(e, R"({"action":{"a":1}})") == "<default>");
        CHECK(route(e, R"({"action":["a"]})") == "<default>");
        CHECK(route(e, R"({"action":"join"} trailing)") == "<default>");
        CHECK(route(e, R"({"action":"join")") == "<default>");
        CHECK(route(e, "") == "<default>");
        CHECK(route(e, "   ") == "<default>");
        CHECK(route(e, R"({"action":""})") == "<default>");
        CHECK(route("$request.body.meta.type", R"({"meta":"flat"})") == "<default>");
        CHECK(route("$request.body.meta.type", R"({"meta":[{"type":"x"}]})") == "<default>");
    }

    TEST_CASE("a body can never select a reserved $ key") {
        for (const char *v : {"$connect", "$disconnect", "$default", "$anything"}) {
            std::string body = std::string(R"({"action":")") + v + "\"}";
            CHECK(route("$request.body.action", body) == "<default>");
        }
        CHECK(route("${request.body.a}x", R"({"a":"$default"})") == "<default>");
    }

    TEST_CASE("duplicate keys: the last one wins") {
        CHECK(route("$request.body.action", R"({"action":"a","action":"b"})") == "b");
        CHECK(route("$request.body.action", R"({"action":"a","action":null})") == "<default>");
    }

    TEST_CASE("templates join parts with text; a missing part is empty") {
        const char *e = "${request.body.service}/${request.body.action}";
        CHECK(route(e, R"({"service":"chat","action":"join"})") == "chat/join");
        CHECK(route("${request.body.action}-${request.body.nope}", R"({"action":"join"})") == "join-");
        CHECK(route("${request.body.a}${request.body.b}", R"({"a":null,"b":{"x":1}})") == "<default>");
        CHECK(route(e, "not json") == "<default>");
        CHECK(route(e, R"({"service":"chat","action":"join"})", true) == "<default>");
        CHECK(route("v${request.body.n}", R"({"n":2})") == "v2");
    }

    TEST_CASE("static expressions select their key for every message, \\$ escapes a dollar") {
        CHECK(route("action", "anything at all") == "action");
        CHECK(route("action", "\x01\x02", true) == "action");
        CHECK(route("price\\$", "{}") == "price$");
        CHECK(route("a\\$-${request.body.a}", R"({"a":"b"})") == "a$-b");
        CHECK(route("\\$x-${request.body.a}", R"({"a":"b"})") == "<default>");  // the key would start with '$'
    }

    TEST_CASE("deep nesting is refused without recursion") {
        std::string deep(100, '[');
        CHECK(route("$request.body.a", deep) == "<default>");
        std::string deepObj;
        for (int i = 0; i < 100; ++i) deepObj += R"({"a":)";
        deepObj += "1";
        deepObj += std::string(100, '}');
        CHECK(route("$request.body.a", deepObj) == "<default>");
    }

    TEST_CASE("compile errors say what and where") {
        for (const char *bad : {"", "$foo", "${request.body.a", "${request.header.x}", "$request.body.", "$request.body.a..b",
                                "x$y", "${request.body.}"}) {
            std::string error;
            CAPTURE(bad);
            CHECK_FALSE(RouteSelector::compile(bad, &error).has_value());
            CHECK(!error.empty());
        }
        std::string error;
        RouteSelector::compile("ab${request.body.a", &error);
        CHECK(error.find("offset 2") != std::string::npos);
    }
}
