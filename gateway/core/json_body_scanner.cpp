// The one-pass JSON body scanner of json_body_scanner.h.
#include "json_body_scanner.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "utf8.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace wsgw {

// Names here differ from those of the other files of core: unity builds put them in one translation unit.
namespace {

// ASCII bytes that may stand unescaped in a JSON string: everything but '"', '\\' and the controls below
// 0x20. Bytes from 0x80 up stop the plain run too: they must form well-formed UTF-8, checked one sequence
// at a time, so that a body the scanner accepts is known to be valid UTF-8 as a whole.
constexpr auto kPlain = [] {
    std::array<bool, 256> plain{};
    for (unsigned c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
    return plain;
}();

// What the one-letter escapes \" \\ \/ \b \f \n \r \t stand for; 0 for every other letter.
constexpr auto kEscaped = [] {
    std::array<char, 256> escaped{};
    escaped['"'] = '"';
    escaped['\\'] = '\\';
    escaped['/'] = '/';
    escaped['b'] = '\b';
    escaped['f'] = '\f';
    escaped['n'] = '\n';
    escaped['r'] = '\r';
    escaped['t'] = '\t';
    return escaped;
}();

bool isPlain(char c) { return kPlain[static_cast<unsigned char>(c)]; }

#if defined(__SSE2__)
// 0xFF in every byte of p[0..15] that is not plain string content: '"', '\\', a control below 0x20 or a
// byte from 0x80 up (both are below 0x20 as signed bytes).
inline __m128i notPlain16(const char *p) {
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
    return _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), _mm_cmplt_epi8(v, space));
}

inline unsigned bits(__m128i v) { return static_cast<unsigned>(_mm_movemask_epi8(v)); }
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// A long run with AVX2 (three-operand compares, 32 bytes each): 64 bytes take 2 loads, 6 compares and 5 ors,
// against about 40 instructions with SSE2; a 16 KiB payload string is scanned in about half the time.
// Returns where the 64-byte steps stopped; the caller finishes the last bytes.
__attribute__((target("avx2"))) const char *scanPlainLongAvx2(const char *p, const char *end, const char **found) {
    const __m256i quote = _mm256_set1_epi8('"'), backslash = _mm256_set1_epi8('\\'), space = _mm256_set1_epi8(0x20);
    for (; end - p >= 64; p += 64) {
        __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));
        __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 32));
        __m256i na = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(a, quote), _mm256_cmpeq_epi8(a, backslash)),
                                     _mm256_cmpgt_epi8(space, a));
        __m256i nb = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(b, quote), _mm256_cmpeq_epi8(b, backslash)),
                                     _mm256_cmpgt_epi8(space, b));
        if (!_mm256_testz_si256(_mm256_or_si256(na, nb), _mm256_or_si256(na, nb))) {
            uint64_t m = static_cast<uint32_t>(_mm256_movemask_epi8(na)) |
                         uint64_t{static_cast<uint32_t>(_mm256_movemask_epi8(nb))} << 32;
            *found = p + std::countr_zero(m);
            return p;
        }
    }
    *found = nullptr;
    return p;
}

const bool kHaveAvx2 = [] {
    __builtin_cpu_init();  // this runs as a static initializer, perhaps before libgcc's own
    return __builtin_cpu_supports("avx2") != 0;
}();
#endif

// The first byte at or after p that is not plain string content, or end: 16 bytes at a time, 64 at a
// time once the run is long (a message's payload string).
inline const char *scanPlain(const char *p, const char *end) {
#if defined(__SSE2__)
    if (end - p >= 16) {
        if (unsigned m = bits(notPlain16(p))) return p + std::countr_zero(m);
        p += 16;
#if defined(__x86_64__) && defined(__GNUC__)
        if (kHaveAvx2 && end - p >= 64) {
            const char *found;
            p = scanPlainLongAvx2(p, end, &found);
            if (found) return found;
        }
#endif
        for (; end - p >= 64; p += 64) {
            __m128i a = notPlain16(p), b = notPlain16(p + 16), c = notPlain16(p + 32), d = notPlain16(p + 48);
            if (bits(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))) {
                uint64_t m = bits(a) | uint64_t{bits(b)} << 16 | uint64_t{bits(c)} << 32 | uint64_t{bits(d)} << 48;
                return p + std::countr_zero(m);
            }
        }
        for (; end - p >= 16; p += 16)
            if (unsigned m = bits(notPlain16(p))) return p + std::countr_zero(m);
    }
#endif
    for (; p < end; ++p)
        if (!isPlain(*p)) return p;
    return end;
}

// The same, after an escape: the run up to the next escape or the closing quote is often a few bytes, and
// looking at those one by one keeps a vector compare's latency out of the chain from escape to escape.
inline const char *scanPlainAfterEscape(const char *p, const char *end) {
    for (const char *stop = p + std::min<std::ptrdiff_t>(end - p, 8); p < stop; ++p)
        if (!isPlain(*p)) return p;
    return scanPlain(p, end);
}

// The value of a hex digit, -1 for any other byte.
constexpr auto kJsonHexDigit = [] {
    std::array<signed char, 256> hex{};
    hex.fill(-1);
    for (unsigned i = 0; i < 10; ++i) hex['0' + i] = static_cast<signed char>(i);
    for (unsigned i = 0; i < 6; ++i) hex['a' + i] = hex['A' + i] = static_cast<signed char>(10 + i);
    return hex;
}();

void appendUtf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// One pass over the body: validates all of it as JSON whose root is an object, at most kJsonScanMaxDepth
// containers deep, and captures the values at up to 64 referenced paths (bit r of a mask stands for paths[r]).
//
// Strings and escapes are read exactly as RapidJSON reads them (the parser this replaced): the escapes of
// RFC 8259; \uD800-\uDBFF must be followed by \uDC00-\uDFFF and the pair is decoded to one code point, a
// lone \uDC00-\uDFFF is encoded as it is; raw bytes >= 0x20 are copied unchanged, and those from 0x80 up
// must be well-formed UTF-8 (RapidJSON's kParseValidateEncodingFlag). Numbers follow the RFC
// grammar and are captured as written, whatever their magnitude. Whitespace is space, \t, \n, \r only; a
// NUL byte is never valid, in particular not after the root (RapidJSON stopped reading there).
class BodyScanner {
public:
    BodyScanner(std::string_view body, const std::vector<std::string> *const *paths, size_t count, JsonCapture *captures)
        : p_(body.data()), end_(body.data() + body.size()), paths_(paths), captures_(captures),
          all_(count == 64 ? ~uint64_t{0} : (uint64_t{1} << count) - 1) {}

    bool run() {
        struct Frame {
            bool isObject;
            uint64_t mask;  // paths whose keys so far lead into this container (objects only)
        };
        Frame stack[kJsonScanMaxDepth];
        skipWhitespace();
        if (peek() != '{') return false;  // not an object, or not JSON: $default either way
        ++p_;
        stack[0] = Frame{true, all_};
        size_t depth = 1;
        bool justOpened = true;
        for (;;) {
            // At a member (object) or element (array) of stack[depth - 1], or at the closer of an empty one.
            skipWhitespace();
            const Frame top = stack[depth - 1];
            if (justOpened && peek() == (top.isObject ? '}' : ']')) {
                ++p_;
                --depth;
            } else {
                uint64_t targets = 0, inner = 0;  // paths ending at this value, paths going on into it
                if (top.isObject) {
                    if (peek() != '"') return false;
                    ++p_;
                    if (top.mask == 0) {
                        if (!skipString()) return false;
                    } else {
                        uint64_t matched;
                        if (!matchKey(top.mask, depth - 1, matched)) return false;
                        for (uint64_t m = matched; m; m &= m - 1) {
                            int r = std::countr_zero(m);
                            if (paths_[r]->size() == depth) targets |= uint64_t{1} << r;
                        }
                        inner = matched & ~targets;
                        // This member replaces an earlier one of the same key, as in JSON.parse: what the
                        // earlier one held below it is gone, whatever this one turns out to be.
                        clearCaptures(inner);
                    }
                    skipWhitespace();
                    if (peek() != ':') return false;
                    ++p_;
                    skipWhitespace();
                }
                char c = peek();
                if (c == '{' || c == '[') {
                    markNotScalar(targets);
                    if (depth == kJsonScanMaxDepth) return false;
                    ++p_;
                    stack[depth++] = Frame{c == '{', c == '{' ? inner : 0};
                    justOpened = true;
                    continue;
                }
                if (!scalar(c, targets)) return false;
            }
            justOpened = false;
            // A value is complete: close the containers it completes, up to the ',' before the next value.
            for (;;) {
                skipWhitespace();
                if (depth == 0) return p_ == end_;
                char c = peek();
                if (c == ',') {
                    ++p_;
                    break;
                }
                if (c != (stack[depth - 1].isObject ? '}' : ']')) return false;
                ++p_;
                --depth;
            }
        }
    }

private:
    char peek() const { return p_ < end_ ? *p_ : '\0'; }  // '\0' is never valid JSON, so it stands for the end too

    void skipWhitespace() {
        // Most bodies are compact: one compare tells a token from whitespace.
        while (p_ < end_ && static_cast<unsigned char>(*p_) <= ' ' &&
               (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t'))
            ++p_;
    }

    // After an opening quote: moves past the closing one, validating what lies between.
    bool skipString() {
        p_ = scanPlain(p_, end_);
        for (;;) {
            if (p_ == end_) return false;
            if (*p_ == '"') {
                ++p_;
                return true;
            }
            if (!nonPlain(nullptr)) return false;
            p_ = scanPlainAfterEscape(p_, end_);
        }
    }

    // At a byte that ends a plain run inside a string, other than the closing quote: an escape or a UTF-8
    // sequence, validated and appended to *out when out is given; false for a control or malformed UTF-8.
    bool nonPlain(std::string *out) {
        if (*p_ == '\\') return escape(out);
        if (static_cast<unsigned char>(*p_) < 0x80) return false;
        size_t n = utf8SequenceLength(reinterpret_cast<const uint8_t *>(p_), static_cast<size_t>(end_ - p_));
        if (n == 0) return false;
        if (out) out->append(p_, n);
        p_ += n;
        return true;
    }

    // After an opening quote: moves past the closing one, decoding the string into out.
    bool decodeString(std::string &out) {
        out.clear();
        const char *q = scanPlain(p_, end_);
        for (;;) {
            out.append(p_, q);
            p_ = q;
            if (p_ == end_) return false;
            if (*p_ == '"') {
                ++p_;
                return true;
            }
            if (!nonPlain(&out)) return false;
            q = scanPlainAfterEscape(p_, end_);
        }
    }

    // At a backslash: validates one escape, appending what it stands for to *out when out is given.
    bool escape(std::string *out) {
        if (end_ - p_ < 2) return false;
        char e = p_[1];
        p_ += 2;
        if (char plain = kEscaped[static_cast<unsigned char>(e)]) {
            if (out) *out += plain;
            return true;
        }
        if (e != 'u') return false;
        unsigned cp;
        if (!hex4(cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = (((cp - 0xD800) << 10) | (low - 0xDC00)) + 0x10000;
        }
        if (out) appendUtf8(*out, cp);
        return true;
    }

    bool hex4(unsigned &cp) {
        if (end_ - p_ < 4) return false;
        int d0 = kJsonHexDigit[static_cast<unsigned char>(p_[0])], d1 = kJsonHexDigit[static_cast<unsigned char>(p_[1])],
            d2 = kJsonHexDigit[static_cast<unsigned char>(p_[2])], d3 = kJsonHexDigit[static_cast<unsigned char>(p_[3])];
        if ((d0 | d1 | d2 | d3) < 0) return false;
        cp = static_cast<unsigned>(d0 << 12 | d1 << 8 | d2 << 4 | d3);
        p_ += 4;
        return true;
    }

    // After the opening quote of a key in a container at `level` (the root is 0) that paths in `mask` lead
    // into: the paths among them whose next segment is this key.
    bool matchKey(uint64_t mask, size_t level, uint64_t &matched) {
        std::string_view key;
        const char *q = scanPlain(p_, end_);
        if (q < end_ && *q == '"') {  // no escapes: compare in place
            key = std::string_view(p_, static_cast<size_t>(q - p_));
            p_ = q + 1;
        } else {
            if (!decodeString(keyScratch_)) return false;
            key = keyScratch_;
        }
        matched = 0;
        for (uint64_t m = mask; m; m &= m - 1) {
            int r = std::countr_zero(m);
            if ((*paths_[r])[level] == key) matched |= uint64_t{1} << r;
        }
        return true;
    }

    bool digits() {  // 1*DIGIT
        if (!(p_ < end_ && *p_ >= '0' && *p_ <= '9')) return false;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        return true;
    }

    bool number() {  // -? (0 | [1-9] DIGIT*) (. 1*DIGIT)? ([eE] [+-]? 1*DIGIT)?
        if (peek() == '-') ++p_;
        if (peek() == '0') ++p_;
        else if (!digits()) return false;
        if (peek() == '.') {
            ++p_;
            if (!digits()) return false;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++p_;
            if (peek() == '+' || peek() == '-') ++p_;
            if (!digits()) return false;
        }
        return true;
    }

    bool literal(std::string_view word) {
        if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
        p_ += word.size();
        return true;
    }

    // A string, number, true, false or null starting at c; its JSON text or decoded string goes to `targets`.
    bool scalar(char c, uint64_t targets) {
        const char *start = p_;
        switch (c) {
        case '"':
            ++p_;
            if (targets == 0) return skipString();
            {
                int first = std::countr_zero(targets);
                JsonCapture &cap = captures_[first];
                if (!decodeString(cap.text)) return false;
                cap.kind = JsonCapture::Kind::Scalar;
                copyCapture(targets & (targets - 1), cap);
            }
            return true;
        case 't':
            if (!literal("true")) return false;
            break;
        case 'f':
            if (!literal("false")) return false;
            break;
        case 'n':
            if (!literal("null")) return false;
            markNotScalar(targets);
            return true;
        default:
            if (!number()) return false;
            break;
        }
        for (uint64_t m = targets; m; m &= m - 1) {
            JsonCapture &cap = captures_[std::countr_zero(m)];
            cap.kind = JsonCapture::Kind::Scalar;
            cap.text.assign(start, p_);
        }
        return true;
    }

    // A later duplicate key overwrites an earlier capture: the last one wins, as in JSON.parse.
    void markNotScalar(uint64_t targets) {
        for (uint64_t m = targets; m; m &= m - 1) {
            JsonCapture &cap = captures_[std::countr_zero(m)];
            cap.kind = JsonCapture::Kind::NotScalar;
            cap.text.clear();
        }
    }

    void clearCaptures(uint64_t paths) {
        for (uint64_t m = paths; m; m &= m - 1) {
            JsonCapture &cap = captures_[std::countr_zero(m)];
            cap.kind = JsonCapture::Kind::Missing;
            cap.text.clear();
        }
    }

    void copyCapture(uint64_t targets, const JsonCapture &from) {
        for (uint64_t m = targets; m; m &= m - 1) captures_[std::countr_zero(m)] = from;
    }

    const char *p_;
    const char *const end_;
    const std::vector<std::string> *const *paths_;
    JsonCapture *captures_;
    const uint64_t all_;
    static thread_local std::string keyScratch_;  // an escaped key, decoded
};

thread_local std::string BodyScanner::keyScratch_;

}  // namespace

bool scanJsonBody(std::string_view body, const std::vector<std::string> *const *paths, size_t count,
                  JsonCapture *captures) {
    return BodyScanner(body, paths, count, captures).run();
}

}  // namespace wsgw
