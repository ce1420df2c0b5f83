// Fuzz target: message bodies through compiled selection expressions, and the input itself compiled as
// an expression. Nothing may crash, leak or hit undefined behaviour; results must be self-consistent.
#include "route_selector.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *kExpressions[] = {"$request.body.action", "$request.body.meta.type",
                                         "${request.body.service}/${request.body.action}", "static", "\\$x-${request.body.a}"};
    std::string_view body(reinterpret_cast<const char *>(data), size);
    std::string key, error;
    for (const char *e : kExpressions) {
        static thread_local std::string err;
        auto sel = wsgw::RouteSelector::compile(e, &err);
        if (!sel) std::abort();
        for (bool binary : {false, true}) {
            if (sel->select(body, binary, key) && (key.empty() || key[0] == '$')) std::abort();
        }
    }
    if (auto sel = wsgw::RouteSelector::compile(body, &error)) {
        sel->select("{\"action\":\"x\",\"a\":1}", false, key);
    } else if (error.empty()) {
        std::abort();
    }
    return 0;
}
