// The management API's request reader: the HTTP/1.1 message parser and the API's rules of http_request.h.
#include "http_request.h"

#include "handshake.h"
#include "text.h"

namespace wsgw {

namespace {

constexpr size_t kMaxHeaders = 100;

HttpParserOptions requestOptions(size_t maxHeadBytes, size_t maxBodyBytes) {
    HttpParserOptions o;
    o.kind = HttpMessageKind::Request;
    o.maxHeadBytes = maxHeadBytes;
    o.maxHeaders = kMaxHeaders;
    o.maxBodyBytes = maxBodyBytes;
    o.maxChunkedWireBytes = 2 * maxBodyBytes + 65536;  // a million one-byte chunks are refused
    o.maxTrailerBytes = maxHeadBytes;
    o.checkRequestLine = [](const HttpMessageHead &head, HttpParseError *error) {
        if (head.version == "HTTP/1.1" || head.version == "HTTP/1.0") return true;
        error->status = 505;
        error->reason = "only HTTP/1.1 and HTTP/1.0 are supported, the request line says ";
        appendQuoted(error->reason, head.version);
        return false;
    };
    return o;
}

}  // namespace

const std::string *HttpRequest::header(std::string_view name) const { return findHeader(headers, name); }

HttpRequestReader::HttpRequestReader(size_t maxHeadBytes, size_t maxBodyBytes)
    : parser_(requestOptions(maxHeadBytes, maxBodyBytes)) {}

void HttpRequestReader::reset() {
    parser_.reset();
    result_ = HttpParse();
}

HttpParse &HttpRequestReader::parse(std::string_view bytes) {
    if (result_.state != HttpParseState::NeedMore) return result_;
    HttpParseState state = parser_.feed(bytes);
    if (state == HttpParseState::Error) {
        result_.state = state;
        result_.error = parser_.error();
        return result_;
    }
    if (parser_.headComplete() && !result_.headComplete) {
        HttpMessageHead &head = parser_.head();
        HttpRequest &req = result_.request;
        const bool http11 = head.version == "HTTP/1.1";
        req.method = std::move(head.method);
        req.target = std::move(head.target);
        size_t q = req.target.find('?');
        req.path = req.target.substr(0, q);
        if (q != std::string::npos) req.rawQuery = req.target.substr(q + 1);
        req.headers = std::move(head.headers);
        req.keepAlive = http11;
        if (const std::string *conn = req.header("Connection")) {
            if (listHasToken(*conn, "close")) req.keepAlive = false;
            else if (listHasToken(*conn, "keep-alive")) req.keepAlive = true;
        }
        if (const std::string *expect = req.header("Expect"))
            req.expectContinue = http11 && equalsIgnoreCase(*expect, "100-continue");
        req.chunked = parser_.framing() == HttpBodyFraming::Chunked;
        req.contentLength = parser_.contentLength();
        result_.headComplete = true;
    }
    if (state == HttpParseState::Complete) {
        result_.request.body = std::move(parser_.body());
        result_.consumed = parser_.consumed();
        result_.state = state;
    }
    return result_;
}

HttpParse parseHttpRequest(std::string_view bytes, size_t maxHeadBytes, size_t maxBodyBytes) {
    HttpRequestReader reader(maxHeadBytes, maxBodyBytes);
    return reader.parse(bytes);
}

std::string renderHttpResponse(int status, std::string_view contentType, std::string_view body,
                               const std::vector<std::pair<std::string, std::string>> &extraHeaders, bool keepAlive,
                               bool headOnly) {
    std::string s = "HTTP/1.1 " + std::to_string(status) + " " + httpReasonPhrase(status) + "\r\n";
    if (!contentType.empty() && status != 204) {
        s += "Content-Type: ";
        s += contentType;
        s += "\r\n";
    }
    if (status != 204) s += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    for (const auto &[k, v] : extraHeaders) s += k + ": " + v + "\r\n";
    if (!keepAlive) s += "Connection: close\r\n";
    s += "\r\n";
    if (status != 204 && !headOnly) s += body;
    return s;
}

}  // namespace wsgw
