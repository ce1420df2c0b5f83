// The one parser of a URL, scheme://host[:port][/path], shared by the proxy's WebSocket backends (ws_url.h),
// the HTTP integration's (invoke/http_integration.h) and Azure Web PubSub token audiences and the Host header
// they are compared with (auth/webpubsub_token.cpp); each caller keeps its own schemes,
// their default ports and its error for a scheme it does not speak. The rules: a host is required, an IPv6
// host is written in brackets and only ":port" may follow the ']', a port is 1 to 65535 in digits, and the
// path (the rest, query included, "/" when absent) holds no space or control character.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace wsgw {

struct UrlScheme {
    std::string_view name;  // "ws", lower case as written in the URL
    int defaultPort;
};

struct BackendUrl {
    std::string_view scheme;  // one of the caller's UrlScheme names
    std::string host;         // without the brackets of an IPv6 literal
    int port = 0;
    std::string path = "/";
};

// On error returns a one-line reason quoting the URL. A URL whose scheme is none of `schemes` gets
// "'URL' " + notThisScheme (for example "is not a ws:// or wss:// URL").
std::variant<BackendUrl, std::string> parseBackendUrl(const std::string &url, std::initializer_list<UrlScheme> schemes,
                                                      std::string_view notThisScheme);

}  // namespace wsgw
