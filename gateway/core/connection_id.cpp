#include "connection_id.h"

#include "base64.h"

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <sys/random.h>

namespace wsgw {

namespace {
struct RandomPool {
    unsigned char bytes[4096];
    size_t used = sizeof bytes;
};
thread_local RandomPool pool;

void refill() {
    size_t off = 0;
    while (off < sizeof pool.bytes) {
        ssize_t n = getrandom(pool.bytes + off, sizeof pool.bytes - off, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
        }
        off += static_cast<size_t>(n);
    }
    pool.used = 0;
}
}  // namespace

void fillRandom(void *buf, size_t len) {
    auto *out = static_cast<unsigned char *>(buf);
    while (len > 0) {
        if (pool.used == sizeof pool.bytes) refill();
        size_t take = std::min(len, sizeof pool.bytes - pool.used);
        std::memcpy(out, pool.bytes + pool.used, take);
        std::memset(pool.bytes + pool.used, 0, take);  // a used random byte never stays in memory
        pool.used += take;
        out += take;
        len -= take;
    }
}

std::string base64UrlEncode(const unsigned char *b, size_t len) { return encodeBase64(b, len, kBase64Url, false); }

std::string newConnectionId() {
    // Never a leading '-': command-line parsers take such an argument for an option (the AWS CLI's
    // `--connection-id -Bxm...` fails with "expected one argument"), one ID in 64 otherwise. Drawn again
    // rather than changed, so every other ID stays equally likely (127.98 bits instead of 128).
    unsigned char b[16];
    do fillRandom(b, sizeof b);
    while ((b[0] >> 2) == 62);  // the first character is the first byte's top 6 bits; 62 is '-'
    return base64UrlEncode(b, sizeof b);
}

namespace {
// xoshiro256** (Blackman and Vigna): fast, 256 bits of state, seeded per thread from the CSPRNG.
struct Xoshiro256 {
    uint64_t s[4];
    Xoshiro256() {
        do fillRandom(s, sizeof s);
        while ((s[0] | s[1] | s[2] | s[3]) == 0);
    }
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {
        uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
};
thread_local Xoshiro256 requestIdBits;

// 16 lanes of one byte: the compiler's vector extension (SSE2 on x86-64, NEON on arm64, plain code elsewhere).
using ByteLanes = signed char __attribute__((vector_size(16)));

// Each byte's low 6 bits (0..63) to its base64url character, all 16 at once: 'A'.. for 0-25, 'a'.. for
// 26-51, '0'.. for 52-61, '-' and '_'. A comparison is -1 in the lanes where it holds.
ByteLanes base64UrlLanes(ByteLanes v) {
    v &= 63;
    ByteLanes offset = ByteLanes{} + 'A';
    offset += (v > 25) & static_cast<signed char>('a' - 26 - 'A');
    offset += (v > 51) & static_cast<signed char>(('0' - 52) - ('a' - 26));
    offset += (v > 61) & static_cast<signed char>(('-' - 62) - ('0' - 52));
    offset += (v > 62) & static_cast<signed char>(('_' - 63) - ('-' - 62));
    return v + offset;
}
}  // namespace

// 90 random bits: the low 6 bits of 15 of the 16 bytes of two draws, each byte's bits uniform, mapped to
// the alphabet in one pass rather than one table lookup per character.
std::string newRequestId() {
    uint64_t bits[2] = {requestIdBits.next(), requestIdBits.next()};
    ByteLanes lanes;
    std::memcpy(&lanes, bits, sizeof lanes);
    lanes = base64UrlLanes(lanes);
    char out[16];
    std::memcpy(out, &lanes, sizeof out);
    return std::string(out, 15);
}

bool isWellFormedConnectionId(std::string_view id) {
    if (id.size() != 22) return false;
    for (char c : id) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok) return false;
    }
    // 16 bytes are 128 bits; the last character carries 2 of them, so its low 4 bits are zero.
    char last = id.back();
    return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}

}  // namespace wsgw
