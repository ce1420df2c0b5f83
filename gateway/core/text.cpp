// The ASCII text helpers of text.h.
#include "text.h"

#include <algorithm>

namespace wsgw {

namespace {
constexpr size_t kQuotedValueMax = 64;
}

std::string toLowerAscii(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = lowerAscii(c);
    return out;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
    return true;
}

bool endsWithIgnoreCase(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && equalsIgnoreCase(s.substr(s.size() - suffix.size()), suffix);
}

std::string toHex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char ch : bytes) {
        auto c = static_cast<unsigned char>(ch);
        out.push_back(kDigits[c >> 4]);
        out.push_back(kDigits[c & 15]);
    }
    return out;
}

bool isTchar(char ch) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
        case '-': case '.': case '^': case '_': case '`': case '|': case '~':
            return true;
        default:
            return false;
    }
}

std::string_view trimOws(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool listHasToken(std::string_view list, std::string_view token) {
    for (;;) {
        size_t comma = list.find(',');
        if (equalsIgnoreCase(trimOws(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) return false;
        list.remove_prefix(comma + 1);
    }
}

std::string percentDecode(std::string_view in, bool *ok, PercentDecoding how) {
    std::string out;
    out.reserve(in.size());
    *ok = true;
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += how.plusIsSpace && in[i] == '+' ? ' ' : in[i];
            continue;
        }
        int hi = i + 2 < in.size() ? hexDigitValue(in[i + 1]) : -1;
        int lo = i + 2 < in.size() ? hexDigitValue(in[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0 && !how.allowNul)) {
            *ok = false;
            return out;
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::string percentDecodeLenient(std::string_view in, bool plusIsSpace) {
    std::string out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (plusIsSpace && c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < in.size() && hexDigitValue(in[i + 1]) >= 0 && hexDigitValue(in[i + 2]) >= 0) {
            out += static_cast<char>(hexDigitValue(in[i + 1]) * 16 + hexDigitValue(in[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

void appendHexByte(std::string &out, unsigned char c) {
    static constexpr char kDigits[] = "0123456789ABCDEF";
    out += "0x";
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
}

std::string describeByte(char c) {
    auto u = static_cast<unsigned char>(c);
    // Appended piece by piece: GCC 12 takes `"literal" + std::string&&` for an overlapping memcpy (-Wrestrict,
    // GCC bug 105329).
    std::string hex;
    appendHexByte(hex, u);
    if (u <= 0x20 || u >= 0x7f) return hex;
    std::string shown = "'";
    shown += c;
    shown += "' (";
    shown += hex;
    shown += ')';
    return shown;
}

void appendPrintable(std::string &out, std::string_view value, size_t max) {
    size_t n = std::min(value.size(), max);
    for (size_t i = 0; i < n; ++i) {
        auto c = static_cast<unsigned char>(value[i]);
        out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    }
    if (value.size() > max) out += "...";
}

void appendQuoted(std::string &out, std::string_view value) {
    out += '"';
    appendPrintable(out, value, kQuotedValueMax);
    out += '"';
}

}  // namespace wsgw
