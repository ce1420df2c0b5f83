#include "utf8.h"

#include <doctest/doctest.h>

#include <string>

using namespace wsgw;

namespace {
bool valid(const std::string &s) { return isValidUtf8(s.data(), s.size()); }
}  // namespace

TEST_SUITE("utf8") {
    TEST_CASE("valid text of every width") {
        CHECK(valid(""));
        CHECK(valid("plain ascii"));
        CHECK(valid("caf\xc3\xa9"));                  // 2 bytes
        CHECK(valid("\xe2\x82\xac"));                 // 3 bytes (euro)
        CHECK(valid("\xf0\x9f\x98\x80"));             // 4 bytes (emoji)
        CHECK(valid("\xf4\x8f\xbf\xbf"));             // U+10FFFF
        CHECK(valid(std::string(1000, 'a') + "\xc3\xa9" + std::string(77, 'b')));
    }

    TEST_CASE("invalid sequences") {
        CHECK_FALSE(valid("\x80"));                   // lone continuation
        CHECK_FALSE(valid("\xc3"));                   // truncated at the end
        CHECK_FALSE(valid("\xe2\x82"));
        CHECK_FALSE(valid("\xc0\xaf"));               // overlong
        CHECK_FALSE(valid("\xe0\x80\xaf"));
        CHECK_FALSE(valid("\xed\xa0\x80"));           // surrogate
        CHECK_FALSE(valid("\xf4\x90\x80\x80"));       // over U+10FFFF
        CHECK_FALSE(valid("\xff"));
        CHECK_FALSE(valid("\xc3\x28"));               // bad continuation
    }

    TEST_CASE("a bad byte is found wherever it sits in a long ASCII run (the fast paths' edges)") {
        for (size_t len : {1u, 7u, 8u, 9u, 31u, 32u, 33u, 63u, 64u, 65u, 100u}) {
            for (size_t at = 0; at < len; ++at) {
                std::string s(len, 'x');
                s[at] = '\xff';
                CAPTURE(len);
                CAPTURE(at);
                REQUIRE_FALSE(valid(s));
                s[at] = '\xc3';  // a two-byte lead: valid only when followed by a continuation
                if (at + 1 < len) {
                    s[at + 1] = '\xa9';
                    REQUIRE(valid(s));
                } else {
                    REQUIRE_FALSE(valid(s));
                }
            }
        }
    }
}
