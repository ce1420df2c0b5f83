// A ws:// or wss:// URL of a WebSocket backend (routes.json "proxy", or the backend a $connect handler
// chooses): host, port, path and whether it is TLS. Parsing is pure, so the route table can check a proxy
// URL when it is built without the network layer that later connects to it (backend_link.h).
#pragma once

#include <string>
#include <variant>

namespace wsgw {

struct WsUrl {
    std::string host;
    int port = 80;
    std::string path = "/";
    bool tls = false;
    // ws://host[:port][/path] or wss://... (verified against the system's CAs, or --backend-ca); the rules
    // are backend_url.h's.
    static std::variant<WsUrl, std::string> parse(const std::string &url);
};

}  // namespace wsgw
