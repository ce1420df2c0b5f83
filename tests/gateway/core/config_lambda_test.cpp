// routes.json "lambda" handlers (docs/lambda.md): what is read, the defaults, and the message for each
// mistake (file, JSON path, what to do).
#include "config.h"

#include <doctest/doctest.h>

#include <filesystem>

using namespace wsgw;

namespace {

std::string withHandler(const std::string &handlerJson) {
    return R"({"routeSelectionExpression":"$request.body.action","handlers":{"chat":)" + handlerJson +
           R"(},"routes":{"$default":{"handler":"chat","routeResponse":true}}})";
}

ConfigError lambdaError(const std::string &handlerJson) {
    auto r = parseApiConfig(withHandler(handlerJson), "/srv/api/routes.json");
    REQUIRE_MESSAGE(std::holds_alternative<ConfigError>(r), "expected an error for: " << handlerJson);
    return std::get<ConfigError>(r);
}

}  // namespace

TEST_SUITE("config lambda") {
    TEST_CASE("a runtime function: every key read, the directory resolved against routes.json") {
        auto r = parseApiConfig(withHandler(R"({"lambda":{"runtime":"nodejs","handler":"app.handler","directory":"functions/chat",
            "concurrency":4,"memoryMb":256,"environment":{"ROOM":"lobby","B_2":""}}})"), "/srv/api/routes.json");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(r), std::get<ConfigError>(r).message());
        const HandlerSpec &h = std::get<ApiConfig>(r).handlers.at("chat");
        CHECK(h.isLambda);
        CHECK(h.plugin.empty());
        CHECK(h.lambda.runtime == "nodejs");
        CHECK(h.lambda.handler == "app.handler");
        CHECK(h.lambda.command.empty());
        CHECK(h.lambda.directory == "/srv/api/functions/chat");
        CHECK(h.lambda.concurrency == 4);
        CHECK(h.lambda.memoryMb == 256);
        REQUIRE(h.lambda.environment.size() == 2);
        CHECK(h.lambda.environment[0] == std::pair<std::string, std::string>("ROOM", "lobby"));
        CHECK(h.lambda.environment[1] == std::pair<std::string, std::string>("B_2", ""));
    }

    TEST_CASE("a relative routes.json path still gives the function an absolute directory") {
        // The function's process runs in its directory: a path relative to the gateway's own working directory
        // (wsgw --routes functions/chat/routes.json, "directory": ".") would point nowhere from there.
        auto r = parseApiConfig(withHandler(R"({"lambda":{"runtime":"nodejs","handler":"app.handler","directory":"."}})"),
                                "functions/chat/routes.json");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(r), std::get<ConfigError>(r).message());
        const std::string &dir = std::get<ApiConfig>(r).handlers.at("chat").lambda.directory;
        CHECK(dir == (std::filesystem::current_path() / "functions/chat").string());
    }

    TEST_CASE("a command function: its argv, the defaults, an absolute directory kept") {
        auto r = parseApiConfig(withHandler(R"({"lambda":{"command":["npx","aws-lambda-ric","quote.handler"],"directory":"/opt/quote"}})"),
                                "routes.json");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(r), std::get<ConfigError>(r).message());
        const HandlerSpec &h = std::get<ApiConfig>(r).handlers.at("chat");
        CHECK(h.isLambda);
        CHECK(h.lambda.runtime.empty());
        CHECK(h.lambda.command == std::vector<std::string>{"npx", "aws-lambda-ric", "quote.handler"});
        CHECK(h.lambda.directory == "/opt/quote");
        CHECK(h.lambda.concurrency == 2);
        CHECK(h.lambda.memoryMb == 0);
        CHECK(h.lambda.environment.empty());
    }

    TEST_CASE("a plugin handler is not a lambda") {
        auto r = parseApiConfig(withHandler(R"({"plugin":"echo"})"), "routes.json");
        REQUIRE(std::holds_alternative<ApiConfig>(r));
        CHECK_FALSE(std::get<ApiConfig>(r).handlers.at("chat").isLambda);
        CHECK(std::get<ApiConfig>(r).handlers.at("chat").plugin == "echo");
    }

    TEST_CASE("mistakes name the file, the JSON path and what to do") {
        struct Case {
            const char *json, *path, *reason;
        };
        const Case cases[] = {
            {R"({"lambda":{"directory":"f"}})", "/handlers/chat/lambda", "say what to run"},
            {R"({"lambda":{"runtime":"nodejs","handler":"a.b","command":["x"],"directory":"f"}})", "/handlers/chat/lambda", "not both"},
            {R"({"lambda":{"runtime":"nodejs","directory":"f"}})", "/handlers/chat/lambda", "'handler' is missing"},
            {R"({"lambda":{"runtime":"nodejs","handler":"app","directory":"f"}})", "/handlers/chat/lambda/handler", "is not file.export"},
            {R"({"lambda":{"runtime":"nodejs","handler":"app.","directory":"f"}})", "/handlers/chat/lambda/handler", "is not file.export"},
            {R"({"lambda":{"runtime":"java","handler":"a.b","directory":"f"}})", "/handlers/chat/lambda/runtime", "must be one of"},
            {R"({"lambda":{"runtime":"python","handler":"a.b"}})", "/handlers/chat/lambda", "'directory' is missing"},
            {R"({"lambda":{"command":[],"directory":"f"}})", "/handlers/chat/lambda/command", ""},
            {R"({"lambda":{"command":["x"],"handler":"a.b","directory":"f"}})", "/handlers/chat/lambda/handler", "goes with \"runtime\""},
            {R"({"lambda":{"runtime":"python","handler":"a.b","directory":"f","concurrency":0}})", "/handlers/chat/lambda/concurrency", ">= 1"},
            {R"({"lambda":{"runtime":"python","handler":"a.b","directory":"f","memoryMb":1}})", "/handlers/chat/lambda/memoryMb", ">= 16"},
            {R"({"lambda":{"runtime":"python","handler":"a.b","directory":"f","timeout":3}})", "/handlers/chat/lambda/timeout", "unknown property 'timeout'"},
            {R"({"lambda":{"runtime":"python","handler":"a.b","directory":"f","environment":{"N":1}}})", "/handlers/chat/lambda/environment/N", "expected string"},
            {R"({"lambda":{"runtime":"python","handler":"a.b","directory":"f","environment":{"AWS_REGION":"x"}}})",
             "/handlers/chat/lambda/environment/AWS_REGION", "set by the gateway"},
            {R"({"lambda":{"runtime":"python","handler":"a.b","directory":"f","environment":{"A-B":"x"}}})",
             "/handlers/chat/lambda/environment/A-B", "not an environment variable name"},
            {R"({"plugin":"echo","lambda":{"runtime":"python","handler":"a.b","directory":"f"}})", "/handlers/chat/plugin",
             "belongs to a plugin handler"},
        };
        for (const Case &c : cases) {
            CAPTURE(c.json);
            ConfigError e = lambdaError(c.json);
            CHECK(e.file == "/srv/api/routes.json");
            CHECK(e.jsonPath == c.path);
            CHECK_MESSAGE(e.reason.find(c.reason) != std::string::npos, e.reason);
        }
    }
    TEST_CASE("\"stage\": \"local\" by default, read from routes.json, copied to every lambda handler, checked") {
        auto byDefault = parseApiConfig(withHandler(R"({"lambda":{"runtime":"nodejs","handler":"app.handler","directory":"f"}})"), "/srv/r.json");
        REQUIRE(std::holds_alternative<ApiConfig>(byDefault));
        CHECK(std::get<ApiConfig>(byDefault).stage == "local");
        CHECK(std::get<ApiConfig>(byDefault).handlers.at("chat").lambda.stage == "local");
        auto given = parseApiConfig(R"({"routeSelectionExpression":"$request.body.action","stage":"prod_2",
            "handlers":{"chat":{"lambda":{"runtime":"nodejs","handler":"app.handler","directory":"f"}}},
            "routes":{"$default":{"handler":"chat"}}})", "/srv/r.json");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(given), std::get<ConfigError>(given).message());
        CHECK(std::get<ApiConfig>(given).stage == "prod_2");
        CHECK(std::get<ApiConfig>(given).handlers.at("chat").lambda.stage == "prod_2");
        for (const char *bad : {R"("")", R"("a/b")", R"("$default")", R"(3)"}) {
            CAPTURE(bad);
            auto r = parseApiConfig(std::string(R"({"routeSelectionExpression":"$request.body.action","stage":)") + bad +
                                        R"(,"routes":{"$default":{"handler":"echo"}}})", "/srv/r.json");
            REQUIRE(std::holds_alternative<ConfigError>(r));
            CHECK(std::get<ConfigError>(r).jsonPath == "/stage");
        }
        auto slash = parseApiConfig(R"({"routeSelectionExpression":"x","stage":"a/b","routes":{"$default":{"handler":"echo"}}})", "/srv/r.json");
        CHECK(std::get<ConfigError>(slash).reason.find("not a stage name") != std::string::npos);
    }
}
