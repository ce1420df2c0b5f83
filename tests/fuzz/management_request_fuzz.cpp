// Fuzz target: bytes from a management client through the HTTP request parser (whole and split, as an
// incremental reader sees them) and the path parser. Nothing may crash; answers must be consistent.
#include "http_request.h"
#include "management_path.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char *>(data), size);
    wsgw::HttpParse whole = wsgw::parseHttpRequest(bytes);
    if (whole.state == wsgw::HttpParseState::Complete) {
        if (whole.consumed == 0 || whole.consumed > size) std::abort();
        wsgw::ManagementPath mp = wsgw::parseManagementPath(whole.request.path);
        if (mp.target == wsgw::ManagementTarget::Connection && mp.connectionId.empty()) std::abort();
        // A prefix of a complete request never parses as a different complete request.
        wsgw::HttpParse prefix = wsgw::parseHttpRequest(bytes.substr(0, whole.consumed - 1));
        if (prefix.state == wsgw::HttpParseState::Complete) std::abort();
    } else if (whole.state == wsgw::HttpParseState::Error) {
        if (whole.error.reason.empty() || whole.error.status < 400) std::abort();
        wsgw::renderHttpResponse(whole.error.status, "application/json", whole.error.reason, {}, false);
    }
    wsgw::parseManagementPath(bytes);
    return 0;
}
