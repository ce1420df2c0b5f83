// Fuzz target: a handler's .so bytes (checkSharedObjectImage), whole and cut. Nothing may crash or read
// past the input; an image that passes stays passing only if every segment lies within it.
#include "elf_image.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char *>(data), size);
    for (size_t cut : {size, size / 2, size > 64 ? size_t(64) : size})
        (void)wsgw::checkSharedObjectImage(bytes.substr(0, cut));
    return 0;
}
