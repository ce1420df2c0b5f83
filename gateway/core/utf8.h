// UTF-8 validation. A text message must be valid UTF-8 (else 1007): the route selector checks it while it
// scans a JSON body, receive() checks any other text message. A push becomes a text frame only when its
// bytes are valid UTF-8 (otherwise the client would close with 1007), else a binary frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wsgw {

// The length of the one well-formed UTF-8 sequence starting at s (1 to 4 bytes, of the `avail` there),
// or 0 when none starts there: overlong forms, surrogates and code points above U+10FFFF are refused.
inline size_t utf8SequenceLength(const uint8_t *s, size_t avail) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return 0;
    if (avail <= n) return 0;
    for (size_t k = 1; k <= n; ++k) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return 0;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n + 1;
}

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
        size_t n = utf8SequenceLength(s + i, len - i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

}  // namespace wsgw
