// Fuzz target: bytes from a management client through the HTTP request parser (whole, and split in two as
// the resumable HttpRequestReader sees a request arrive) and the path parser. Nothing may crash; answers must
// be consistent: a prefix of a complete request needs more bytes, the reader fed in pieces agrees with one
// parse of the whole, and a body (Content-Length or chunked, decoded) never exceeds the limit.
#include "http_request.h"
#include "management_path.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char *>(data), size);
    constexpr size_t kMaxBody = 131072;
    wsgw::HttpParse whole = wsgw::parseHttpRequest(bytes, 16384, kMaxBody);

    // The same bytes in two pieces through one reader; the split point comes from the input.
    size_t split = size == 0 ? 0 : (static_cast<size_t>(data[0]) * 131 + size / 3) % (size + 1);
    wsgw::HttpRequestReader reader(16384, kMaxBody);
    wsgw::HttpParseState first = reader.parse(bytes.substr(0, split)).state;
    wsgw::HttpParse &pieces = reader.parse(bytes);

    if (whole.state == wsgw::HttpParseState::Complete) {
        if (whole.consumed == 0 || whole.consumed > size) std::abort();
        if (whole.request.body.size() > kMaxBody) std::abort();
        if (!whole.request.chunked && whole.request.body.size() != whole.request.contentLength) std::abort();
        wsgw::ManagementPath mp = wsgw::parseManagementPath(whole.request.path);
        if (mp.target == wsgw::ManagementTarget::Connection && mp.connectionId.empty()) std::abort();
        if (mp.badEncoding && mp.target != wsgw::ManagementTarget::Unknown) std::abort();
        // A prefix of a complete request is never complete, nor an error: it needs more bytes.
        wsgw::HttpParse prefix = wsgw::parseHttpRequest(bytes.substr(0, whole.consumed - 1), 16384, kMaxBody);
        if (prefix.state != wsgw::HttpParseState::NeedMore) std::abort();
        if (split < whole.consumed && first != wsgw::HttpParseState::NeedMore) std::abort();
        if (pieces.state != wsgw::HttpParseState::Complete || pieces.consumed != whole.consumed ||
            pieces.request.body != whole.request.body || pieces.request.path != whole.request.path)
            std::abort();
    } else if (whole.state == wsgw::HttpParseState::Error) {
        if (whole.error.reason.empty() || whole.error.status < 400) std::abort();
        if (pieces.state != wsgw::HttpParseState::Error) std::abort();
        wsgw::renderHttpResponse(whole.error.status, "application/json", whole.error.reason, {}, false);
    } else {
        if (pieces.state != wsgw::HttpParseState::NeedMore || pieces.headComplete != whole.headComplete) std::abort();
    }
    wsgw::parseManagementPath(bytes);
    return 0;
}
