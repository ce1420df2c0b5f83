#include "digest.h"

#include "text.h"

#include <openssl/evp.h>

namespace wsgw {

std::string sha256Hex(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
    return toHex(std::string_view(reinterpret_cast<const char *>(digest), len));
}

}  // namespace wsgw
