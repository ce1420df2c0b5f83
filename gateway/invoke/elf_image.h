// Owns: the check that a handler's .so bytes are a whole ELF shared object for this machine before dlopen
// sees them. glibc maps a library's segments as its program headers say, without comparing them with the
// file's size: a file cut short (a copy that paused past the settle time, or ended on a full disk) was
// mapped past its end, and the first touch of the missing pages killed the gateway with SIGBUS. Pure: the
// bytes in, a reason out, so it is unit-tested and fuzzed like any parser of outside input.
#pragma once

#include <string>
#include <string_view>

namespace wsgw {

// "" when `bytes` is an ELF shared object of this machine's class, byte order and architecture whose
// program headers, segments and section headers all lie within it; else what is wrong, for "<path> <reason>".
std::string checkSharedObjectImage(std::string_view bytes);

}  // namespace wsgw
