// One management API request from the front of a byte buffer, for the keep-alive management listener: the
// HTTP/1.1 message parser (http_message.h) with the management API's rules on top: HTTP/1.1 or 1.0 (505 for
// any other), the path and query split, keep-alive, Expect: 100-continue; a body sent with Content-Length or
// Transfer-Encoding: chunked (docs/management-api.md, "Request bodies"; Node's http, Go and Python send chunked
// bodies of unknown length), the body limit counting decoded bytes. Incremental (call again with the same bytes
// and more), so it is fuzzed and unit-tested without a socket. Once the head is complete it says so even while
// the body is still missing, so that the server can answer `Expect: 100-continue` before the body comes.
#pragma once

#include "http_message.h"

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
    size_t contentLength = 0;     // as declared by Content-Length (0 when absent or chunked)
    bool chunked = false;         // the body came as Transfer-Encoding: chunked (body holds it decoded)
    bool expectContinue = false;  // HTTP/1.1 with Expect: 100-continue
    const std::string *header(std::string_view name) const;  // case-insensitive, first match
};

struct HttpParse {
    HttpParseState state = HttpParseState::NeedMore;
    // Complete: the whole request. NeedMore with headComplete: the head (method, target, headers) while the
    // body is still coming (what `body` holds then is not all of it).
    HttpRequest request;
    bool headComplete = false;
    size_t consumed = 0;  // Complete: bytes of this request (head, body, chunk framing and trailers)
    HttpParseError error;
};

// Reads one request from the front of a buffer. Resumable like HttpMessageParser: call parse() with the bytes
// of this request from its first byte, the same and more each time; reset() before the next request.
class HttpRequestReader {
public:
    explicit HttpRequestReader(size_t maxHeadBytes = 16384, size_t maxBodyBytes = 131072);
    // The caller may move the request out of a Complete result before reset().
    HttpParse &parse(std::string_view bytes);
    void reset();

private:
    HttpMessageParser parser_;
    HttpParse result_;
};

// One request from the front of `bytes`, from scratch (a fresh HttpRequestReader).
HttpParse parseHttpRequest(std::string_view bytes, size_t maxHeadBytes = 16384, size_t maxBodyBytes = 131072);
// headOnly: the answer to a HEAD request, the head a GET would get (Content-Length included) without the
// body (RFC 9110 section 9.3.2); a client reads no body after it, so one sent would be taken for the next answer.
std::string renderHttpResponse(int status, std::string_view contentType, std::string_view body,
                               const std::vector<std::pair<std::string, std::string>> &extraHeaders, bool keepAlive,
                               bool headOnly = false);

}  // namespace wsgw
