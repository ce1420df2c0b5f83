// The HTTP/1.1 message parser of http_message.h: head scanning, start lines, header fields, framing, bodies.
#include "http_message.h"

#include "text.h"

#include <algorithm>

namespace wsgw {

namespace {

bool isControl(char c) { return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f; }

// Client text in a reason: quoted, printable, bounded (text.h's appendQuoted).
std::string quotedValue(std::string_view v) {
    std::string out;
    appendQuoted(out, v);
    return out;
}

// Space, tab and (what a tolerant reader leaves at a line's end) CR removed from both ends.
std::string_view trimTolerant(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// The coding names of Transfer-Encoding headers, lower-cased, in order (a header may list several).
std::vector<std::string> transferCodings(const HeaderList &headers) {
    std::vector<std::string> codings;
    for (const auto &[k, v] : headers) {
        if (!equalsIgnoreCase(k, "Transfer-Encoding")) continue;
        std::string_view list = v;
        for (;;) {
            size_t comma = list.find(',');
            std::string_view item = trimOws(list.substr(0, comma));
            item = trimOws(item.substr(0, item.find(';')));  // transfer parameters play no part here
            if (!item.empty()) codings.push_back(toLowerAscii(item));
            if (comma == std::string_view::npos) break;
            list.remove_prefix(comma + 1);
        }
    }
    return codings;
}

}  // namespace

const std::string *findHeader(const HeaderList &headers, std::string_view name) {
    for (const auto &h : headers)
        if (equalsIgnoreCase(h.first, name)) return &h.second;
    return nullptr;
}

// ---- chunked bodies ----------------------------------------------------------------------------------------

ChunkedDecoder::ChunkedDecoder(size_t maxBodyBytes, size_t maxWireBytes, size_t maxTrailerBytes, bool tolerant)
    : maxBody_(maxBodyBytes), maxWire_(maxWireBytes), maxTrailer_(maxTrailerBytes), tolerant_(tolerant) {}

HttpParseState ChunkedDecoder::fail(int status, HttpErrorKind kind, std::string reason) {
    phase_ = Phase::Failed;
    error_ = {status, std::move(reason), kind};
    return HttpParseState::Error;
}

HttpParseState ChunkedDecoder::feed(std::string_view bytes, std::string *body) {
    if (phase_ == Phase::Failed) return HttpParseState::Error;
    while (phase_ != Phase::Done) {
        if (pos_ > maxWire_)
            return fail(413, HttpErrorKind::BodyTooLarge,
                        "the chunked body takes more than " + std::to_string(maxWire_) +
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
        bool sizeLine = phase_ == Phase::SizeDigits || phase_ == Phase::SizeSpace || phase_ == Phase::Extension ||
                        (tolerant_ && phase_ == Phase::SizeLf);
        if (sizeLine && pos_ - lineStart_ >= kMaxLineBytes)
            return fail(400, HttpErrorKind::BadChunk,
                        "malformed chunk size line" + where() + ": longer than " + std::to_string(kMaxLineBytes) +
                            " bytes (chunk extensions included)");
        bool ok = true;
        switch (phase_) {
        case Phase::SizeDigits: ok = takeSizeByte(c, bytes); break;
        case Phase::SizeSpace: ok = takeAfterSize(c); break;
        case Phase::Extension: ok = takeExtensionByte(c); break;
        case Phase::SizeLf: ok = takeSizeLineEnd(c); break;
        case Phase::DataCr:
        case Phase::DataLf: ok = takeDataEnd(c); break;
        case Phase::Trailer: ok = takeTrailerByte(c); break;
        case Phase::TrailerLf: ok = takeTrailerLineEnd(c); break;
        case Phase::Data:
        case Phase::Done:
        case Phase::Failed:
            break;
        }
        if (!ok) return HttpParseState::Error;
        ++pos_;
    }
    return HttpParseState::Complete;
}

std::string ChunkedDecoder::where() const { return " at byte " + std::to_string(pos_) + " of the chunked body"; }

bool ChunkedDecoder::takeSizeByte(char c, std::string_view bytes) {
    int v = hexDigitValue(c);
    if (v >= 0) {
        chunkSize_ = chunkSize_ * 16 + static_cast<size_t>(v);
        ++digits_;
        // Checked at every digit, so the size can neither overflow nor make us wait for data we refuse.
        if (chunkSize_ > maxBody_ - decoded_) {
            fail(413, HttpErrorKind::BodyTooLarge,
                 "the chunked body decodes to more than " + std::to_string(maxBody_) + " bytes; at most " +
                     std::to_string(maxBody_) + " are accepted");
            return false;
        }
        return true;
    }
    if (digits_ == 0) {
        fail(400, HttpErrorKind::BadChunk, "malformed chunk size" + where() + ": expected hexadecimal digits, got " + describeByte(c));
        return false;
    }
    if (c == '\r') phase_ = Phase::SizeLf;
    else if (tolerant_ || c == ';') phase_ = Phase::Extension;
    else if (c == ' ' || c == '\t') phase_ = Phase::SizeSpace;
    else {
        fail(400, HttpErrorKind::BadChunk,
             "malformed chunk size" + where() + ": expected a hexadecimal digit, ';' or CRLF after '" +
                 std::string(bytes.substr(lineStart_, std::min<size_t>(pos_ - lineStart_, 32))) + "', got " + describeByte(c));
        return false;
    }
    return true;
}

bool ChunkedDecoder::takeAfterSize(char c) {
    if (c == ';') phase_ = Phase::Extension;
    else if (c == '\r') phase_ = Phase::SizeLf;
    else if (c != ' ' && c != '\t') {
        fail(400, HttpErrorKind::BadChunk, "malformed chunk size" + where() + ": expected ';' or CRLF after the size, got " + describeByte(c));
        return false;
    }
    return true;
}

bool ChunkedDecoder::takeExtensionByte(char c) {  // tolerated and dropped: nothing here uses chunk extensions
    if (c == '\r') phase_ = Phase::SizeLf;
    else if (!tolerant_ && isControl(c)) {
        fail(400, HttpErrorKind::BadChunk, "malformed chunk extension" + where() + ": control byte " + describeByte(c));
        return false;
    }
    return true;
}

bool ChunkedDecoder::takeSizeLineEnd(char c) {
    if (c != '\n') {
        if (!tolerant_) {
            fail(400, HttpErrorKind::BadChunk, "malformed chunk size line" + where() + ": CR not followed by LF (lines end with CRLF)");
            return false;
        }
        if (c != '\r') phase_ = Phase::Extension;  // tolerant: the line goes on to its CRLF
        return true;
    }
    if (chunkSize_ == 0) {
        phase_ = Phase::Trailer;
    } else {
        decoded_ += chunkSize_;
        chunkLeft_ = chunkSize_;
        phase_ = Phase::Data;
    }
    lineStart_ = pos_ + 1;
    return true;
}

bool ChunkedDecoder::takeDataEnd(char c) {
    if (!tolerant_ && c != (phase_ == Phase::DataCr ? '\r' : '\n')) {
        fail(400, HttpErrorKind::BadChunk,
             "chunk data" + where() + " is not followed by CRLF: the chunk is longer than its size line says (" +
                 std::to_string(chunkSize_) + " bytes; sizes are hexadecimal)");
        return false;
    }
    if (phase_ == Phase::DataCr) {
        phase_ = Phase::DataLf;
    } else {
        phase_ = Phase::SizeDigits;
        chunkSize_ = 0;
        digits_ = 0;
        lineStart_ = pos_ + 1;
    }
    return true;
}

bool ChunkedDecoder::trailerTooLarge() {
    if (++trailerBytes_ <= maxTrailer_) return false;
    fail(431, HttpErrorKind::TrailersTooLarge, "the trailers of the chunked body are larger than " + std::to_string(maxTrailer_) + " bytes");
    return true;
}

bool ChunkedDecoder::takeTrailerByte(char c) {
    if (trailerTooLarge()) return false;
    if (c == '\r') {
        phase_ = Phase::TrailerLf;
    } else if (tolerant_) {
        return true;
    } else if (isControl(c)) {
        fail(400, HttpErrorKind::BadChunk, "malformed trailer field" + where() + ": control byte " + describeByte(c));
        return false;
    } else if (c == ':') {
        if (pos_ == lineStart_) {
            fail(400, HttpErrorKind::BadChunk, "malformed trailer field" + where() + ": empty field name");
            return false;
        }
        trailerHasColon_ = true;
    } else if (!trailerHasColon_ && !isTchar(c)) {
        fail(400, HttpErrorKind::BadChunk,
             "malformed trailer field" + where() + ": expected 'Name: value', got " + describeByte(c) + " in the name");
        return false;
    }
    return true;
}

bool ChunkedDecoder::takeTrailerLineEnd(char c) {
    if (c != '\n') {
        if (!tolerant_) {
            fail(400, HttpErrorKind::BadChunk, "malformed trailer" + where() + ": CR not followed by LF (lines end with CRLF)");
            return false;
        }
        if (trailerTooLarge()) return false;
        if (c != '\r') phase_ = Phase::Trailer;
        return true;
    }
    if (pos_ - 1 == lineStart_) {
        phase_ = Phase::Done;  // the empty line: the body ends after this byte
    } else {
        if (!tolerant_ && !trailerHasColon_) {
            fail(400, HttpErrorKind::BadChunk, "malformed trailer field" + where() + ": expected 'Name: value'");
            return false;
        }
        phase_ = Phase::Trailer;
        trailerHasColon_ = false;
        lineStart_ = pos_ + 1;
    }
    return true;
}

// ---- messages ----------------------------------------------------------------------------------------------

HttpMessageParser::HttpMessageParser(HttpParserOptions options)
    : options_(std::move(options)),
      chunked_(options_.maxBodyBytes, options_.maxChunkedWireBytes, options_.maxTrailerBytes, options_.tolerant) {}

void HttpMessageParser::reset() {
    HttpParserOptions options = std::move(options_);
    *this = HttpMessageParser(std::move(options));
}

HttpParseState HttpMessageParser::fail(int status, HttpErrorKind kind, std::string reason) {
    // A failed message has no body: what was decoded before the fault depends on how the bytes arrived
    // (the chunked decoder checks its wire limit between steps), and nothing may act on it.
    body_.clear();
    stage_ = Stage::Done;
    state_ = HttpParseState::Error;
    error_ = {status, std::move(reason), kind};
    return state_;
}

bool HttpMessageParser::failed(int status, HttpErrorKind kind, std::string reason) {
    fail(status, kind, std::move(reason));
    return false;
}

HttpParseState HttpMessageParser::feed(std::string_view bytes) {
    if (stage_ == Stage::Head) {
        if (scanHead(bytes) != HttpParseState::NeedMore || stage_ == Stage::Head) return state_;
    }
    if (stage_ == Stage::Body) return readBody(bytes);
    return state_;
}

HttpParseState HttpMessageParser::finish(std::string_view bytes) {
    if (feed(bytes) != HttpParseState::NeedMore) return state_;
    if (stage_ == Stage::Body && framing_ == HttpBodyFraming::UntilClose) {
        body_.assign(bytes.substr(head_.length));
        consumed_ = bytes.size();
        stage_ = Stage::Done;
        return state_ = HttpParseState::Complete;
    }
    std::string where = stage_ == Stage::Head ? (bytes.empty() ? "before the " + std::string(what()) + " began"
                                                               : "inside the " + std::string(what()) + " head")
                                              : "after " + std::to_string(bytes.size() - head_.length) + " bytes of the body";
    return fail(400, HttpErrorKind::Truncated, "the connection closed " + where + ": the " + what() + " was cut off");
}

// Lines end with CRLF; a line is taken as soon as its LF is there, and every byte is checked as it arrives, so
// a head that can never be valid is refused at once. Tolerant: only CRLF ends a line, other bytes pass.
HttpParseState HttpMessageParser::scanHead(std::string_view bytes) {
    const size_t limit = std::min(bytes.size(), options_.maxHeadBytes);
    const bool strict = !options_.tolerant;
    while (scan_ < limit) {
        const char c = bytes[scan_];
        if (c == '\n') {
            bool crlf = scan_ > lineStart_ && bytes[scan_ - 1] == '\r';
            if (!crlf) {
                if (strict)
                    return fail(400, HttpErrorKind::BadLineEnding,
                                "malformed " + std::string(what()) + " line/headers: lines must end with CRLF (bare LF at byte " +
                                    std::to_string(scan_) + ")");
                ++scan_;
                continue;
            }
            std::string_view line = bytes.substr(lineStart_, scan_ - 1 - lineStart_);
            lineStart_ = ++scan_;
            if (!takeLine(line)) return state_;
            continue;
        }
        if (strict && c == '\r') {
            if (scan_ + 1 >= limit) break;  // the LF may still come
            if (bytes[scan_ + 1] != '\n')
                return fail(400, HttpErrorKind::BadLineEnding,
                            "malformed " + std::string(what()) + " head: CR not followed by LF at byte " + std::to_string(scan_) +
                                ": lines must end with CRLF");
        } else if (strict && isControl(c)) {
            std::string r = "malformed " + std::string(what()) + " head: control character ";
            appendHexByte(r, static_cast<unsigned char>(c));
            r += " at byte " + std::to_string(scan_) + ": a " + what() + " head is text (only tab is allowed)";
            return fail(400, HttpErrorKind::ControlByte, std::move(r));
        }
        ++scan_;
    }
    if (bytes.size() >= options_.maxHeadBytes)
        return fail(431, HttpErrorKind::HeadTooLarge,
                    std::string(what()) + " head larger than " + std::to_string(options_.maxHeadBytes) +
                        " bytes: send fewer or shorter headers (cookies count too)");
    return state_;
}

bool HttpMessageParser::takeLine(std::string_view line) {
    size_t lineNo = lineNo_++;
    if (lineNo == 0)
        return options_.kind == HttpMessageKind::Request ? takeRequestLine(line) : takeStatusLine(line);
    if (!line.empty()) return takeHeaderLine(line);
    head_.length = lineStart_;
    if (options_.headOnly) {
        headComplete_ = true;
        consumed_ = head_.length;
        stage_ = Stage::Done;
        state_ = HttpParseState::Complete;
        return false;
    }
    if (!chooseFraming()) return false;
    headComplete_ = true;
    stage_ = Stage::Body;
    return false;
}

bool HttpMessageParser::takeRequestLine(std::string_view line) {
    auto malformed = [&] {
        std::string r = "malformed request line: expected \"METHOD /path HTTP/1.1\", got ";
        appendQuoted(r, line);
        fail(400, HttpErrorKind::BadStartLine, std::move(r));
        return false;
    };
    size_t sp1 = line.find(' ');
    size_t sp2 = line.rfind(' ');
    if (sp1 == 0 || sp1 == std::string_view::npos || sp2 == sp1) return malformed();
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (!std::all_of(method.begin(), method.end(), isTchar) || target.empty() || target.find(' ') != std::string_view::npos)
        return malformed();
    head_.method = std::string(method);
    head_.target = std::string(target);
    head_.version = std::string(line.substr(sp2 + 1));
    if (options_.checkRequestLine) {
        HttpParseError refusal;
        if (!options_.checkRequestLine(head_, &refusal)) {
            fail(refusal.status, HttpErrorKind::Refused, std::move(refusal.reason));
            return false;
        }
    }
    if (target.front() != '/') {
        std::string r = "request target must be a path starting with '/' (origin-form), got ";
        appendQuoted(r, target);
        r += ": send \"" + head_.method + " /path HTTP/1.1\" with the host in the Host header";
        fail(400, HttpErrorKind::BadTarget, std::move(r));
        return false;
    }
    for (size_t i = 0; i < target.size(); ++i) {
        auto c = static_cast<unsigned char>(target[i]);
        if (c <= 0x20 || c >= 0x7f) {
            std::string r = "request target has the byte ";
            appendHexByte(r, c);
            r += " at offset " + std::to_string(i) + ": a URL must be ASCII, percent-encode other bytes";
            fail(400, HttpErrorKind::BadTarget, std::move(r));
            return false;
        }
    }
    return true;
}

// "HTTP/1.x NNN reason": any 1.x version, a three-digit code from 100; the reason phrase is not read.
bool HttpMessageParser::takeStatusLine(std::string_view line) {
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') {
        std::string r = "not an HTTP/1.x response: expected \"HTTP/1.1 200 OK\", got ";
        appendQuoted(r, line);
        fail(400, HttpErrorKind::BadStartLine, std::move(r));
        return false;
    }
    int status = 0;
    bool digits = true;
    for (size_t i = 9; i < 12; ++i) {
        digits = digits && line[i] >= '0' && line[i] <= '9';
        status = status * 10 + (line[i] - '0');
    }
    if (!digits || status < 100) {
        std::string r = "a malformed status code in ";
        appendQuoted(r, line);
        fail(400, HttpErrorKind::BadStatusCode, std::move(r));
        return false;
    }
    head_.version = std::string(line.substr(0, 8));
    head_.status = status;
    return true;
}

bool HttpMessageParser::takeHeaderLine(std::string_view line) {
    const size_t lineNo = lineNo_ - 1;
    auto malformed = [&](std::string what) {
        fail(400, HttpErrorKind::BadHeaderLine, "malformed header line " + std::to_string(lineNo) + ": " + what);
        return false;
    };
    if (options_.tolerant) {  // a line that is not a field is skipped
        size_t colon = line.find(':');
        std::string_view name = colon == std::string_view::npos ? std::string_view() : trimTolerant(line.substr(0, colon));
        if (name.empty()) return true;
        if (head_.headers.size() >= options_.maxHeaders)
            return failed(431, HttpErrorKind::TooManyHeaders, "more than " + std::to_string(options_.maxHeaders) + " header lines");
        head_.headers.emplace_back(std::string(name), std::string(trimTolerant(line.substr(colon + 1))));
        return true;
    }
    if (line.front() == ' ' || line.front() == '\t')
        return malformed("a line starting with a space or tab (obs-fold, RFC 7230 3.2.4) is not accepted: send each header "
                         "on one line");
    if (head_.headers.size() >= options_.maxHeaders) {
        fail(431, HttpErrorKind::TooManyHeaders,
             "more than " + std::to_string(options_.maxHeaders) + " header lines in the " + what() +
                 " head: send fewer headers");
        return false;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        std::string r = "expected \"Name: value\", got ";
        appendQuoted(r, line);
        return malformed(std::move(r));
    }
    std::string_view name = line.substr(0, colon);
    for (char ch : name) {
        if (isTchar(ch)) continue;
        std::string r;
        if (ch == ' ' || ch == '\t') {
            r = "whitespace between the header name and ':' in ";
            appendQuoted(r, line);
            r += " (RFC 7230 3.2.4): write \"Name: value\"";
        } else {
            r = "header name ";
            appendQuoted(r, name);
            r += " has the byte ";
            appendHexByte(r, static_cast<unsigned char>(ch));
            r += ", which a header name cannot contain (RFC 7230 3.2)";
        }
        return malformed(std::move(r));
    }
    if (name.empty()) return malformed("empty header name before ':'");
    head_.headers.emplace_back(std::string(name), std::string(trimOws(line.substr(colon + 1))));
    return true;
}

// Content-Length and Transfer-Encoding (RFC 9112 6.3). Requests: both at once is how requests are smuggled
// past proxies that read the other one, so it is refused, as is any coding but chunked.
bool HttpMessageParser::chooseFraming() {
    const bool strict = !options_.tolerant;
    size_t length = 0;
    bool haveLength = false;
    for (const auto &[k, v] : head_.headers) {
        if (!equalsIgnoreCase(k, "Content-Length")) continue;
        if (v.empty()) return failed(400, HttpErrorKind::EmptyContentLength, "Content-Length is empty: send a decimal number");
        if ((strict && v.size() > 12) || v.find_first_not_of("0123456789") != std::string::npos) {
            std::string r = "Content-Length must be a decimal number, got ";
            appendQuoted(r, v);
            return failed(400, HttpErrorKind::BadContentLength, std::move(r));
        }
        size_t n = 0;
        for (char c : v) n = n > SIZE_MAX / 20 ? SIZE_MAX / 2 : n * 10 + static_cast<size_t>(c - '0');  // saturates
        if (haveLength && n != length)
            return failed(400, HttpErrorKind::ConflictingContentLength, "conflicting Content-Length headers: send one");
        if (!strict && n > options_.maxBodyBytes) break;  // refused below, before any later header is read
        length = n;
        haveLength = true;
    }
    bool chunked = false;
    if (strict) {
        if (const std::string *te = head_.header("Transfer-Encoding")) {
            if (haveLength) return failed(400, HttpErrorKind::BadTransferEncoding, "both Transfer-Encoding and Content-Length: send one of them");
            if (head_.version != "HTTP/1.1")
                return failed(400, HttpErrorKind::BadTransferEncoding, "Transfer-Encoding needs HTTP/1.1: send Content-Length with HTTP/1.0");
            std::vector<std::string> codings = transferCodings(head_.headers);
            // Every Transfer-Encoding header counts (they are one list): naming only the first showed
            // "chunked" as the offence when a second header had added another coding after it.
            std::string named;
            for (const std::string &c : codings) named += (named.empty() ? "" : ", ") + c;
            if (named.empty()) named = *te;
            if (codings.empty() || codings.back() != "chunked")
                return failed(400, HttpErrorKind::BadTransferEncoding,
                              "Transfer-Encoding must end with chunked, got " + quotedValue(named) +
                                  (codings.size() > 1 ? " (all Transfer-Encoding headers together)" : ""));
            if (codings.size() > 1)
                return failed(501, HttpErrorKind::UnsupportedTransferCoding,
                            "only the chunked transfer coding is supported, got " + quotedValue(named) + ": send the body uncompressed");
            chunked = true;
        }
    } else {
        for (const auto &[k, v] : head_.headers)
            if (equalsIgnoreCase(k, "Transfer-Encoding")) chunked = endsWithIgnoreCase(v, "chunked");
    }
    for (const auto &[k, v] : head_.headers) {  // digits only by now: the oversized length, or the one kept
        if (!equalsIgnoreCase(k, "Content-Length")) continue;
        size_t n = 0;
        for (char c : v) n = n > SIZE_MAX / 20 ? SIZE_MAX / 2 : n * 10 + static_cast<size_t>(c - '0');
        if (n > options_.maxBodyBytes)
            return failed(413, HttpErrorKind::ContentLengthTooLarge,
                        "the body is " + v.substr(0, 24) + " bytes (Content-Length); at most " + std::to_string(options_.maxBodyBytes) +
                            " are accepted");
    }
    contentLength_ = chunked ? 0 : length;
    if (options_.kind == HttpMessageKind::Response &&
        (head_.status < 200 || head_.status == 204 || head_.status == 304))
        framing_ = HttpBodyFraming::None;  // interim answers and these statuses never have a body
    else if (chunked)
        framing_ = HttpBodyFraming::Chunked;
    else if (haveLength || options_.kind == HttpMessageKind::Request)
        framing_ = HttpBodyFraming::ContentLength;
    else
        framing_ = HttpBodyFraming::UntilClose;
    return true;
}

HttpParseState HttpMessageParser::readBody(std::string_view bytes) {
    const size_t start = head_.length;
    switch (framing_) {
    case HttpBodyFraming::None:
        consumed_ = start;
        break;
    case HttpBodyFraming::ContentLength:
        if (bytes.size() - start < contentLength_) return state_;
        body_.assign(bytes.substr(start, contentLength_));
        consumed_ = start + contentLength_;
        break;
    case HttpBodyFraming::Chunked: {
        HttpParseState s = chunked_.feed(bytes.substr(start), &body_);
        if (s == HttpParseState::Error) return fail(chunked_.error().status, chunked_.error().kind, chunked_.error().reason);
        if (s == HttpParseState::NeedMore) return state_;
        consumed_ = start + chunked_.consumed();
        break;
    }
    case HttpBodyFraming::UntilClose:
        if (bytes.size() - start > options_.maxBodyBytes)
            return fail(413, HttpErrorKind::BodyTooLarge,
                        "the body is over " + std::to_string(options_.maxBodyBytes) + " bytes; at most that many are accepted");
        return state_;  // finish() completes it
    }
    stage_ = Stage::Done;
    return state_ = HttpParseState::Complete;
}

}  // namespace wsgw
