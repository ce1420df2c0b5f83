// SHA-256 as lowercase hex: plugin identities, API key principals and SigV4 payload hashes share it.
#pragma once

#include <string>
#include <string_view>

namespace wsgw {

std::string sha256Hex(std::string_view data);

}  // namespace wsgw
