// The ASCII text helpers (core/text): case-insensitive compare, tokens, hex, percent-decoding (strict,
// strict with Azure Web PubSub's options, lenient) and how bytes and client text read in error messages.
#include "text.h"

#include <doctest/doctest.h>

#include <string>

using namespace wsgw;

TEST_SUITE("text") {
    TEST_CASE("case-insensitive compare, tokens, hex") {
        CHECK(equalsIgnoreCase("Content-Length", "content-LENGTH"));
        CHECK_FALSE(equalsIgnoreCase("abc", "abd"));
        CHECK_FALSE(equalsIgnoreCase("abc", "ab"));
        CHECK_FALSE(equalsIgnoreCase("\xc3\xa9", "\xc3\x89"));  // ASCII only
        CHECK(endsWithIgnoreCase("gzip, Chunked", "chunked"));
        CHECK(listHasToken("keep-alive, Upgrade", "upgrade"));
        CHECK(listHasToken(" , close ,", "close"));
        CHECK_FALSE(listHasToken("upgraded", "upgrade"));
        CHECK(hexDigitValue('f') == 15);
        CHECK(hexDigitValue('F') == 15);
        CHECK(hexDigitValue('g') == -1);
        CHECK(toHex(std::string("\x00\xff\x10", 3)) == "00ff10");
        CHECK(toLowerAscii("AbC-1") == "abc-1");
        CHECK(trimOws(" \t a b \t") == "a b");
    }

    TEST_CASE("percent-decoding: strict refuses bad escapes and NUL, lenient keeps them") {
        bool ok = false;
        CHECK(percentDecode("a%40b%3d", &ok) == "a@b=");
        CHECK(ok);
        for (const char *bad : {"%zz", "%4", "a%", "%00"}) {
            percentDecode(bad, &ok);
            CHECK_FALSE(ok);
        }
        CHECK(percentDecodeLenient("a%zz%41%4") == "a%zzA%4");
        CHECK(percentDecodeLenient("a+b%2B") == "a+b+");
        CHECK(percentDecodeLenient("a+b%2B", /*plusIsSpace=*/true) == "a b+");
    }

    TEST_CASE("quoted client text is bounded and printable") {
        std::string out;
        appendQuoted(out, std::string(70, 'x') + "\x01");
        CHECK(out == "\"" + std::string(64, 'x') + "...\"");
        out.clear();
        appendHexByte(out, 0x1b);
        CHECK(out == "0x1B");
    }

    TEST_CASE("percent-decoding with options: '+' as a space, NUL allowed (Azure Web PubSub's names)") {
        bool ok = false;
        CHECK(percentDecode("a%2Fb+c", &ok) == "a/b+c");
        CHECK(ok);
        CHECK(percentDecode("a+c", &ok, {.plusIsSpace = true}) == "a c");
        CHECK(ok);
        CHECK(percentDecode("a%2B", &ok, {.plusIsSpace = true}) == "a+");  // an escaped '+' stays a '+'
        CHECK(ok);
        CHECK(percentDecode("a%00b", &ok, {.allowNul = true}) == std::string("a\0b", 3));
        CHECK(ok);
        for (const char *bad : {"%4", "%", "%g1", "a%4"}) {
            percentDecode(bad, &ok, {.plusIsSpace = true, .allowNul = true});
            CHECK_MESSAGE(!ok, bad);
        }
    }

    TEST_CASE("a byte in an error message: itself and its hex when printable, hex alone otherwise") {
        CHECK(describeByte('z') == "'z' (0x7A)");
        CHECK(describeByte('\n') == "0x0A");
        CHECK(describeByte(' ') == "0x20");
        CHECK(describeByte('\x7f') == "0x7F");
        CHECK(describeByte('\xc3') == "0xC3");
    }
}
