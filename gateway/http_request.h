// One HTTP/1.1 request from the front of a byte buffer, for the keep-alive management listener: request
// line, headers, a Content-Length body. Pure and incremental (call again with more bytes), so it is
// fuzzed and unit-tested without a socket. Chunked bodies are refused: the AWS SDKs send Content-Length.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgw {

struct HttpRequest {
    std::string method, target, path, rawQuery;  // path still percent-encoded
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool keepAlive = true;
    const std::string *header(std::string_view name) const;  // case-insensitive, first match
};

struct HttpParseError {
    int status = 400;
    std::string reason;
};

enum class HttpParseState { NeedMore, Complete, Error };

struct HttpParse {
    HttpParseState state = HttpParseState::NeedMore;
    HttpRequest request;
    size_t consumed = 0;
    HttpParseError error;
};

HttpParse parseHttpRequest(std::string_view bytes, size_t maxHeadBytes = 16384, size_t maxBodyBytes = 131072);
std::string renderHttpResponse(int status, std::string_view contentType, std::string_view body,
                               const std::vector<std::pair<std::string, std::string>> &extraHeaders, bool keepAlive);

}  // namespace wsgw
