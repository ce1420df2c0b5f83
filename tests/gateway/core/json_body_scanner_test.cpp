// The JSON body scanner (core/json_body_scanner) on its own: what it captures at each path (a scalar's text,
// a container or null as not scalar, a missing key), that it validates the whole body whatever the paths,
// and its bounds (64 containers deep, 64 paths a pass). Route selection on top of it (how captures become a
// key, $default) is tested in route_selector_test.cpp.
#include "json_body_scanner.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace wsgw;

namespace {

// What the scan leaves at each path: "<invalid>" when the body is refused, else per path "<missing>",
// "<not scalar>" or the captured text, joined by '|'.
std::string scanResult(std::string_view body, const std::vector<std::vector<std::string>> &paths) {
    std::vector<const std::vector<std::string> *> pointers;
    for (const auto &p : paths) pointers.push_back(&p);
    std::vector<JsonCapture> captures(paths.size());
    if (!scanJsonBody(body, pointers.data(), pointers.size(), captures.data())) return "<invalid>";
    std::string out;
    for (size_t i = 0; i < captures.size(); ++i) {
        if (i) out += '|';
        switch (captures[i].kind) {
        case JsonCapture::Kind::Missing: out += "<missing>"; break;
        case JsonCapture::Kind::NotScalar: out += "<not scalar>"; break;
        case JsonCapture::Kind::Scalar: out += captures[i].text; break;
        }
    }
    return out;
}

}  // namespace

TEST_SUITE("json_body_scanner") {
    TEST_CASE("captures: strings decoded, numbers and booleans as written, null and containers not scalar") {
        std::string body = R"({"s":"a\nb\u00e9","n":-1.5e3,"t":true,"z":null,"o":{"k":"v"},"a":[1]})";
        CHECK(scanResult(body, {{"s"}, {"n"}, {"t"}, {"z"}, {"o"}, {"a"}, {"o", "k"}, {"x"}, {"s", "deeper"}}) ==
              "a\nb\xc3\xa9|-1.5e3|true|<not scalar>|<not scalar>|<not scalar>|v|<missing>|<missing>");
    }

    TEST_CASE("two paths to the same value both get it; a later duplicate key replaces all an earlier one held") {
        CHECK(scanResult(R"({"a":"x"})", {{"a"}, {"a"}}) == "x|x");
        CHECK(scanResult(R"({"o":{"k":"v"},"o":1})", {{"o", "k"}, {"o"}}) == "<missing>|1");
    }

    TEST_CASE("the whole body is validated, off the paths too") {
        CHECK(scanResult(R"({"a":"x","b":[1,2,{"c":"\q"}]})", {{"a"}}) == "<invalid>");  // a bad escape off the path
        CHECK(scanResult(R"({"a":"x","b":01})", {{"a"}}) == "<invalid>");              // a leading zero
        CHECK(scanResult("{\"a\":\"x\",\"b\":\"\xff\"}", {{"a"}}) == "<invalid>");     // not UTF-8
        CHECK(scanResult(R"({"a":"x"} {})", {{"a"}}) == "<invalid>");                  // two roots
        CHECK(scanResult(R"(["a"])", {{"a"}}) == "<invalid>");                         // not an object
        CHECK(scanResult(R"({"a":"\ud800"})", {{"a"}}) == "<invalid>");                // a lone high surrogate
        CHECK(scanResult(" {\"a\" : \"x\" }\n", {{"a"}}) == "x");
    }

    TEST_CASE("long strings are scanned by the vector paths and still checked byte for byte") {
        std::string big(5000, 'x');
        CHECK(scanResult(R"({"p":")" + big + R"(","a":"y"})", {{"a"}}) == "y");
        std::string controlLate = big;
        controlLate[4097] = '\x01';
        CHECK(scanResult(R"({"p":")" + controlLate + R"(","a":"y"})", {{"a"}}) == "<invalid>");
        CHECK(scanResult(R"({"a":")" + big + R"("})", {{"a"}}) == big);
    }

    TEST_CASE("bounds: 64 containers deep, 64 paths in one pass") {
        auto nested = [](size_t depth) {
            std::string s;
            for (size_t i = 1; i < depth; ++i) s += "{\"k\":";
            s += "{}";
            for (size_t i = 1; i < depth; ++i) s += "}";
            return s;
        };
        CHECK(scanResult(nested(kJsonScanMaxDepth), {{"x"}}) == "<missing>");
        CHECK(scanResult(nested(kJsonScanMaxDepth + 1), {{"x"}}) == "<invalid>");
        std::string body = "{";
        std::vector<std::vector<std::string>> paths;
        for (size_t i = 0; i < kJsonScanMaxPaths; ++i) {
            body += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
            paths.push_back({"k" + std::to_string(i)});
        }
        body += "}";
        std::string expected;
        for (size_t i = 0; i < kJsonScanMaxPaths; ++i) expected += (i ? "|" : "") + std::to_string(i);
        CHECK(scanResult(body, paths) == expected);
    }
}
