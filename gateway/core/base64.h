// Base64 in its two alphabets: standard with padding (binary bodies in events, as AWS encodes them) and
// URL-safe without padding (IDs that travel in URL paths); and the one decoder (JWT segments, JWK members,
// "base64:" secrets), told which alphabets, padding and trailing bits to accept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wsgw {

inline constexpr char kBase64Standard[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
inline constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

inline std::string encodeBase64(const unsigned char *b, size_t len, const char *alphabet, bool pad) {
    std::string out;
    out.reserve((len + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8) | b[i + 2];
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    size_t rest = len - i;
    if (rest > 0) {
        uint32_t v = uint32_t{b[i]} << 16;
        if (rest == 2) v |= uint32_t{b[i + 1]} << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        if (rest == 2) out += alphabet[(v >> 6) & 63];
        if (pad) out.append(3 - rest, '=');
    }
    return out;
}

// The value of a base64 character in the chosen alphabet(s) (url: '-' '_'; standard: '+' '/'), else -1.
inline int base64Value(unsigned char c, bool url, bool standard) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (url && c == '-') return 62;
    if (url && c == '_') return 63;
    if (standard && c == '+') return 62;
    if (standard && c == '/') return 63;
    return -1;
}

// Decodes base64 in the given alphabet(s) into *out (left alone on failure). allowPadding: up to two
// trailing '=' are accepted (and ignored). canonical: the unused bits of the last character must be zero.
inline bool decodeBase64(std::string_view in, std::string &out, bool url, bool standard, bool allowPadding,
                         bool canonical) {
    if (allowPadding) {
        for (int i = 0; i < 2 && !in.empty() && in.back() == '='; ++i) in.remove_suffix(1);
    }
    if (in.size() % 4 == 1) return false;
    std::string bytes;
    bytes.reserve(in.size() / 4 * 3 + 2);
    uint32_t acc = 0;
    int bits = 0;
    for (char ch : in) {
        int v = base64Value(static_cast<unsigned char>(ch), url, standard);
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes.push_back(static_cast<char>((acc >> bits) & 0xffu));
        }
    }
    if (canonical && bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;
    out = std::move(bytes);
    return true;
}

}  // namespace wsgw
