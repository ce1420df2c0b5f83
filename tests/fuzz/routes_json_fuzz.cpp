// Fuzz target: routes.json text through parsing and schema validation. Every input either yields a
// config or an error that names a reason; nothing may crash.
#include "config.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    auto r = wsgw::parseApiConfig(std::string_view(reinterpret_cast<const char *>(data), size), "fuzz.json");
    if (auto *err = std::get_if<wsgw::ConfigError>(&r)) {
        if (err->reason.empty()) std::abort();
    } else {
        const auto &cfg = std::get<wsgw::ApiConfig>(r);
        for (const auto &[k, route] : cfg.routes)
            if (!cfg.handlers.count(route.handler)) std::abort();
    }
    return 0;
}
