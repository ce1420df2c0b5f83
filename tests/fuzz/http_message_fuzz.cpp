// Fuzz target for the one HTTP/1.1 message parser (core/http_message): the first byte chooses what is parsed
// (a strict request, a strict head only as the upgrade reads it, a tolerant response, closed or not) and
// small limits, so the 413/431 paths are reached; the rest is the message. The parser must agree with
// itself whole, a byte at a time and in uneven pieces, never read past the input, keep within its limits,
// answer a prefix of a complete message with NeedMore, and give every error a status and a printable reason.
#include "http_message.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace wsgw;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

struct Result {
    HttpParseState state;
    int status;
    std::string reason;
    HttpMessageHead head;
    std::string body;
    size_t consumed;
};

Result run(const HttpParserOptions &options, std::string_view bytes, const std::vector<size_t> &cuts, bool close) {
    HttpMessageParser p(options);
    HttpParseState s = HttpParseState::NeedMore;
    for (size_t end : cuts) {
        s = p.feed(bytes.substr(0, end));
        if (s != HttpParseState::NeedMore) break;
    }
    if (s == HttpParseState::NeedMore) s = close ? p.finish(bytes) : p.feed(bytes);
    return {s, p.error().status, p.error().reason, p.head(), p.body(), p.consumed()};
}

bool same(const Result &a, const Result &b) {
    return a.state == b.state && a.status == b.status && a.reason == b.reason && a.head.headers == b.head.headers &&
           a.head.target == b.head.target && a.head.status == b.head.status && a.body == b.body && a.consumed == b.consumed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    std::string_view bytes(reinterpret_cast<const char *>(data + 1), size - 1);

    HttpParserOptions o;
    o.kind = (mode & 3) == 2 ? HttpMessageKind::Response : HttpMessageKind::Request;
    o.tolerant = o.kind == HttpMessageKind::Response;
    o.headOnly = (mode & 3) == 1;
    const bool close = (mode & 4) != 0 && !o.headOnly;
    o.maxHeadBytes = (mode & 8) ? 96 : 16384;
    o.maxHeaders = (mode & 16) ? 3 : 100;
    o.maxBodyBytes = (mode & 32) ? 8 : 131072;
    o.maxChunkedWireBytes = (mode & 64) ? 64 : 2 * o.maxBodyBytes + 65536;
    o.maxTrailerBytes = (mode & 128) ? 8 : 16384;

    Result whole = run(o, bytes, {}, close);
    // A byte at a time (bounded, so a long input stays quick), and in pieces of uneven sizes.
    std::vector<size_t> each, uneven;
    for (size_t i = 0; i < bytes.size() && i < 2048; ++i) each.push_back(i);
    for (size_t at = 1, step = 1; at < bytes.size(); step = step * 3 % 17 + 1, at += step) uneven.push_back(at);
    if (bytes.size() <= 2048) require(same(run(o, bytes, each, close), whole));
    require(same(run(o, bytes, uneven, close), whole));

    switch (whole.state) {
    case HttpParseState::Complete:
        require(whole.consumed <= bytes.size());
        require(whole.head.length > 0 && whole.head.length <= whole.consumed && whole.head.length <= o.maxHeadBytes);
        require(whole.head.headers.size() <= o.maxHeaders);
        require(whole.body.size() <= o.maxBodyBytes);
        if (o.kind == HttpMessageKind::Request) require(!whole.head.target.empty() && whole.head.target[0] == '/');
        else require(whole.head.status >= 100 && whole.head.status <= 999);
        // Unless the body ran to the close, a shorter prefix is not yet a message.
        if (!close || whole.consumed < bytes.size()) {
            Result prefix = run(o, bytes.substr(0, whole.consumed - 1), {}, false);
            require(prefix.state == HttpParseState::NeedMore);
        }
        break;
    case HttpParseState::Error:
        require(whole.status == 400 || whole.status == 413 || whole.status == 431 || whole.status == 501);
        require(!whole.reason.empty());
        for (char c : whole.reason) require(c >= 0x20 && c < 0x7f);
        break;
    case HttpParseState::NeedMore:
        require(!close);
        break;
    }
    return 0;
}
