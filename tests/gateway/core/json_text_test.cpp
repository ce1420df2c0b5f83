// compactJson and findMember (gateway/core/json_text.h).
#include "json_text.h"

#include <doctest/doctest.h>

using namespace wsgw;

TEST_CASE("compactJson writes a value without whitespace, escaping as JSON requires") {
    rapidjson::Document d;
    d.Parse(R"({ "a" : [ 1, 2.5, true, null ], "b" : { "c" : "x\"y\n\u00e9" } })");
    REQUIRE_FALSE(d.HasParseError());
    CHECK(compactJson(d) == "{\"a\":[1,2.5,true,null],\"b\":{\"c\":\"x\\\"y\\n\xc3\xa9\"}}");
    CHECK(compactJson(d["a"][0]) == "1");
    CHECK(compactJson(d["b"]["c"]) == "\"x\\\"y\\n\xc3\xa9\"");
    rapidjson::Document round;
    round.Parse(compactJson(d).c_str());
    CHECK(round == d);
}

TEST_CASE("findMember finds a member by name, or says there is none") {
    rapidjson::Document d;
    d.Parse(R"({"aud": "x", "exp": 5, "": 1})");
    REQUIRE(findMember(d, "aud") != nullptr);
    CHECK(findMember(d, "aud")->GetString() == std::string("x"));
    CHECK(findMember(d, "exp")->GetInt() == 5);
    CHECK(findMember(d, "")->GetInt() == 1);
    CHECK(findMember(d, "AUD") == nullptr);  // names are case-sensitive, as JSON's are
    CHECK(findMember(d, "missing") == nullptr);
}

TEST_CASE("jsonDepthWithin counts arrays and objects open at once, not brackets inside strings") {
    CHECK(jsonDepthWithin("{}", 1));
    CHECK_FALSE(jsonDepthWithin("[[]]", 1));
    CHECK(jsonDepthWithin("[[]]", 2));
    CHECK(jsonDepthWithin(R"({"a":"[[[[[[","b":[1,{"c":"\"[["}]})", 3));
    CHECK_FALSE(jsonDepthWithin(R"({"a":[{"b":[]}]})", 3));
    CHECK(jsonDepthWithin(std::string(512, '[') + std::string(512, ']')));
    CHECK_FALSE(jsonDepthWithin(std::string(513, '[') + std::string(513, ']')));
    CHECK_FALSE(jsonDepthWithin(std::string(1000000, '[')));
}
