// Fuzz target: a message received on a cluster channel (any client of the same Redis can publish there).
// Decoding must never crash or overread, and whatever decodes must survive a re-encode unchanged.
#include "cluster_wire.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace wsgw::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    auto m = decode(std::string_view(reinterpret_cast<const char *>(data), size));
    if (!m) return 0;
    auto again = decode(encode(*m));
    if (!again || again->op != m->op || again->origin != m->origin || again->token != m->token ||
        again->connectionId != m->connectionId || again->group != m->group || again->binary != m->binary ||
        again->data != m->data || again->wps != m->wps || again->excluded != m->excluded || again->wpsClose != m->wpsClose)
        std::abort();
    return 0;
}
