// Fuzz target: what an HTTP backend answers (parseHttpResponse), as complete bytes and cut at every
// chunk boundary the way a socket delivers it. Nothing may crash or read past the input; a parse that
// succeeds must consume no more than it was given.
#include "http_integration.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char *>(data), size);
    for (size_t cut : {size, size / 2, size / 3}) {
        for (bool closed : {false, true}) {
            wsgw::HttpReply reply;
            size_t consumed = 0;
            bool keepAlive = false;
            std::string error;
            bool done = wsgw::parseHttpResponse(bytes.substr(0, cut), closed, reply, consumed, keepAlive, error);
            if (done && (consumed > cut || !error.empty() || reply.status < 200)) std::abort();
        }
    }
    return 0;
}
