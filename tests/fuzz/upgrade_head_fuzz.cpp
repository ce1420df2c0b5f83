// Fuzz target for the upgrade request head parser: the whole input, then the input split where an
// incremental reader might have seen it, then a small head limit. Checks that the stateless parser agrees
// with itself across those calls and that every refusal renders into a well-formed response.
#include "handshake.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace wsgw;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

void checkParse(std::string_view in, size_t max, const HeadParse &p) {
    switch (p.result) {
        case HeadResult::NeedMore:
            require(in.size() < max);
            break;
        case HeadResult::Upgrade: {
            const UpgradeRequest &r = p.request;
            require(r.headLength >= 4 && r.headLength <= in.size() && r.headLength <= max);
            require(in.substr(r.headLength - 4, 4) == "\r\n\r\n");
            require(r.method == "GET");
            require(!r.path.empty() && r.path.front() == '/' && r.path.find('?') == std::string::npos);
            require(r.target.compare(0, r.path.size(), r.path) == 0);
            require(r.target.size() == r.path.size() ||
                    r.target.substr(r.path.size()) == "?" + r.rawQuery);
            require(r.headers.size() <= kMaxUpgradeHeaders);
            for (const auto &h : r.headers) require(r.header(h.first) != nullptr);
            require(r.header("Sec-WebSocket-Key") && r.header("Host") && r.header("Upgrade"));
            break;
        }
        case HeadResult::Refuse: {
            const HttpRefusal &f = p.refusal;
            require(f.status >= 400 && f.status < 500);
            require(!f.reason.empty());
            for (char c : f.reason) require(c >= 0x20 && c < 0x7f);
            std::string resp = renderHttpRefusal(f.status, f.reason, f.extraHeaders);
            require(resp.compare(0, 9, "HTTP/1.1 ") == 0);
            size_t end = resp.find("\r\n\r\n");
            require(end != std::string::npos);
            std::string body = resp.substr(end + 4);
            require(resp.find("Content-Length: " + std::to_string(body.size()) + "\r\n") < end);
            require(body.compare(0, 12, "{\"message\":\"") == 0 && body.size() >= 14 &&
                    body.compare(body.size() - 2, 2, "\"}") == 0);
            break;
        }
    }
}

bool sameOutcome(const HeadParse &a, const HeadParse &b) {
    if (a.result != b.result) return false;
    if (a.result == HeadResult::Refuse) return a.refusal.status == b.refusal.status && a.refusal.reason == b.refusal.reason;
    if (a.result == HeadResult::Upgrade) {
        return a.request.headLength == b.request.headLength && a.request.target == b.request.target &&
               a.request.headers == b.request.headers;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view in(reinterpret_cast<const char *>(data), size);
    constexpr size_t kDefaultMax = 8192;

    HeadParse whole = parseUpgradeHead(in);
    checkParse(in, kDefaultMax, whole);

    // An incremental reader saw a prefix first. A prefix that is already decided must be decided the same
    // way, as the listener acts on the first answer that is not NeedMore.
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 16777619u;
    size_t cut = size == 0 ? 0 : h % (size + 1);
    std::string_view prefix = in.substr(0, cut);
    HeadParse early = parseUpgradeHead(prefix);
    checkParse(prefix, kDefaultMax, early);
    if (early.result != HeadResult::NeedMore) require(sameOutcome(early, whole));

    // A small limit reaches the 431 paths; a head that fits it parses exactly as under the default limit.
    size_t smallMax = size == 0 ? 1 : 16 + data[0] * 2;
    HeadParse small = parseUpgradeHead(in, smallMax);
    checkParse(in, smallMax, small);
    if (whole.result == HeadResult::Upgrade && whole.request.headLength <= smallMax) require(sameOutcome(small, whole));
    if (small.result != HeadResult::NeedMore && !(small.result == HeadResult::Refuse && small.refusal.status == 431)) {
        require(sameOutcome(small, whole));
    }
    return 0;
}
