#include "http_request.h"

#include "handshake.h"

#include <strings.h>

namespace wsgw {

namespace {

constexpr size_t kMaxHeaders = 100;

bool isTchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

bool hasToken(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view item = trim(list.substr(0, comma));
        if (item.size() == token.size() && strncasecmp(item.data(), token.data(), token.size()) == 0) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

HttpParse fail(int status, std::string reason) {
    HttpParse p;
    p.state = HttpParseState::Error;
    p.error = {status, std::move(reason)};
    return p;
}

}  // namespace

const std::string *HttpRequest::header(std::string_view name) const {
    for (const auto &[k, v] : headers)
        if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) return &v;
    return nullptr;
}

HttpParse parseHttpRequest(std::string_view bytes, size_t maxHeadBytes, size_t maxBodyBytes) {
    size_t headEnd = bytes.find("\r\n\r\n");
    if (headEnd == std::string_view::npos) {
        if (bytes.size() > maxHeadBytes) return fail(431, "request head larger than " + std::to_string(maxHeadBytes) + " bytes");
        for (char c : bytes)
            if (c == '\0') return fail(400, "NUL byte in the request head");
        return {};
    }
    if (headEnd + 4 > maxHeadBytes) return fail(431, "request head larger than " + std::to_string(maxHeadBytes) + " bytes");
    std::string_view head = bytes.substr(0, headEnd);
    HttpParse out;
    HttpRequest &req = out.request;

    size_t lineEnd = head.find("\r\n");
    std::string_view line = head.substr(0, lineEnd);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return fail(400, "malformed request line: expected 'METHOD /path HTTP/1.1'");
    std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1), version = line.substr(sp2 + 1);
    if (method.empty()) return fail(400, "malformed request line: empty method");
    for (char c : method)
        if (!isTchar(c)) return fail(400, "malformed request line: bad character in the method");
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return fail(505, "only HTTP/1.1 and HTTP/1.0 are supported");
    if (target.empty() || target[0] != '/') return fail(400, "the request target must be a path starting with '/'");
    for (char c : target)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return fail(400, "the request target has a control, space or non-ASCII byte: percent-encode it");
    req.method = std::string(method);
    req.target = std::string(target);
    size_t q = target.find('?');
    req.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) req.rawQuery = std::string(target.substr(q + 1));
    req.keepAlive = version == "HTTP/1.1";

    std::string_view rest = lineEnd == std::string_view::npos ? std::string_view() : head.substr(lineEnd + 2);
    while (!rest.empty()) {
        size_t e = rest.find("\r\n");
        std::string_view h = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
        if (h.empty() || h[0] == ' ' || h[0] == '\t') return fail(400, "obsolete header line folding is not allowed");
        for (char c : h)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
                return fail(400, "control character in a header line (lines must end with CRLF)");
        size_t colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header line: expected 'Name: value'");
        std::string_view name = h.substr(0, colon);
        for (char c : name)
            if (!isTchar(c)) return fail(400, "malformed header name '" + std::string(name.substr(0, 64)) + "'");
        if (req.headers.size() >= kMaxHeaders) return fail(431, "more than " + std::to_string(kMaxHeaders) + " headers");
        req.headers.emplace_back(std::string(name), std::string(trim(h.substr(colon + 1))));
    }

    if (req.header("Transfer-Encoding"))
        return fail(501, "chunked request bodies are not supported: send Content-Length");
    size_t length = 0;
    bool haveLength = false;
    for (const auto &[k, v] : req.headers) {
        if (strcasecmp(k.c_str(), "Content-Length") != 0) continue;
        if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
            return fail(400, "Content-Length must be a decimal number");
        size_t n = std::stoull(v);
        if (haveLength && n != length) return fail(400, "conflicting Content-Length headers");
        length = n;
        haveLength = true;
    }
    if (length > maxBodyBytes)
        return fail(413, "the body is " + std::to_string(length) + " bytes; at most " + std::to_string(maxBodyBytes) + " are accepted");
    if (const std::string *conn = req.header("Connection")) {
        if (hasToken(*conn, "close")) req.keepAlive = false;
        else if (hasToken(*conn, "keep-alive")) req.keepAlive = true;
    }
    size_t bodyStart = headEnd + 4;
    if (bytes.size() - bodyStart < length) return {};
    req.body = std::string(bytes.substr(bodyStart, length));
    out.consumed = bodyStart + length;
    out.state = HttpParseState::Complete;
    return out;
}

std::string renderHttpResponse(int status, std::string_view contentType, std::string_view body,
                               const std::vector<std::pair<std::string, std::string>> &extraHeaders, bool keepAlive) {
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
    if (status != 204) s += body;
    return s;
}

}  // namespace wsgw
