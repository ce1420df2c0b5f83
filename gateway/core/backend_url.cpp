// The backend URL parser of backend_url.h.
#include "backend_url.h"

namespace wsgw {

namespace {

// "1" to "65535" in ASCII digits, nothing else (no sign, no space): 0 for anything that is not one.
int parsePortDigits(std::string_view text) {
    if (text.empty() || text.size() > 5) return 0;
    int port = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return 0;
        port = port * 10 + (c - '0');
    }
    return port <= 65535 ? port : 0;
}

}  // namespace

std::variant<BackendUrl, std::string> parseBackendUrl(const std::string &url, std::initializer_list<UrlScheme> schemes,
                                                      std::string_view notThisScheme) {
    auto quoted = [&](std::string_view problem) { return "'" + url + "'" + std::string(problem); };
    BackendUrl u;
    std::string_view rest;
    for (const UrlScheme &s : schemes) {
        std::string prefix = std::string(s.name) + "://";
        if (url.rfind(prefix, 0) == 0) {
            u.scheme = s.name;
            u.port = s.defaultPort;
            rest = std::string_view(url).substr(prefix.size());
            break;
        }
    }
    if (u.scheme.empty()) return quoted(" " + std::string(notThisScheme));
    size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) u.path = std::string(rest.substr(slash));
    std::string_view portText;
    bool hasPort = false;
    if (!authority.empty() && authority[0] == '[') {
        size_t close = authority.find(']');
        if (close == std::string_view::npos) return quoted(": unterminated [IPv6] host");
        u.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return quoted(": expected ':port' after the IPv6 host");
            hasPort = true;
            portText = authority.substr(close + 2);
        }
    } else {
        size_t colon = authority.rfind(':');
        u.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            hasPort = true;
            portText = authority.substr(colon + 1);
        }
    }
    if (u.host.empty()) return quoted(" has no host");
    if (hasPort) {
        u.port = parsePortDigits(portText);
        if (u.port == 0) return quoted(": the port must be 1 to 65535");
    }
    for (char c : u.path)
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return quoted(": the path has a space or control character");
    return u;
}

}  // namespace wsgw
