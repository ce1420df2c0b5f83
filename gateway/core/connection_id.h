// Connection, request and message IDs as URL-safe base64, so that an ID can travel in a URL path unescaped.
// A connection ID is a capability (whoever knows it can push to and close the connection): 128 bits from
// the kernel's CSPRNG, through a thread-local buffer that amortises getrandom. Request and message IDs only
// need to be unique: 90 bits of a per-thread xoshiro256** generator seeded from the CSPRNG, in 15
// characters, which std::string keeps without a heap allocation (one of each per message).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wsgw {

std::string newConnectionId();  // 16 bytes -> 22 characters
std::string newRequestId();     // 90 bits -> 15 characters (also message IDs)
// True only for what newConnectionId could have produced (length, alphabet, unused trailing bits zero).
bool isWellFormedConnectionId(std::string_view id);
void fillRandom(void *buf, size_t len);
std::string base64UrlEncode(const unsigned char *bytes, size_t len);

}  // namespace wsgw
