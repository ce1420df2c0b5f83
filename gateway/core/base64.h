// Base64 in its two alphabets: standard with padding (binary bodies in events, as AWS encodes them) and
// URL-safe without padding (IDs that travel in URL paths).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

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

}  // namespace wsgw
