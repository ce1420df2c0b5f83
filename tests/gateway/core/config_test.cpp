#include "config.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace wsgw;

namespace {
ConfigError errorOf(const std::string &text) {
    auto r = parseApiConfig(text, "routes.json");
    REQUIRE_MESSAGE(std::holds_alternative<ConfigError>(r), "expected an error for: " << text);
    return std::get<ConfigError>(r);
}

const char kFullExample[] = R"({
  "routeSelectionExpression": "$request.body.action",
  "handlers": {
    "auth": { "config": { "apiKeys": ["demo-key"] } },
    "orders-eu": { "plugin": "orders", "config": { "region": "eu" } }
  },
  "routes": {
    "$connect":    { "handler": "chat" },
    "$disconnect": { "handler": "chat" },
    "$default":    { "handler": "echo", "routeResponse": true },
    "sendmessage": { "handler": "chat" },
    "placeorder":  { "handler": "orders-eu", "timeoutMs": 5000 }
  }
})";
}  // namespace

TEST_SUITE("config") {
    TEST_CASE("the full example routes.json parses with every default filled") {
        auto r = parseApiConfig(kFullExample, "routes.json");
        REQUIRE(std::holds_alternative<ApiConfig>(r));
        const ApiConfig &c = std::get<ApiConfig>(r);
        CHECK(c.routeSelectionExpression == "$request.body.action");
        CHECK(c.routes.size() == 5);
        CHECK(c.routes.at("$default").routeResponse);
        CHECK_FALSE(c.routes.at("sendmessage").routeResponse);
        CHECK(c.routes.at("placeorder").timeoutMs == 5000);
        CHECK(c.routes.at("sendmessage").timeoutMs == 29000);
        CHECK(c.routes.at("placeorder").handler == "orders-eu");
        CHECK(c.handlers.at("orders-eu").plugin == "orders");
        CHECK(c.handlers.at("orders-eu").configJson == R"({"region":"eu"})");
        CHECK(c.handlers.at("auth").plugin == "auth");
        CHECK(c.handlers.at("auth").configJson == R"({"apiKeys":["demo-key"]})");
        CHECK(c.handlers.at("chat").plugin == "chat");
        CHECK(c.handlers.at("chat").configJson == "{}");
        CHECK(c.handlers.at("echo").plugin == "echo");
        CHECK(c.limits.maxMessageBytes == 131072);
        CHECK(c.compression);  // permessage-deflate unless "compression": false
    }

    TEST_CASE("\"compression\": false turns permessage-deflate off; anything but a boolean is refused") {
        auto r = parseApiConfig(R"({"routeSelectionExpression":"x","compression":false,"routes":{"a":{"handler":"a"}}})", "routes.json");
        REQUIRE(std::holds_alternative<ApiConfig>(r));
        CHECK_FALSE(std::get<ApiConfig>(r).compression);
        ConfigError e = errorOf(R"({"routeSelectionExpression":"x","compression":"off","routes":{"a":{"handler":"a"}}})");
        CHECK(e.jsonPath == "/compression");
        CHECK_MESSAGE(e.reason.find("expected boolean") != std::string::npos, e.reason);
    }

    TEST_CASE("a proxy-only API may have no routes, or an empty object; any other API needs a route") {
        for (const char *text : {R"({"routeSelectionExpression":"x","proxy":{"url":"ws://127.0.0.1:9000/"}})",
                                 R"({"routeSelectionExpression":"x","proxy":{"url":"ws://127.0.0.1:9000/"},"routes":{}})"}) {
            CAPTURE(text);
            auto r = parseApiConfig(text, "routes.json");
            REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(r), std::get<ConfigError>(r).message());
            CHECK(std::get<ApiConfig>(r).routes.empty());
            CHECK(std::get<ApiConfig>(r).proxy.url == "ws://127.0.0.1:9000/");
        }
        ConfigError missing = errorOf(R"({"routeSelectionExpression":"x"})");
        CHECK(missing.jsonPath.empty());
        CHECK_MESSAGE(missing.reason.find("'routes' is missing") != std::string::npos, missing.reason);
        ConfigError empty = errorOf(R"({"routeSelectionExpression":"x","routes":{}})");
        CHECK(empty.jsonPath == "/routes");
        CHECK_MESSAGE(empty.reason.find("at least one route") != std::string::npos, empty.reason);
    }

    TEST_CASE("a proxy-only API may leave out the route selection expression; any other API needs one") {
        auto r = parseApiConfig(R"({"proxy":{"url":"ws://127.0.0.1:9000/"}})", "routes.json");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(r), std::get<ConfigError>(r).message());
        CHECK(std::get<ApiConfig>(r).routeSelectionExpression.empty());
        for (const char *text : {R"({"routes":{"$default":{"handler":"a"}}})",
                                 R"({"webPubSub":{"hubs":["chat"],"accessKeys":["0123456789abcdef0123456789abcdef"]},"routes":{}})"}) {
            CAPTURE(text);
            ConfigError e = errorOf(text);
            CHECK(e.jsonPath.empty());
            CHECK_MESSAGE(e.reason.find("required property 'routeSelectionExpression' is missing") != std::string::npos, e.reason);
        }
    }

    TEST_CASE("invalid JSON names the line and column") {
        ConfigError e = errorOf("{\n  \"routeSelectionExpression\": \"x\",\n  \"routes\": {,}\n}");
        CHECK(e.jsonPath.empty());
        CHECK(e.reason.find("line 3") != std::string::npos);
        CHECK(e.reason.find("column") != std::string::npos);
        CHECK(e.message().rfind("routes.json: invalid JSON", 0) == 0);
    }

    TEST_CASE("schema errors name the JSON path and what is wrong") {
        struct Case { const char *text, *path, *words; };
        Case cases[] = {
            {R"({"routes":{"a":{"handler":"a"}}})", "", "routeSelectionExpression"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a","routeResponse":"yes"}}})", "/routes/a/routeResponse", "expected boolean"},
            {R"({"routeSelectionExpression":"x","proxy":{},"routes":{"a":{"handler":"a"}}})", "/proxy", "'url' is missing"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a","authorizer":{"type":"apiKey","keys":["k"]}}}})", "/routes/a/authorizer", "put it on \"$connect\""},
            {R"({"routeSelectionExpression":"x","routes":{"$connect":{"authorizer":{"type":"jwt","secret":"s"}}}})", "/routes/$connect/authorizer", "must list its \"algorithms\""},
            {R"({"routeSelectionExpression":"x","routes":{"$connect":{"authorizer":{"type":"apiKey"}}}})", "/routes/$connect/authorizer", "needs \"keys\" or a \"keyFile\""},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a","throttle":{"burst":3}}}})", "/routes/a/throttle", "'rate' is missing"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a","bogus":1}}})", "/routes/a/bogus", "unknown property 'bogus'"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a","timeoutMs":10}}})", "/routes/a/timeoutMs", ">= 50"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a","timeoutMs":30000}}})", "/routes/a/timeoutMs", "<= 29000"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a/b"}}})", "/routes/a/handler", "letters, digits"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{}}})", "/routes/a", "'handler' is missing"},
            {R"({"routeSelectionExpression":"x","limits":{"maxMessageBytes":0},"routes":{"a":{"handler":"a"}}})", "/limits/maxMessageBytes", ">= 1"},
            {R"({"routeSelectionExpression":"","routes":{"a":{"handler":"a"}}})", "/routeSelectionExpression", "empty"},
            {R"({"routeSelectionExpression":"x","routes":{"$foo":{"handler":"a"}}})", "/routes/$foo", "reserved"},
            {R"({"routeSelectionExpression":"x","handlers":{"bad name":{}},"routes":{"a":{"handler":"a"}}})", "/handlers/bad name", "letters, digits"},
            {R"([])", "", "expected object"},
            {R"({"routeSelectionExpression":"x","subprotocols":["a b"],"routes":{"a":{"handler":"a"}}})", "/subprotocols/0", "not a subprotocol token"},
            {R"({"routeSelectionExpression":"x","subprotocols":["json","json"],"routes":{"a":{"handler":"a"}}})", "/subprotocols/1", "repeats a value"},
            {R"({"routeSelectionExpression":"x","handlers":{"a":{"isolation":"thread"}},"routes":{"a":{"handler":"a"}}})", "/handlers/a/isolation", "one of [\"in-process\",\"process\"]"},
            {R"({"routeSelectionExpression":"x","handlers":{"a":{"isolation":"process","workers":0}},"routes":{"a":{"handler":"a"}}})", "/handlers/a/workers", ">= 1"},
        };
        for (const auto &c : cases) {
            CAPTURE(c.text);
            ConfigError e = errorOf(c.text);
            CHECK(e.jsonPath == c.path);
            CHECK_MESSAGE(e.reason.find(c.words) != std::string::npos, e.reason);
        }
    }

    TEST_CASE("a key repeated in any object is refused, naming the object and the key") {
        struct Case { const char *text, *path, *key; };
        Case cases[] = {
            // Two "$default" routes: RapidJSON keeps both, and the route table would take one silently.
            {R"({"routeSelectionExpression":"x","routes":{"$default":{"handler":"a"},"$default":{"handler":"b"}}})", "/routes", "$default"},
            {R"({"routeSelectionExpression":"x","limits":{"maxMessageBytes":1},"limits":{"maxFrameBytes":1},"routes":{"a":{"handler":"a"}}})", "", "limits"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"a","timeoutMs":100,"timeoutMs":200}}})", "/routes/a", "timeoutMs"},
            // Inside a handler's config (the plugin's JSON) and inside arrays too; '/' and '~' escaped in the pointer.
            {R"({"routeSelectionExpression":"x","handlers":{"a/b~":{"config":{"list":[{"k":1,"k":2}]}}},"routes":{"a":{"handler":"a"}}})", "/handlers/a~1b~0/config/list/0", "k"},
        };
        for (const auto &c : cases) {
            CAPTURE(c.text);
            ConfigError e = errorOf(c.text);
            CHECK(e.jsonPath == c.path);
            CHECK_MESSAGE(e.reason.find(std::string("the key '") + c.key + "' appears more than once") != std::string::npos, e.reason);
            CHECK_MESSAGE(e.reason.find("keep one") != std::string::npos, e.reason);
        }
        CHECK(errorOf(cases[1].text).message() ==
              "routes.json: the key 'limits' appears more than once in the top-level object (only one of them would be "
              "used): keep one, merging what the others hold into it");
        // The same key in different objects is no repetition.
        auto r = parseApiConfig(R"({"routeSelectionExpression":"x","handlers":{"a":{"config":{"handler":"x"}}},"routes":{"a":{"handler":"a"},"b":{"handler":"a"}}})",
                                "routes.json");
        CHECK_MESSAGE(std::holds_alternative<ApiConfig>(r), std::get<ConfigError>(r).message());
    }

    TEST_CASE("isolation, workers and maxWorkerMemoryMb of a handler instance") {
        auto parsed = parseApiConfig(R"({"routeSelectionExpression":"x",
            "handlers":{"iso":{"plugin":"echo","isolation":"process","workers":3,"maxWorkerMemoryMb":64},"plain":{"isolation":"in-process"}},
            "routes":{"a":{"handler":"iso"},"b":{"handler":"plain"},"c":{"handler":"implicit"}}})", "routes.json");
        REQUIRE(std::holds_alternative<ApiConfig>(parsed));
        const ApiConfig &cfg = std::get<ApiConfig>(parsed);
        CHECK(cfg.handlers.at("iso").isolated);
        CHECK(cfg.handlers.at("iso").workers == 3);
        CHECK(cfg.handlers.at("iso").maxWorkerMemoryMb == 64);
        CHECK_FALSE(cfg.handlers.at("plain").isolated);
        CHECK_FALSE(cfg.handlers.at("implicit").isolated);
        CHECK(cfg.handlers.at("implicit").workers == 2);
    }

    TEST_CASE("inline: off by default, on for an in-process plugin") {
        auto parsed = parseApiConfig(R"({"routeSelectionExpression":"x",
            "handlers":{"fast":{"plugin":"echo","inline":true},"named":{"plugin":"echo","isolation":"in-process","inline":true},
                        "off":{"plugin":"echo","inline":false}},
            "routes":{"a":{"handler":"fast"},"b":{"handler":"named"},"c":{"handler":"off"},"d":{"handler":"implicit"}}})", "routes.json");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(parsed), std::get<ConfigError>(parsed).message());
        const ApiConfig &cfg = std::get<ApiConfig>(parsed);
        CHECK(cfg.handlers.at("fast").runsInline);
        CHECK(cfg.handlers.at("named").runsInline);
        CHECK_FALSE(cfg.handlers.at("off").runsInline);
        CHECK_FALSE(cfg.handlers.at("implicit").runsInline);
    }

    TEST_CASE("inline is refused where the handler cannot run on the network thread, naming the JSON path") {
        struct Case { const char *text, *path, *words; };
        Case cases[] = {
            {R"({"routeSelectionExpression":"x","handlers":{"iso":{"plugin":"echo","isolation":"process","inline":true}},"routes":{"a":{"handler":"iso"}}})",
             "/handlers/iso/inline", "isolation"},
            {R"({"routeSelectionExpression":"x","handlers":{"fn":{"lambda":{"runtime":"nodejs","handler":"index.handler","directory":"fn"},"inline":true}},"routes":{"a":{"handler":"fn"}}})",
             "/handlers/fn/inline", "\"lambda\" handler"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"http":"http://127.0.0.1:9/x","inline":true}}})",
             "/routes/a/inline", "setting of a handler, not of a route"},
            {R"({"routeSelectionExpression":"x","routes":{"a":{"handler":"echo","inline":true}}})",
             "/routes/a/inline", "under \"handlers\""},
            {R"({"routeSelectionExpression":"x","handlers":{"a":{"inline":"yes"}},"routes":{"a":{"handler":"a"}}})",
             "/handlers/a/inline", "expected boolean"},
        };
        for (const auto &c : cases) {
            CAPTURE(c.text);
            ConfigError e = errorOf(c.text);
            CHECK(e.jsonPath == c.path);
            CHECK_MESSAGE(e.reason.find(c.words) != std::string::npos, e.reason);
        }
    }

    TEST_CASE("message() is file: path: reason") {
        ConfigError e{"r.json", "/routes/a", "bad"};
        CHECK(e.message() == "r.json: /routes/a: bad");
        ConfigError whole{"r.json", "", "bad"};
        CHECK(whole.message() == "r.json: bad");
    }

    TEST_CASE("loadApiConfig reads a file and names a missing one") {
        char dir[] = "/tmp/wsgw-config-test-XXXXXX";
        REQUIRE(mkdtemp(dir));
        std::string path = std::string(dir) + "/routes.json";
        std::ofstream(path) << kFullExample;
        CHECK(std::holds_alternative<ApiConfig>(loadApiConfig(path)));
        auto missing = loadApiConfig(std::string(dir) + "/nope.json");
        REQUIRE(std::holds_alternative<ConfigError>(missing));
        CHECK(std::get<ConfigError>(missing).message().find("nope.json") != std::string::npos);
        std::remove(path.c_str());
        // A directory where the file should be is named as one (it used to read as an empty document).
        auto directory = loadApiConfig(dir);
        REQUIRE(std::holds_alternative<ConfigError>(directory));
        CHECK(std::get<ConfigError>(directory).message() ==
              std::string(dir) + ": is a directory, not the route table: give the path of its routes.json file with --routes");
        rmdir(dir);
    }

    // RapidJSON parses recursively: 200,000 '{"a":' (1 MB, under the 16 MiB file bound) overflowed the stack
    // of the thread that read it, at start-up or on a reload, and the gateway died with SIGSEGV.
    TEST_CASE("a file nested deeper than 512 levels is refused before it is parsed") {
        std::string deep;
        for (int i = 0; i < 200000; ++i) deep += "{\"a\":";
        CHECK(errorOf(deep).reason.find("nest deeper than 512 levels") != std::string::npos);
        CHECK(errorOf(std::string(120000, '[')).reason.find("nest deeper than 512 levels") != std::string::npos);
    }
}
