// The small ASCII text helpers every parser here needs, written once: case-insensitive comparison (HTTP
// field names, tokens, JWT "alg"), hex digits, HTTP tokens and lists, percent-decoding (strict for the
// management paths, lenient for SigV4 canonical queries and form-encoded query strings), and how a byte or
// client text is shown in an error message. ASCII only on purpose: HTTP's case-insensitivity is ASCII's.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wsgw {

inline char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
std::string toLowerAscii(std::string_view s);
bool equalsIgnoreCase(std::string_view a, std::string_view b);
bool endsWithIgnoreCase(std::string_view s, std::string_view suffix);

// The value of a hexadecimal digit (either case), -1 for any other byte.
inline int hexDigitValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
// Bytes as lower-case hex, two digits each (digests, signatures).
std::string toHex(std::string_view bytes);

// RFC 9110 5.6.2 tchar: the bytes of a method, a field name or a token.
bool isTchar(char c);
// Space and tab (RFC 9110 5.6.3 OWS) removed from both ends.
std::string_view trimOws(std::string_view s);
// True when the comma-separated list holds `token` as one of its elements, case-insensitively (RFC 9110
// 5.6.1: empty elements and whitespace around elements are allowed).
bool listHasToken(std::string_view list, std::string_view token);

// How strict percent-decoding treats what the strict rule alone does not settle.
struct PercentDecoding {
    bool plusIsSpace = false;  // '+' means a space (application/x-www-form-urlencoded query strings)
    bool allowNul = false;     // %00 decodes to a NUL byte instead of failing
};
// Strict percent-decoding: *ok is false for a malformed escape (%zz, a lone or cut-off %) or, unless
// how.allowNul, one that decodes to NUL (no ID, group or stage holds a NUL byte); what was decoded up to
// there is returned. Azure Web PubSub's names and query items take {plusIsSpace (query only), allowNul}.
std::string percentDecode(std::string_view in, bool *ok, PercentDecoding how = {});
// Lenient percent-decoding: an escape that is not '%' and two hex digits is kept as it is. plusIsSpace:
// '+' means a space (application/x-www-form-urlencoded query strings).
std::string percentDecodeLenient(std::string_view in, bool plusIsSpace = false);

// How a byte reads in an error message: "0x1B" (upper-case hex).
void appendHexByte(std::string &out, unsigned char c);
// A byte a parser did not expect, for an error message: "'x' (0x78)" when printable, "0x0A" otherwise.
std::string describeByte(char c);
// Client text echoed in an error message: printable ASCII only (others become '?'), at most `max` bytes
// then "...", so a reason is always safe to log and to put in a JSON body.
void appendPrintable(std::string &out, std::string_view value, size_t max);
// The same, in double quotes, at most 64 bytes.
void appendQuoted(std::string &out, std::string_view value);

}  // namespace wsgw
