// UTF-8 validation, shared by the push paths: a push becomes a text frame only when its bytes are valid
// UTF-8 (otherwise the client would close with 1007), else a binary frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wsgw {

inline bool isValidUtf8(const void *data, size_t len) {
    const auto *s = static_cast<const uint8_t *>(data);
    size_t i = 0;
    while (i < len) {
        // Text is mostly ASCII: 32 bytes at a time (the compiler turns this into vector loads), then eight,
        // until a byte has its high bit set.
        while (i + 32 <= len) {
            uint64_t w[4];
            std::memcpy(w, s + i, 32);
            if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ULL) break;
            i += 32;
        }
        while (i + 8 <= len) {
            uint64_t word;
            std::memcpy(&word, s + i, 8);
            if (word & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= len) break;
        uint8_t c = s[i];
        if (c < 0x80) { ++i; continue; }
        size_t n;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return false;
        if (len - i <= n) return false;
        for (size_t k = 1; k <= n; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

}  // namespace wsgw
