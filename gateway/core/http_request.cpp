#include "http_request.h"

#include "handshake.h"

#include <algorithm>
#include <cctype>
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

int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool isControl(char c) { return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f; }

// How a byte reads in an error message: printable as itself, anything else as hex.
std::string describeByte(char c) {
    auto u = static_cast<unsigned char>(c);
    static const char kHex[] = "0123456789abcdef";
    std::string hex = std::string("0x") + kHex[u >> 4] + kHex[u & 15];
    if (u > 0x20 && u < 0x7f) return "'" + std::string(1, c) + "' (" + hex + ")";
    return hex;
}

// The coding names of Transfer-Encoding headers, lower-cased, in order (a header may list several).
std::vector<std::string> transferCodings(const HttpRequest &req) {
    std::vector<std::string> codings;
    for (const auto &[k, v] : req.headers) {
        if (strcasecmp(k.c_str(), "Transfer-Encoding") != 0) continue;
        std::string_view list = v;
        for (;;) {
            size_t comma = list.find(',');
            std::string_view item = trim(list.substr(0, comma));
            item = item.substr(0, item.find(';'));  // transfer parameters play no part here
            item = trim(item);
            std::string name(item);
            for (char &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (!name.empty()) codings.push_back(std::move(name));
            if (comma == std::string_view::npos) break;
            list.remove_prefix(comma + 1);
        }
    }
    return codings;
}

}  // namespace

const std::string *HttpRequest::header(std::string_view name) const {
    for (const auto &[k, v] : headers)
        if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) return &v;
    return nullptr;
}

// ---- chunked bodies ----------------------------------------------------------------------------------------

ChunkedDecoder::ChunkedDecoder(size_t maxBodyBytes, size_t maxWireBytes, size_t maxTrailerBytes)
    : maxBody_(maxBodyBytes), maxWire_(maxWireBytes), maxTrailer_(maxTrailerBytes) {}

HttpParseState ChunkedDecoder::fail(int status, std::string reason) {
    phase_ = Phase::Failed;
    error_ = {status, std::move(reason)};
    return HttpParseState::Error;
}

HttpParseState ChunkedDecoder::feed(std::string_view bytes, std::string *body) {
    if (phase_ == Phase::Failed) return HttpParseState::Error;
    while (phase_ != Phase::Done) {
        if (pos_ > maxWire_)
            return fail(413, "the chunked body takes more than " + std::to_string(maxWire_) +
                                 " bytes with its chunk framing: send fewer, larger chunks");
        if (pos_ >= bytes.size()) return HttpParseState::NeedMore;
        if (phase_ == Phase::Data) {
            size_t take = std::min(chunkLeft_, bytes.size() - pos_);
            body->append(bytes.data() + pos_, take);
            pos_ += take;
            chunkLeft_ -= take;
            if (chunkLeft_ == 0) phase_ = Phase::DataCr;
            continue;
        }
        const char c = bytes[pos_];
        auto where = [this] { return " at byte " + std::to_string(pos_) + " of the chunked body"; };
        bool sizeLine = phase_ == Phase::SizeDigits || phase_ == Phase::SizeSpace || phase_ == Phase::Extension;
        if (sizeLine && pos_ - lineStart_ >= kMaxLineBytes)
            return fail(400, "malformed chunk size line" + where() + ": longer than " + std::to_string(kMaxLineBytes) +
                                 " bytes (chunk extensions included)");
        switch (phase_) {
        case Phase::SizeDigits: {
            int v = hexDigit(c);
            if (v >= 0) {
                chunkSize_ = chunkSize_ * 16 + static_cast<size_t>(v);
                ++digits_;
                // Checked at every digit, so the size can neither overflow nor make us wait for data we refuse.
                if (chunkSize_ > maxBody_ - decoded_)
                    return fail(413, "the chunked body decodes to more than " + std::to_string(maxBody_) +
                                         " bytes; at most " + std::to_string(maxBody_) + " are accepted");
                break;
            }
            if (digits_ == 0)
                return fail(400, "malformed chunk size" + where() + ": expected hexadecimal digits, got " + describeByte(c));
            if (c == ' ' || c == '\t') phase_ = Phase::SizeSpace;
            else if (c == ';') phase_ = Phase::Extension;
            else if (c == '\r') phase_ = Phase::SizeLf;
            else
                return fail(400, "malformed chunk size" + where() + ": expected a hexadecimal digit, ';' or CRLF after '" +
                                     std::string(bytes.substr(lineStart_, std::min<size_t>(pos_ - lineStart_, 32))) + "', got " +
                                     describeByte(c));
            break;
        }
        case Phase::SizeSpace:
            if (c == ';') phase_ = Phase::Extension;
            else if (c == '\r') phase_ = Phase::SizeLf;
            else if (c != ' ' && c != '\t')
                return fail(400, "malformed chunk size" + where() + ": expected ';' or CRLF after the size, got " + describeByte(c));
            break;
        case Phase::Extension:  // tolerated and dropped: nothing here uses chunk extensions
            if (c == '\r') phase_ = Phase::SizeLf;
            else if (isControl(c)) return fail(400, "malformed chunk extension" + where() + ": control byte " + describeByte(c));
            break;
        case Phase::SizeLf:
            if (c != '\n') return fail(400, "malformed chunk size line" + where() + ": CR not followed by LF (lines end with CRLF)");
            if (chunkSize_ == 0) {
                phase_ = Phase::Trailer;
            } else {
                decoded_ += chunkSize_;
                chunkLeft_ = chunkSize_;
                phase_ = Phase::Data;
            }
            lineStart_ = pos_ + 1;
            break;
        case Phase::DataCr:
        case Phase::DataLf:
            if (c != (phase_ == Phase::DataCr ? '\r' : '\n'))
                return fail(400, "chunk data" + where() + " is not followed by CRLF: the chunk is longer than its size line says (" +
                                     std::to_string(chunkSize_) + " bytes; sizes are hexadecimal)");
            if (phase_ == Phase::DataCr) {
                phase_ = Phase::DataLf;
            } else {
                phase_ = Phase::SizeDigits;
                chunkSize_ = 0;
                digits_ = 0;
                lineStart_ = pos_ + 1;
            }
            break;
        case Phase::Trailer:
            if (++trailerBytes_ > maxTrailer_)
                return fail(431, "the trailers of the chunked body are larger than " + std::to_string(maxTrailer_) + " bytes");
            if (c == '\r') {
                phase_ = Phase::TrailerLf;
            } else if (isControl(c)) {
                return fail(400, "malformed trailer field" + where() + ": control byte " + describeByte(c));
            } else if (c == ':') {
                if (pos_ == lineStart_) return fail(400, "malformed trailer field" + where() + ": empty field name");
                trailerHasColon_ = true;
            } else if (!trailerHasColon_ && !isTchar(c)) {
                return fail(400, "malformed trailer field" + where() + ": expected 'Name: value', got " + describeByte(c) +
                                     " in the name");
            }
            break;
        case Phase::TrailerLf:
            if (c != '\n') return fail(400, "malformed trailer" + where() + ": CR not followed by LF (lines end with CRLF)");
            if (pos_ - 1 == lineStart_) {
                phase_ = Phase::Done;  // the empty line: the body ends after this byte
            } else {
                if (!trailerHasColon_) return fail(400, "malformed trailer field" + where() + ": expected 'Name: value'");
                phase_ = Phase::Trailer;
                trailerHasColon_ = false;
                lineStart_ = pos_ + 1;
            }
            break;
        case Phase::Data:
        case Phase::Done:
        case Phase::Failed:
            break;
        }
        ++pos_;
    }
    return HttpParseState::Complete;
}

// ---- requests ----------------------------------------------------------------------------------------------

HttpRequestReader::HttpRequestReader(size_t maxHeadBytes, size_t maxBodyBytes)
    : maxHead_(maxHeadBytes), maxBody_(maxBodyBytes), chunked_(maxBodyBytes, 2 * maxBodyBytes + 65536, maxHeadBytes) {}

void HttpRequestReader::reset() { *this = HttpRequestReader(maxHead_, maxBody_); }

void HttpRequestReader::fail(int status, std::string reason) {
    stage_ = Stage::Done;
    result_.state = HttpParseState::Error;
    result_.error = {status, std::move(reason)};
}

HttpParse &HttpRequestReader::parse(std::string_view bytes) {
    if (stage_ == Stage::Head) {
        // Search only what is new (the blank line may straddle the old end), so a slow head costs linear time.
        size_t from = scanned_ >= 3 ? scanned_ - 3 : 0;
        size_t headEnd = bytes.find("\r\n\r\n", from);
        if (headEnd == std::string_view::npos) {
            if (bytes.size() > maxHead_) {
                fail(431, "request head larger than " + std::to_string(maxHead_) + " bytes");
                return result_;
            }
            for (size_t i = scanned_; i < bytes.size(); ++i)
                if (bytes[i] == '\0') {
                    fail(400, "NUL byte in the request head");
                    return result_;
                }
            scanned_ = bytes.size();
            return result_;
        }
        if (headEnd + 4 > maxHead_) {
            fail(431, "request head larger than " + std::to_string(maxHead_) + " bytes");
            return result_;
        }
        parseHead(bytes.substr(0, headEnd));
        if (stage_ == Stage::Done) return result_;
        bodyStart_ = headEnd + 4;
        result_.headComplete = true;
    }
    if (stage_ == Stage::LengthBody) {
        if (bytes.size() - bodyStart_ < contentLength_) return result_;
        result_.request.body = std::string(bytes.substr(bodyStart_, contentLength_));
        result_.consumed = bodyStart_ + contentLength_;
        result_.state = HttpParseState::Complete;
        stage_ = Stage::Done;
    } else if (stage_ == Stage::ChunkedBody) {
        HttpParseState s = chunked_.feed(bytes.substr(bodyStart_), &result_.request.body);
        if (s == HttpParseState::Error) {
            fail(chunked_.error().status, chunked_.error().reason);
        } else if (s == HttpParseState::Complete) {
            result_.consumed = bodyStart_ + chunked_.consumed();
            result_.state = HttpParseState::Complete;
            stage_ = Stage::Done;
        }
    }
    return result_;
}

void HttpRequestReader::parseHead(std::string_view head) {
    HttpRequest &req = result_.request;
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
    const bool http11 = version == "HTTP/1.1";
    req.keepAlive = http11;

    std::string_view rest = lineEnd == std::string_view::npos ? std::string_view() : head.substr(lineEnd + 2);
    while (!rest.empty()) {
        size_t e = rest.find("\r\n");
        std::string_view h = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
        if (h.empty() || h[0] == ' ' || h[0] == '\t') return fail(400, "obsolete header line folding is not allowed");
        for (char c : h)
            if (isControl(c)) return fail(400, "control character in a header line (lines must end with CRLF)");
        size_t colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header line: expected 'Name: value'");
        std::string_view name = h.substr(0, colon);
        for (char c : name)
            if (!isTchar(c)) return fail(400, "malformed header name '" + std::string(name.substr(0, 64)) + "'");
        if (req.headers.size() >= kMaxHeaders) return fail(431, "more than " + std::to_string(kMaxHeaders) + " headers");
        req.headers.emplace_back(std::string(name), std::string(trim(h.substr(colon + 1))));
    }

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
    if (req.header("Transfer-Encoding")) {
        // Both framings at once is how requests are smuggled past proxies that read the other one: refused.
        if (haveLength) return fail(400, "both Transfer-Encoding and Content-Length: send one of them");
        if (!http11) return fail(400, "Transfer-Encoding needs HTTP/1.1: send Content-Length with HTTP/1.0");
        std::vector<std::string> codings = transferCodings(req);
        if (codings.empty() || codings.back() != "chunked")
            return fail(400, "Transfer-Encoding must end with chunked (got '" + req.header("Transfer-Encoding")->substr(0, 64) + "')");
        if (codings.size() > 1)
            return fail(501, "only the chunked transfer coding is supported (got '" +
                                 req.header("Transfer-Encoding")->substr(0, 64) + "'): send the body uncompressed");
        req.chunked = true;
    }
    if (length > maxBody_)
        return fail(413, "the body is " + std::to_string(length) + " bytes; at most " + std::to_string(maxBody_) + " are accepted");
    if (const std::string *conn = req.header("Connection")) {
        if (hasToken(*conn, "close")) req.keepAlive = false;
        else if (hasToken(*conn, "keep-alive")) req.keepAlive = true;
    }
    if (const std::string *expect = req.header("Expect"))
        req.expectContinue = http11 && strcasecmp(expect->c_str(), "100-continue") == 0;
    contentLength_ = length;
    req.contentLength = length;
    stage_ = req.chunked ? Stage::ChunkedBody : Stage::LengthBody;
}

HttpParse parseHttpRequest(std::string_view bytes, size_t maxHeadBytes, size_t maxBodyBytes) {
    HttpRequestReader reader(maxHeadBytes, maxBodyBytes);
    return reader.parse(bytes);
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
