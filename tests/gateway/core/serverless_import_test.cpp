// `wsgw import serverless.yml` (docs/lambda.md): what a Serverless Framework project's WebSocket API becomes in
// routes.json, and the message (file:line:column, what, what to do) for each thing it cannot import.
#include "serverless_import.h"

#include "config.h"

#include <doctest/doctest.h>
#include <rapidjson/document.h>

using namespace wsgw;

namespace {

const char *kChat = R"(service: chat
provider:
  name: aws
  runtime: nodejs20.x
  stage: ${opt:stage, 'prod'}
  websocketsApiRouteSelectionExpression: $request.body.type
  environment:
    TABLE: ${self:service}-connections
    SHARED: provider
functions:
  connectHandler:
    handler: src/handler.connect
    events:
      - websocket:
          route: $connect
  disconnectHandler:
    handler: src/handler.disconnect
    events:
      - websocket: $disconnect
  defaultHandler:
    handler: src/handler.fallback
    runtime: python3.12
    memorySize: 256
    timeout: 60
    environment:
      SHARED: function
      HOME_DIR: ${env:WSGW_TEST_HOME, '/nowhere'}
    events:
      - websocket:
          route: $default
          routeResponseSelectionExpression: $default
      - websocket:
          route: ping
          routeResponseSelectionExpression: $default
  cron:
    handler: src/cron.run
    events:
      - schedule: rate(1 minute)
)";

std::string importError(const std::string &yaml, const std::map<std::string, std::string> &env = {}) {
    auto r = importServerlessYaml(yaml, "app/serverless.yml", env);
    REQUIRE_MESSAGE(std::holds_alternative<std::string>(r), "expected an error for:\n" << yaml);
    return std::get<std::string>(r);
}

}  // namespace

TEST_SUITE("serverless import") {
    TEST_CASE("routes, handlers, runtime, environment, memory, timeout and stage; the result is a valid routes.json") {
        auto r = importServerlessYaml(kChat, "serverless.yml", {{"WSGW_TEST_HOME", "/home/x"}});
        REQUIRE_MESSAGE(std::holds_alternative<ServerlessImport>(r), std::get<std::string>(r));
        const ServerlessImport &imported = std::get<ServerlessImport>(r);
        rapidjson::Document d;
        d.Parse(imported.routesJson.c_str());
        REQUIRE_FALSE(d.HasParseError());
        CHECK(std::string(d["routeSelectionExpression"].GetString()) == "$request.body.type");
        CHECK(std::string(d["stage"].GetString()) == "prod");
        const auto &h = d["handlers"];
        CHECK(h.MemberCount() == 3);  // cron has no websocket event
        CHECK(std::string(h["connectHandler"]["lambda"]["runtime"].GetString()) == "nodejs");
        CHECK(std::string(h["connectHandler"]["lambda"]["handler"].GetString()) == "src/handler.connect");
        CHECK(std::string(h["connectHandler"]["lambda"]["directory"].GetString()) == ".");
        CHECK(std::string(h["connectHandler"]["lambda"]["environment"]["TABLE"].GetString()) == "chat-connections");
        CHECK(std::string(h["connectHandler"]["lambda"]["environment"]["SHARED"].GetString()) == "provider");
        const auto &fallback = h["defaultHandler"]["lambda"];
        CHECK(std::string(fallback["runtime"].GetString()) == "python");
        CHECK(fallback["memoryMb"].GetUint() == 256);
        CHECK(std::string(fallback["environment"]["SHARED"].GetString()) == "function");
        CHECK(std::string(fallback["environment"]["HOME_DIR"].GetString()) == "/home/x");
        const auto &routes = d["routes"];
        CHECK(routes.MemberCount() == 4);
        CHECK(std::string(routes["$connect"]["handler"].GetString()) == "connectHandler");
        CHECK_FALSE(routes["$connect"].HasMember("routeResponse"));
        CHECK(std::string(routes["$disconnect"]["handler"].GetString()) == "disconnectHandler");
        CHECK(routes["$default"]["routeResponse"].GetBool());
        CHECK(routes["ping"]["routeResponse"].GetBool());
        CHECK(routes["ping"]["timeoutMs"].GetUint() == 29000);  // 60 s cut to API Gateway's 29 s
        REQUIRE(imported.warnings.size() == 2);
        CHECK(imported.warnings[0].find("29 s") != std::string::npos);
        CHECK(imported.warnings[1].find("'cron' has no websocket event") != std::string::npos);
        auto config = parseApiConfig(imported.routesJson, "/srv/app/routes.json");
        REQUIRE_MESSAGE(std::holds_alternative<ApiConfig>(config), std::get<ConfigError>(config).message());
        CHECK(std::get<ApiConfig>(config).handlers.at("connectHandler").lambda.directory == "/srv/app");
    }

    TEST_CASE("defaults: $request.body.action, stage dev, nodejs; a missing ${env:...} default is used") {
        auto r = importServerlessYaml("service: s\nfunctions:\n  f:\n    handler: app.handler\n    environment:\n      X: ${env:NOPE, fallback}\n"
                                      "    events:\n      - websocket: $default\n",
                                      "serverless.yml");
        REQUIRE_MESSAGE(std::holds_alternative<ServerlessImport>(r), std::get<std::string>(r));
        rapidjson::Document d;
        d.Parse(std::get<ServerlessImport>(r).routesJson.c_str());
        CHECK(std::string(d["routeSelectionExpression"].GetString()) == "$request.body.action");
        CHECK(std::string(d["stage"].GetString()) == "dev");
        CHECK(std::string(d["handlers"]["f"]["lambda"]["runtime"].GetString()) == "nodejs");
        CHECK(std::string(d["handlers"]["f"]["lambda"]["environment"]["X"].GetString()) == "fallback");
    }

    TEST_CASE("bad input: file:line:column, what, what to do") {
        struct Case {
            const char *yaml;
            const char *where;
            const char *what;
        };
        const Case cases[] = {
            {"functions: [unclosed\n", "app/serverless.yml:", "not valid YAML"},
            {"- a list\n", "app/serverless.yml", "expected a mapping"},
            {"service: s\n", "app/serverless.yml", "no 'functions'"},
            {"functions:\n  f:\n    handler: a.b\n    events:\n      - http: GET /\n", "app/serverless.yml", "no function has a websocket event"},
            {"functions:\n  f:\n    events:\n      - websocket: $default\n", "app/serverless.yml:3:5", "has no 'handler'"},
            {"provider:\n  runtime: java17\nfunctions:\n  f:\n    handler: a.b\n    events:\n      - websocket: $default\n",
             "app/serverless.yml:2:12", "give the handler a \"command\""},
            {"functions:\n  f:\n    handler: a.b\n    events:\n      - websocket:\n          route: $default\n"
             "          authorizer: auth\n",
             "app/serverless.yml:7:23", "Lambda authorizer is not run by wsgw"},
            {"functions:\n  f:\n    handler: a.b\n    events:\n      - websocket: $other\n", "app/serverless.yml:5:20", "$connect, $disconnect and $default only"},
            {"functions:\n  f:\n    handler: a.b\n    events:\n      - websocket: $default\n  g:\n    handler: a.c\n    events:\n      - websocket: $default\n",
             "app/serverless.yml:9:20", "declared twice (also at app/serverless.yml:5:20)"},
            {"functions:\n  f:\n    handler: a.b\n    environment:\n      X: ${ssm:/secret}\n    events:\n      - websocket: $default\n",
             "app/serverless.yml:5:10", "only ${self:...}, ${env:NAME}"},
            {"functions:\n  f:\n    handler: a.b\n    environment:\n      X: ${env:WSGW_UNSET_FOR_TEST}\n    events:\n      - websocket: $default\n",
             "app/serverless.yml:5:10", "give a default"},
            {"functions:\n  f:\n    handler: a.b\n    memorySize: lots\n    events:\n      - websocket: $default\n", "app/serverless.yml:4:17", "not a whole number"},
            {"functions:\n  f:\n    handler: a.b\n    environment:\n      AWS_REGION: eu-west-1\n    events:\n      - websocket: $default\n",
             "app/serverless.yml: the routes.json made from it would be refused", "set by the gateway"},
            {"provider:\n  stage: a/b\nfunctions:\n  f:\n    handler: a.b\n    events:\n      - websocket: $default\n", "app/serverless.yml:2:10",
             "not a stage name"},
            {"functions:\n  f:\n    handler: a.b\n    events:\n      - websocket:\n          route: x\n          routeResponseSelectionExpression: $request.body\n",
             "app/serverless.yml:7:45", "accepts only $default"},
        };
        for (const Case &c : cases) {
            CAPTURE(c.yaml);
            std::string e = importError(c.yaml);
            CHECK_MESSAGE(e.rfind(c.where, 0) == 0, e);
            CHECK_MESSAGE(e.find(c.what) != std::string::npos, e);
        }
    }
}
