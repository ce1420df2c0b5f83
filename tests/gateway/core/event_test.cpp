#include "event.h"
#include "log.h"

#include <wsgw/handler.h>

#include <algorithm>
#include <cstdint>

#include <doctest/doctest.h>
#include <rapidjson/document.h>

using namespace wsgw;

namespace {
rapidjson::Document parseJson(const std::string &json) {
    rapidjson::Document d;
    d.Parse(json.c_str(), json.size());
    REQUIRE_MESSAGE(!d.HasParseError(), json);
    REQUIRE(d.IsObject());
    return d;
}

ConnectionInfo sampleConnection() {
    ConnectionInfo c;
    c.connectionId = "k3Jd9xQpS2uYb7vT1mWz0A";
    c.connectedAtMs = 1763800000000;
    c.sourceIp = "127.0.0.1";
    c.userAgent = "wscat";
    c.headers = {{"Host", "localhost:8080"}, {"X-Multi", "a"}, {"X-Multi", "b"}, {"X-Quote", "say \"hi\"\n"}};
    return c;
}
}  // namespace

TEST_SUITE("event") {
    TEST_CASE("CONNECT: requestContext, headers, query only with a query, no body") {
        ConnectionInfo c = sampleConnection();
        EventFields f;
        f.type = WSGW_CONNECT;
        f.routeKey = "$connect";
        f.requestId = "req-1";
        f.requestTimeEpochMs = 1763800001234;
        auto d = parseJson(buildEventJson(c, f));
        const auto &rc = d["requestContext"];
        CHECK(std::string(rc["routeKey"].GetString()) == "$connect");
        CHECK(std::string(rc["eventType"].GetString()) == "CONNECT");
        CHECK(std::string(rc["messageDirection"].GetString()) == "IN");
        CHECK(std::string(rc["connectionId"].GetString()) == c.connectionId);
        CHECK(std::string(rc["requestId"].GetString()) == "req-1");
        CHECK(std::string(rc["extendedRequestId"].GetString()) == "req-1");
        CHECK(std::string(rc["stage"].GetString()) == "$default");
        CHECK(rc["connectedAt"].GetInt64() == 1763800000000);
        CHECK(rc["requestTimeEpoch"].GetInt64() == 1763800001234);
        CHECK(std::string(rc["requestTime"].GetString()) == "22/Nov/2025:08:26:41 +0000");
        CHECK(std::string(rc["identity"]["sourceIp"].GetString()) == "127.0.0.1");
        CHECK(std::string(rc["identity"]["userAgent"].GetString()) == "wscat");
        CHECK_FALSE(rc.HasMember("messageId"));
        CHECK_FALSE(rc.HasMember("authorizer"));
        CHECK_FALSE(rc.HasMember("disconnectStatusCode"));
        CHECK(std::string(d["headers"]["X-Multi"].GetString()) == "b");
        CHECK(d["multiValueHeaders"]["X-Multi"].Size() == 2);
        CHECK(std::string(d["multiValueHeaders"]["X-Multi"][0].GetString()) == "a");
        CHECK(std::string(d["headers"]["X-Quote"].GetString()) == "say \"hi\"\n");
        CHECK_FALSE(d.HasMember("queryStringParameters"));
        CHECK_FALSE(d.HasMember("multiValueQueryStringParameters"));
        CHECK_FALSE(d.HasMember("body"));
        CHECK(d["isBase64Encoded"].IsFalse());

        c.rawQuery = "apikey=k%2B1&tag=a&tag=b";
        auto q = parseJson(buildEventJson(c, f));
        CHECK(std::string(q["queryStringParameters"]["apikey"].GetString()) == "k+1");
        CHECK(std::string(q["queryStringParameters"]["tag"].GetString()) == "b");
        CHECK(q["multiValueQueryStringParameters"]["tag"].Size() == 2);
    }

    TEST_CASE("MESSAGE: body and messageId; binary bodies are base64") {
        ConnectionInfo c = sampleConnection();
        c.authorizerJson = R"({"principalId":"alice"})";
        EventFields f;
        f.type = WSGW_MESSAGE;
        f.routeKey = "sendmessage";
        f.requestId = "r";
        f.messageId = "m";
        f.body = "{\"action\":\"sendmessage\",\"data\":\"hi\"}";
        auto d = parseJson(buildEventJson(c, f));
        CHECK(std::string(d["body"].GetString()) == f.body);
        CHECK(std::string(d["requestContext"]["messageId"].GetString()) == "m");
        CHECK(std::string(d["requestContext"]["authorizer"]["principalId"].GetString()) == "alice");
        CHECK(d["isBase64Encoded"].IsFalse());
        CHECK_FALSE(d.HasMember("headers"));
        f.body = std::string_view("\x00\xff\x10", 3);
        f.isBinary = true;
        auto b = parseJson(buildEventJson(c, f));
        CHECK(std::string(b["body"].GetString()) == "AP8Q");
        CHECK(b["isBase64Encoded"].IsTrue());
    }

    TEST_CASE("DISCONNECT: status code and reason in requestContext, no body") {
        EventFields f;
        f.type = WSGW_DISCONNECT;
        f.routeKey = "$disconnect";
        f.requestId = "r";
        f.disconnectStatusCode = 1005;
        f.disconnectReason = "Client-side close frame status not set";
        auto d = parseJson(buildEventJson(sampleConnection(), f));
        CHECK(d["requestContext"]["disconnectStatusCode"].GetInt() == 1005);
        CHECK(std::string(d["requestContext"]["disconnectReason"].GetString()) == f.disconnectReason);
        CHECK_FALSE(d.HasMember("body"));
        CHECK_FALSE(d["requestContext"].HasMember("messageId"));
    }

    TEST_CASE("invalid UTF-8 and control characters still give valid JSON") {
        ConnectionInfo c = sampleConnection();
        std::string bad = "a\xff\xfe";
        bad += "b\x01";
        c.headers = {{"X-Bad", bad}};
        c.userAgent.assign(1, static_cast<char>(0xc3));
        EventFields f;
        f.type = WSGW_CONNECT;
        auto d = parseJson(buildEventJson(c, f));
        CHECK(std::string(d["headers"]["X-Bad"].GetString()) == "a\xEF\xBF\xBD\xEF\xBF\xBD" "b\x01");
    }

    TEST_CASE("time formats") {
        CHECK(formatRequestTime(1763800801234) == "22/Nov/2025:08:40:01 +0000");
        CHECK(formatRequestTime(0) == "01/Jan/1970:00:00:00 +0000");
        CHECK(formatIso8601Millis(1763800801234) == "2025-11-22T08:40:01.234Z");
        CHECK(formatIso8601Millis(5) == "1970-01-01T00:00:00.005Z");
    }

    TEST_CASE("GET /@connections description") {
        auto d = parseJson(connectionDescriptionJson(sampleConnection(), 1763800801234));
        CHECK(std::string(d["connectedAt"].GetString()) == "2025-11-22T08:26:40.000Z");
        CHECK(std::string(d["lastActiveAt"].GetString()) == "2025-11-22T08:40:01.234Z");
        CHECK(std::string(d["identity"]["sourceIp"].GetString()) == "127.0.0.1");
    }

    TEST_CASE("query strings") {
        using P = std::vector<std::pair<std::string, std::string>>;
        CHECK(parseQueryString("a=1&b=2") == P{{"a", "1"}, {"b", "2"}});
        CHECK(parseQueryString("k=%2B+x") == P{{"k", "+ x"}});
        CHECK(parseQueryString("k=&flag") == P{{"k", ""}, {"flag", ""}});
        CHECK(parseQueryString("t=1&t=2") == P{{"t", "1"}, {"t", "2"}});
        CHECK(parseQueryString("a=%zz&b=%4") == P{{"a", "%zz"}, {"b", "%4"}});
        CHECK(parseQueryString("&&a=1&") == P{{"a", "1"}});
        CHECK(parseQueryString("").empty());
        CHECK(multiValueJson(P{{"t", "1"}, {"t", "2"}, {"u", "\""}}) == R"({"t":["1","2"],"u":["\""]})");
    }

    TEST_CASE("multi-value JSON: every value of a name, in order, under its first occurrence") {
        using P = std::vector<std::pair<std::string, std::string>>;
        CHECK(multiValueJson(P{}) == "{}");
        CHECK(multiValueJson(P{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", ""}, {"b", "4"}, {"a", "5"}}) ==
              R"({"a":["1","3","5"],"b":["2","4"],"c":[""]})");
        // Names are matched exactly (the table keeps headers as sent), so case variants stay apart.
        CHECK(multiValueJson(P{{"X-K", "1"}, {"x-k", "2"}}) == R"({"X-K":["1"],"x-k":["2"]})");
        CHECK(multiValueJson(P{{"q\"", "a\\b"}}) == R"({"q\"":["a\\b"]})");
        // Against the definition, on many generated lists: group names in first-seen order, values in order.
        uint32_t seed = 12345;
        auto next = [&seed] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
        for (int round = 0; round < 500; ++round) {
            P pairs;
            size_t n = next() % 12;
            for (size_t i = 0; i < n; ++i) pairs.push_back({std::string(1, static_cast<char>('a' + next() % 4)), std::to_string(next() % 100)});
            std::vector<std::pair<std::string, std::vector<std::string>>> groups;
            for (const auto &[name, value] : pairs) {
                auto it = std::find_if(groups.begin(), groups.end(), [&](const auto &g) { return g.first == name; });
                if (it == groups.end()) groups.push_back({name, {value}});
                else it->second.push_back(value);
            }
            std::string expected = "{";
            for (size_t g = 0; g < groups.size(); ++g) {
                expected += (g ? ",\"" : "\"") + groups[g].first + "\":[";
                for (size_t v = 0; v < groups[g].second.size(); ++v) expected += (v ? ",\"" : "\"") + groups[g].second[v] + "\"";
                expected += "]";
            }
            expected += "}";
            REQUIRE(multiValueJson(pairs) == expected);
            rapidjson::Document d;
            d.Parse(expected.c_str());
            REQUIRE_FALSE(d.HasParseError());
        }
    }

    TEST_CASE("JSON strings: escapes, control bytes and UTF-8 around plain runs") {
        auto json = [](std::string_view v) {
            std::string out = "x";
            log::appendJsonString(out, v);
            return out;
        };
        CHECK(json("") == "x\"\"");
        CHECK(json("plain text, no escapes") == "x\"plain text, no escapes\"");
        CHECK(json("a\"b\\c") == "x\"a\\\"b\\\\c\"");
        CHECK(json("line\nfeed\rret\ttab") == "x\"line\\nfeed\\rret\\ttab\"");
        CHECK(json(std::string_view("\x01mid\x1f\0end", 9)) == "x\"\\u0001mid\\u001f\\u0000end\"");
        CHECK(json("\x7f") == "x\"\x7f\"");  // DEL is legal in a JSON string
        // Valid UTF-8 passes as is, between plain runs; each byte of a broken sequence becomes U+FFFD.
        CHECK(json("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80!") == "x\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80!\"");
        CHECK(json("a\xC3" "b\xFF") == "x\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\"");
        CHECK(json("\xE2\x82") == "x\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
        // Whatever the input, the result parses back to the input's valid-UTF-8 reading.
        std::string all;
        for (int c = 0; c < 128; ++c) all += static_cast<char>(c);
        std::string doc = "{\"k\":";
        log::appendJsonString(doc, all);
        doc += "}";
        rapidjson::Document d;
        d.Parse(doc.c_str(), doc.size());
        REQUIRE_FALSE(d.HasParseError());
        CHECK(std::string(d["k"].GetString(), d["k"].GetStringLength()) == all);
    }

    TEST_CASE("base64") {
        CHECK(base64Encode("") == "");
        CHECK(base64Encode("f") == "Zg==");
        CHECK(base64Encode("fo") == "Zm8=");
        CHECK(base64Encode("foo") == "Zm9v");
        CHECK(base64Encode("foob") == "Zm9vYg==");
    }

    TEST_CASE("log lines are one JSON object with escaped fields") {
        std::string line = log::formatLine(log::Level::Warn, "a \"quoted\" msg",
                                           {log::Field("s", "x\ny"), log::Field("n", int64_t{-5}), log::Field("b", true),
                                            log::Field::rawJson("j", R"({"k":1})")});
        REQUIRE(line.back() == '\n');
        auto d = parseJson(line.substr(0, line.size() - 1));
        CHECK(std::string(d["level"].GetString()) == "warn");
        CHECK(std::string(d["msg"].GetString()) == "a \"quoted\" msg");
        CHECK(std::string(d["s"].GetString()) == "x\ny");
        CHECK(d["n"].GetInt() == -5);
        CHECK(d["b"].IsTrue());
        CHECK(d["j"]["k"].GetInt() == 1);
        CHECK(line.find('\n') == line.size() - 1);
    }
}
