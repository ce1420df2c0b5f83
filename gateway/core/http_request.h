// One HTTP/1.1 request from the front of a byte buffer, for the keep-alive management listener: request
// line, headers, and a body sent with Content-Length or Transfer-Encoding: chunked (SPEC section 10; Node's
// http, Go and Python send chunked bodies of unknown length). The body limit counts decoded bytes; chunk
// extensions and trailers are read and dropped. Pure and incremental (call again with the same bytes and
// more), so it is fuzzed and unit-tested without a socket. Once the head is complete it says so even while
// the body is still missing, so that the server can answer `Expect: 100-continue` before the body comes.
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
    size_t contentLength = 0;     // as declared by Content-Length (0 when absent or chunked)
    bool chunked = false;         // the body came as Transfer-Encoding: chunked (body holds it decoded)
    bool expectContinue = false;  // HTTP/1.1 with Expect: 100-continue
    const std::string *header(std::string_view name) const;  // case-insensitive, first match
};

struct HttpParseError {
    int status = 400;
    std::string reason;
};

enum class HttpParseState { NeedMore, Complete, Error };

struct HttpParse {
    HttpParseState state = HttpParseState::NeedMore;
    // Complete: the whole request. NeedMore with headComplete: the head (method, target, headers) while the
    // body is still coming (what `body` holds then is not all of it).
    HttpRequest request;
    bool headComplete = false;
    size_t consumed = 0;  // Complete: bytes of this request (head, body, chunk framing and trailers)
    HttpParseError error;
};

// Decodes a chunked body (RFC 9112 section 7.1) from its first byte. Resumable: each feed() passes the bytes
// of the previous call and possibly more, and the decoder goes on where it stopped, so a body that arrives a
// byte at a time costs linear time. Chunk extensions and trailer fields are checked for form and dropped.
class ChunkedDecoder {
public:
    static constexpr size_t kMaxLineBytes = 4096;  // a chunk-size line with its extensions; one trailer line

    // maxBodyBytes bounds the decoded bytes (413 beyond); maxWireBytes the bytes the body takes with its
    // framing (413 beyond: a million one-byte chunks are refused); maxTrailerBytes the trailers (431).
    ChunkedDecoder(size_t maxBodyBytes, size_t maxWireBytes, size_t maxTrailerBytes);
    // Appends newly decoded bytes to *body. Complete once the last chunk and the trailers' empty line came.
    HttpParseState feed(std::string_view bytes, std::string *body);
    size_t consumed() const { return pos_; }  // bytes used so far (all of the body once Complete)
    const HttpParseError &error() const { return error_; }

private:
    enum class Phase { SizeDigits, SizeSpace, Extension, SizeLf, Data, DataCr, DataLf, Trailer, TrailerLf, Done, Failed };
    HttpParseState fail(int status, std::string reason);

    size_t maxBody_, maxWire_, maxTrailer_;
    Phase phase_ = Phase::SizeDigits;
    size_t pos_ = 0;          // next byte to look at
    size_t lineStart_ = 0;    // where the current size or trailer line began
    size_t digits_ = 0;       // hex digits of the current chunk size
    size_t chunkSize_ = 0, chunkLeft_ = 0, decoded_ = 0, trailerBytes_ = 0;
    bool trailerHasColon_ = false;
    HttpParseError error_;
};

// Reads one request from the front of a buffer. Resumable like ChunkedDecoder: call parse() with the bytes
// of this request from its first byte, the same and more each time; reset() before the next request.
class HttpRequestReader {
public:
    explicit HttpRequestReader(size_t maxHeadBytes = 16384, size_t maxBodyBytes = 131072);
    // The caller may move the request out of a Complete result before reset().
    HttpParse &parse(std::string_view bytes);
    void reset();

private:
    enum class Stage { Head, LengthBody, ChunkedBody, Done };
    void fail(int status, std::string reason);
    void parseHead(std::string_view head);

    size_t maxHead_, maxBody_;
    Stage stage_ = Stage::Head;
    size_t scanned_ = 0;    // head bytes already searched for the blank line and NUL
    size_t bodyStart_ = 0;
    size_t contentLength_ = 0;
    ChunkedDecoder chunked_;
    HttpParse result_;
};

// One request from the front of `bytes`, from scratch (a fresh HttpRequestReader).
HttpParse parseHttpRequest(std::string_view bytes, size_t maxHeadBytes = 16384, size_t maxBodyBytes = 131072);
std::string renderHttpResponse(int status, std::string_view contentType, std::string_view body,
                               const std::vector<std::pair<std::string, std::string>> &extraHeaders, bool keepAlive);

}  // namespace wsgw
