// Connection, request and message IDs: random bytes from the kernel's CSPRNG as URL-safe base64, so an
// ID cannot be guessed and can travel in a URL path unescaped. A thread-local buffer amortises getrandom.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wsgw {

std::string newConnectionId();  // 16 bytes -> 22 characters
std::string newRequestId();     // 12 bytes -> 16 characters (also message IDs)
// True only for what newConnectionId could have produced (length, alphabet, unused trailing bits zero).
bool isWellFormedConnectionId(std::string_view id);
void fillRandom(void *buf, size_t len);
std::string base64UrlEncode(const unsigned char *bytes, size_t len);

}  // namespace wsgw
