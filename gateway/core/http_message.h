// The one HTTP/1.1 message parser (RFC 9112) of the gateway: a request line or a status line, header fields
// within limits (bytes of the head, number of fields), and a body framed by Content-Length, chunked
// transfer coding (extensions and trailers read and dropped, decoded size bounded) or, for a response, the
// end of the connection. Its users: the WebSocket upgrade head (handshake: head only, stateless), the
// management API's requests (http_request: keep-alive, Expect: 100-continue) and an HTTP backend's responses
// (invoke/http_integration). Each error says what and at which byte, with the status to answer (400, 413,
// 431, 501) and a kind a user may phrase in its own words.
//
// Incremental: feed() is given the bytes of one message from its first byte, the same and more each call,
// and goes on where it stopped, so a message that arrives a byte at a time costs linear time; a message
// that can never become valid is an error as soon as the offending byte (or line) is there. Pure: no
// sockets, so it is unit-tested and fuzzed on bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgw {

using HeaderList = std::vector<std::pair<std::string, std::string>>;  // name as received, value trimmed

// Case-insensitive, first match, nullptr if absent.
const std::string *findHeader(const HeaderList &headers, std::string_view name);

enum class HttpParseState { NeedMore, Complete, Error };

enum class HttpErrorKind {
    None,
    HeadTooLarge,              // 431: no blank line within maxHeadBytes
    TooManyHeaders,            // 431
    BadLineEnding,             // 400: a bare LF, or CR not followed by LF
    ControlByte,               // 400: a control byte other than tab in the head
    BadStartLine,              // 400: not "METHOD target HTTP/x.y" / "HTTP/1.x NNN reason"
    BadStatusCode,             // 400: a status line whose code is not three digits from 100
    BadTarget,                 // 400: not origin-form, or a byte a URL cannot hold
    Refused,                   // the user's start-line check said no (its status and reason)
    BadHeaderLine,             // 400: obs-fold, no ':', or a bad or empty field name
    EmptyContentLength,        // 400
    BadContentLength,          // 400: not a decimal number
    ConflictingContentLength,  // 400
    BadTransferEncoding,       // 400: with Content-Length, without HTTP/1.1, or not ending in chunked
    UnsupportedTransferCoding, // 501: a coding other than chunked
    ContentLengthTooLarge,     // 413: the declared length is over maxBodyBytes
    BodyTooLarge,              // 413: the decoded body (or its chunk framing) is over the limit
    BadChunk,                  // 400: chunk size line, chunk data end or trailer malformed
    TrailersTooLarge,          // 431
    Truncated,                 // finish(): the connection ended inside the message
};

struct HttpParseError {
    int status = 400;
    std::string reason;  // what was wrong, where, and what to do; printable ASCII
    HttpErrorKind kind = HttpErrorKind::None;
};

enum class HttpMessageKind { Request, Response };
enum class HttpBodyFraming { None, ContentLength, Chunked, UntilClose };

struct HttpMessageHead {
    std::string method, target;  // a request's
    int status = 0;              // a response's
    std::string version;         // as sent ("HTTP/1.1")
    HeaderList headers;
    size_t length = 0;  // bytes up to and including the blank line, once the head is complete
    const std::string *header(std::string_view name) const { return findHeader(headers, name); }
};

struct HttpParserOptions {
    HttpMessageKind kind = HttpMessageKind::Request;
    size_t maxHeadBytes = 16384;     // the head with its blank line; 431 beyond
    size_t maxHeaders = 100;         // header lines; one more is 431
    size_t maxBodyBytes = 131072;    // decoded body bytes; 413 beyond
    size_t maxChunkedWireBytes = SIZE_MAX;  // a chunked body with its framing (a million 1-byte chunks); 413
    size_t maxTrailerBytes = 16384;  // 431 beyond
    // Stop at the blank line: what follows is not HTTP (a WebSocket upgrade's first frames), and the head's
    // Content-Length and Transfer-Encoding are not read.
    bool headOnly = false;
    // What a client of a backend accepts (RFC 9112 2.2's robustness): lines end at CRLF only and may hold
    // any byte, a header line that is not "Name: value" is skipped, names are trimmed, Transfer-Encoding is
    // chunked when its last value ends in "chunked", chunk extensions and trailers are not checked and the
    // two bytes after chunk data are not either. Requests from clients are parsed strictly.
    bool tolerant = false;
    // Called once a request line is read (method, target, version set), before the target is checked:
    // returns false with *error set (its status, reason) to refuse, e.g. a version the user does not speak.
    std::function<bool(const HttpMessageHead &, HttpParseError *error)> checkRequestLine;
};

// Decodes a chunked body (RFC 9112 section 7.1) from its first byte; resumable like the parser. Chunk
// extensions and trailer fields are checked for form (unless tolerant) and dropped.
class ChunkedDecoder {
public:
    static constexpr size_t kMaxLineBytes = 4096;  // a chunk-size line with its extensions

    // maxBodyBytes bounds the decoded bytes (413 beyond); maxWireBytes the bytes the body takes with its
    // framing (413 beyond); maxTrailerBytes the trailers (431).
    ChunkedDecoder(size_t maxBodyBytes, size_t maxWireBytes, size_t maxTrailerBytes, bool tolerant = false);
    // Appends newly decoded bytes to *body. Complete once the last chunk and the trailers' empty line came.
    HttpParseState feed(std::string_view bytes, std::string *body);
    size_t consumed() const { return pos_; }  // bytes used so far (all of the body once Complete)
    const HttpParseError &error() const { return error_; }

private:
    enum class Phase { SizeDigits, SizeSpace, Extension, SizeLf, Data, DataCr, DataLf, Trailer, TrailerLf, Done, Failed };
    HttpParseState fail(int status, HttpErrorKind kind, std::string reason);
    // One byte `c` at pos_ of `bytes`, by phase: each moves phase_ on, or fails (phase_ Failed) and returns false.
    bool takeSizeByte(char c, std::string_view bytes);  // SizeDigits
    bool takeAfterSize(char c);                         // SizeSpace
    bool takeExtensionByte(char c);                     // Extension
    bool takeSizeLineEnd(char c);                       // SizeLf: the chunk's data or the trailers follow
    bool takeDataEnd(char c);                           // DataCr, DataLf
    bool takeTrailerByte(char c);                       // Trailer
    bool takeTrailerLineEnd(char c);                    // TrailerLf: another trailer or the end
    bool trailerTooLarge();                             // counts a trailer byte; true has failed (431)
    std::string where() const;                          // " at byte N of the chunked body", for errors

    size_t maxBody_, maxWire_, maxTrailer_;
    bool tolerant_;
    Phase phase_ = Phase::SizeDigits;
    size_t pos_ = 0;          // next byte to look at
    size_t lineStart_ = 0;    // where the current size or trailer line began
    size_t digits_ = 0;       // hex digits of the current chunk size
    size_t chunkSize_ = 0, chunkLeft_ = 0, decoded_ = 0, trailerBytes_ = 0;
    bool trailerHasColon_ = false;
    HttpParseError error_;
};

class HttpMessageParser {
public:
    explicit HttpMessageParser(HttpParserOptions options = {});

    // `bytes`: this message from its first byte, the same and more at each call. What follows a Complete
    // message (consumed() on) is the next one's.
    HttpParseState feed(std::string_view bytes);
    // The peer closed after `bytes`: a body that runs to the close is Complete; any other unfinished message
    // is an Error of kind Truncated.
    HttpParseState finish(std::string_view bytes);
    // Ready for the next message (same options).
    void reset();

    HttpParseState state() const { return state_; }
    bool headComplete() const { return headComplete_; }  // head read and its framing valid
    const HttpMessageHead &head() const { return head_; }
    HttpMessageHead &head() { return head_; }
    HttpBodyFraming framing() const { return framing_; }
    size_t contentLength() const { return contentLength_; }  // declared (0 when absent or chunked)
    std::string &body() { return body_; }                     // all of it once Complete
    size_t consumed() const { return consumed_; }              // Complete: the message's bytes
    const HttpParseError &error() const { return error_; }

private:
    enum class Stage { Head, Body, Done };
    HttpParseState fail(int status, HttpErrorKind kind, std::string reason);
    bool failed(int status, HttpErrorKind kind, std::string reason);  // fail(), for the steps that return bool
    HttpParseState scanHead(std::string_view bytes);
    bool takeLine(std::string_view line);  // false: failed, or the head is complete
    bool takeRequestLine(std::string_view line);
    bool takeStatusLine(std::string_view line);
    bool takeHeaderLine(std::string_view line);
    bool chooseFraming();
    HttpParseState readBody(std::string_view bytes);
    const char *what() const { return options_.kind == HttpMessageKind::Request ? "request" : "response"; }

    HttpParserOptions options_;
    ChunkedDecoder chunked_;
    Stage stage_ = Stage::Head;
    HttpParseState state_ = HttpParseState::NeedMore;
    size_t scan_ = 0;       // next head byte to look at
    size_t lineStart_ = 0;  // where the current head line began
    size_t lineNo_ = 0;     // 0 is the start line
    bool headComplete_ = false;
    HttpMessageHead head_;
    HttpBodyFraming framing_ = HttpBodyFraming::None;
    size_t contentLength_ = 0;
    std::string body_;
    size_t consumed_ = 0;
    HttpParseError error_;
};

}  // namespace wsgw
