#include "ws_url.h"

#include <cstdlib>

namespace wsgw {

std::variant<WsUrl, std::string> WsUrl::parse(const std::string &url) {
    WsUrl u;
    u.tls = url.rfind("wss://", 0) == 0;
    if (!u.tls && url.rfind("ws://", 0) != 0) return "'" + url + "' is not a ws:// or wss:// URL";
    if (u.tls) u.port = 443;
    std::string rest = url.substr(u.tls ? 6 : 5);
    size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    u.path = slash == std::string::npos ? "/" : rest.substr(slash);
    size_t colon = authority.rfind(':');
    bool bracketed = !authority.empty() && authority[0] == '[';
    if (bracketed) {
        size_t close = authority.find(']');
        if (close == std::string::npos) return "'" + url + "': unterminated [IPv6] host";
        u.host = authority.substr(1, close - 1);
        colon = close + 1 < authority.size() && authority[close + 1] == ':' ? close + 1 : std::string::npos;
    } else {
        u.host = authority.substr(0, colon);
    }
    if (u.host.empty()) return "'" + url + "' has no host";
    if (colon != std::string::npos) {
        char *end = nullptr;
        long p = std::strtol(authority.c_str() + colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535) return "'" + url + "': the port must be 1 to 65535";
        u.port = static_cast<int>(p);
    }
    for (char c : u.path)
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return "'" + url + "': the path has a space or control character";
    return u;
}

}  // namespace wsgw
