// The ws:// and wss:// URLs of ws_url.h, read by the one backend URL parser (backend_url.h).
#include "ws_url.h"

#include "backend_url.h"

namespace wsgw {

std::variant<WsUrl, std::string> WsUrl::parse(const std::string &url) {
    auto parsed = parseBackendUrl(url, {{"ws", 80}, {"wss", 443}}, "is not a ws:// or wss:// URL");
    if (auto *error = std::get_if<std::string>(&parsed)) return std::move(*error);
    auto &b = std::get<BackendUrl>(parsed);
    WsUrl u;
    u.host = std::move(b.host);
    u.port = b.port;
    u.path = std::move(b.path);
    u.tls = b.scheme == "wss";
    return u;
}

}  // namespace wsgw
