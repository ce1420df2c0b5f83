// A Lambda function's result as AWS API Gateway maps it (docs/lambda.md), and its error body.
#include "lambda_result.h"

#include <doctest/doctest.h>

using namespace wsgw;

TEST_SUITE("lambda result") {
    TEST_CASE("a proxy result: statusCode and body") {
        LambdaResult r = mapLambdaResult(R"({"statusCode":403,"body":"no entry"})");
        CHECK(r.ok);
        CHECK(r.status == 403);
        CHECK(r.hasBody);
        CHECK(r.body == "no entry");
        CHECK_FALSE(r.binary);
        LambdaResult s = mapLambdaResult(R"({"statusCode":"201"})");
        CHECK(s.ok);
        CHECK(s.status == 201);
        CHECK_FALSE(s.hasBody);  // no body: nothing is sent
        LambdaResult garbled = mapLambdaResult(R"({"statusCode":"4x3"})");  // read as 4 before
        CHECK_FALSE(garbled.ok);
        CHECK(garbled.problem.find("statusCode is not an integer: \"4x3\"") != std::string::npos);
        LambdaResult b = mapLambdaResult(R"({"body":"hi"})");
        CHECK(b.status == 200);
        CHECK(b.body == "hi");
    }

    TEST_CASE("a plain string is the body; null sends nothing; other JSON is sent as its text") {
        LambdaResult s = mapLambdaResult(R"("hello")");
        CHECK(s.ok);
        CHECK(s.status == 200);
        CHECK(s.hasBody);
        CHECK(s.body == "hello");
        LambdaResult e = mapLambdaResult(R"("")");
        CHECK(e.hasBody);  // an empty message is still a message (a non-NULL empty body is sent)
        CHECK(e.body.empty());
        LambdaResult n = mapLambdaResult("null");
        CHECK(n.ok);
        CHECK_FALSE(n.hasBody);
        LambdaResult o = mapLambdaResult(R"({"a": [1, 2]})");
        CHECK(o.hasBody);
        CHECK(o.body == R"({"a":[1,2]})");
        CHECK(mapLambdaResult("42").body == "42");
        CHECK(mapLambdaResult(R"({"statusCode":200,"body":{"x":1}})").body == R"({"x":1})");
    }

    TEST_CASE("isBase64Encoded: the body is decoded and sent binary") {
        LambdaResult r = mapLambdaResult(R"({"statusCode":200,"body":"AAEC/w==","isBase64Encoded":true})");
        CHECK(r.ok);
        CHECK(r.binary);
        CHECK(r.body == std::string("\x00\x01\x02\xff", 4));
        CHECK_FALSE(mapLambdaResult(R"({"body":"%%%","isBase64Encoded":true})").ok);
    }

    TEST_CASE("results that cannot be mapped are integration errors, with a reason") {
        LambdaResult bad = mapLambdaResult("{not json");
        CHECK_FALSE(bad.ok);
        CHECK(bad.problem.find("not JSON") != std::string::npos);
        CHECK_FALSE(mapLambdaResult(R"({"statusCode":true,"body":"x"})").ok);
        CHECK_FALSE(mapLambdaResult(R"({"statusCode":99,"body":"x"})").ok);
        CHECK_FALSE(mapLambdaResult(R"({"statusCode":600})").ok);
    }

    TEST_CASE("an error body's type and message, or its raw text") {
        LambdaError e = parseLambdaError(R"({"errorType":"TypeError","errorMessage":"x is undefined","stackTrace":["at f"]})", "");
        CHECK(e.type == "TypeError");
        CHECK(e.message == "x is undefined");
        LambdaError raw = parseLambdaError("segfault!", "Runtime.Crash");
        CHECK(raw.type == "Runtime.Crash");
        CHECK(raw.message == "segfault!");
        CHECK(parseLambdaError("{}", "").type == "Unhandled");
    }

    TEST_CASE("a result or error nested deeper than 512 levels is refused before it is parsed") {
        LambdaResult deep = mapLambdaResult(std::string(200000, '['));
        CHECK_FALSE(deep.ok);
        CHECK(deep.problem.find("deeper than 512 levels") != std::string::npos);
        CHECK(mapLambdaResult(std::string(100, '[') + std::string(100, ']')).ok);
        LambdaError e = parseLambdaError(std::string(200000, '{'), "");
        CHECK(e.type == "Unhandled");
        CHECK(e.message.size() <= 2003);  // its raw text, cut
    }
}
