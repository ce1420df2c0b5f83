#include "http_integration.h"

#include "backend_url.h"
#include "http_message.h"
#include "text.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 16u << 20;
constexpr size_t kMaxIdle = 64;
// A chunked body of 16 MiB in small chunks is about twice that on the wire; a body of a million 1-byte
// chunks would hold the reader's buffer at 7x.
constexpr size_t kMaxChunkedWire = 2 * kMaxBody + kMaxHead;

int msLeft(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

bool waitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        int n = poll(&p, 1, msLeft(deadline));
        if (n > 0) return true;
        if (n == 0) return false;
        if (errno != EINTR) return false;
    }
}

// The error a failed or cut-off response is reported with (logged, and in the route's failure).
std::string describeFailure(const HttpMessageParser &parser, std::string_view bytes) {
    switch (parser.error().kind) {
    case HttpErrorKind::HeadTooLarge: return "the response head is over 64 KiB";
    case HttpErrorKind::BadStartLine: return "not an HTTP/1.x response";
    case HttpErrorKind::BadStatusCode: return "a malformed status code";
    case HttpErrorKind::EmptyContentLength: return "an empty Content-Length";
    case HttpErrorKind::BadContentLength:
    case HttpErrorKind::ContentLengthTooLarge: return "a malformed or oversized Content-Length";
    case HttpErrorKind::ConflictingContentLength: return "conflicting Content-Length headers";
    case HttpErrorKind::BodyTooLarge:
        return parser.error().reason.find("framing") != std::string::npos
                   ? "the chunked response body takes over 32 MiB with its chunk framing"
                   : "the response body is over 16 MiB";
    case HttpErrorKind::BadChunk: return "a malformed chunk size";
    case HttpErrorKind::Truncated:
        if (!parser.headComplete()) return bytes.empty() ? "the backend closed the connection without answering" : "the response was cut off";
        return parser.framing() == HttpBodyFraming::Chunked ? "the chunked body was cut off" : "the response body was cut off";
    default: return parser.error().reason;
    }
}

}  // namespace

std::variant<HttpUrl, std::string> HttpUrl::parse(const std::string &url) {
    if (url.rfind("https://", 0) == 0) return "'" + url + "': https:// backends are not spoken yet: use http:// (on a trusted network)";
    auto parsed = parseBackendUrl(url, {{"http", 80}}, "is not an http:// URL");
    if (auto *error = std::get_if<std::string>(&parsed)) return std::move(*error);
    auto &b = std::get<BackendUrl>(parsed);
    HttpUrl u;
    u.host = std::move(b.host);
    u.port = b.port;
    u.path = std::move(b.path);
    u.text = url;
    return u;
}

HttpParserOptions HttpResponseReader::responseOptions() {
    HttpParserOptions o;
    o.kind = HttpMessageKind::Response;
    o.maxHeadBytes = kMaxHead;
    o.maxHeaders = SIZE_MAX;  // the head's bytes bound it
    o.maxBodyBytes = kMaxBody;
    o.maxChunkedWireBytes = kMaxChunkedWire;
    o.maxTrailerBytes = kMaxHead;
    o.tolerant = true;  // a backend's answer is read as clients read answers (http_message.h)
    return o;
}

HttpResponseReader::State HttpResponseReader::append(std::string_view more, bool closed) {
    if (state_ != State::NeedMore) return state_;
    in_.append(more);
    return state_ = step(closed);
}

HttpResponseReader::State HttpResponseReader::step(bool closed) {
    for (;;) {
        HttpParseState state = closed ? parser_.finish(in_) : parser_.feed(in_);
        if (state == HttpParseState::Error) {
            error_ = describeFailure(parser_, in_);
            return State::Error;
        }
        if (state != HttpParseState::Complete) return State::NeedMore;
        const HttpMessageHead &head = parser_.head();
        keepAlive_ = head.version != "HTTP/1.0";
        for (const auto &[name, value] : head.headers) {
            if (!equalsIgnoreCase(name, "Connection")) continue;
            if (equalsIgnoreCase(value, "close")) keepAlive_ = false;
            else if (equalsIgnoreCase(value, "keep-alive")) keepAlive_ = true;
        }
        if (head.status < 200) {  // 100 Continue and friends: the real answer follows
            if (++interim_ > kMaxInterim) {
                error_ = "more than " + std::to_string(kMaxInterim) + " interim (1xx) responses";
                return State::Error;
            }
            in_.erase(0, parser_.consumed());
            parser_.reset();
            continue;
        }
        if (parser_.framing() == HttpBodyFraming::UntilClose) keepAlive_ = false;
        reply_.status = head.status;
        reply_.body = std::move(parser_.body());
        used_ = parser_.consumed();
        return State::Complete;
    }
}

bool parseHttpResponse(std::string_view bytes, bool closed, HttpReply &out, size_t &consumed, bool &keepAlive, std::string &error) {
    HttpResponseReader reader;
    switch (reader.append(bytes, closed)) {
    case HttpResponseReader::State::Complete:
        out = std::move(reader.reply());
        consumed = bytes.size() - reader.leftover();
        keepAlive = reader.keepAlive();
        return true;
    case HttpResponseReader::State::Error: error = reader.error(); return false;
    case HttpResponseReader::State::NeedMore: return false;
    }
    return false;
}

HttpIntegration::~HttpIntegration() {
    for (int fd : idle_) ::close(fd);
}

int HttpIntegration::connectTo(std::chrono::steady_clock::time_point deadline, std::string &error) const {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *res = nullptr;
    std::string port = std::to_string(url_.port);
    int rc = getaddrinfo(url_.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
        error = "cannot resolve " + url_.host + ": " + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    error = "cannot connect to " + url_.host + ":" + port;
    for (addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (s < 0) continue;
        int r = ::connect(s, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            if (!waitFor(s, POLLOUT, deadline)) {
                error += ": timed out";
                ::close(s);
                continue;
            }
            int soerr = 0;
            socklen_t len = sizeof soerr;
            getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len);
            r = soerr ? -1 : 0;
            errno = soerr;
        }
        if (r != 0) {
            error = "cannot connect to " + url_.host + ":" + port + ": " + std::strerror(errno);
            ::close(s);
            continue;
        }
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd = s;
    }
    freeaddrinfo(res);
    return fd;
}

HttpReply HttpIntegration::exchange(int fd, const std::string &request, std::chrono::steady_clock::time_point deadline, bool &reusable) {
    HttpReply reply;
    reusable = false;
    size_t off = 0;
    while (off < request.size()) {
        ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (waitFor(fd, POLLOUT, deadline)) continue;
            reply.timedOut = true;
            reply.failure = "timed out sending to " + url_.text;
            return reply;
        }
        reply.failure = "the connection to " + url_.text + " failed while sending: " + std::strerror(errno);
        return reply;
    }
    HttpResponseReader reader;
    char buf[16384];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                reply.failure = "the connection to " + url_.text + " failed while reading: " + std::strerror(errno);
                return reply;
            }
            if (!waitFor(fd, POLLIN, deadline)) {
                reply.timedOut = true;
                reply.failure = "timed out waiting for " + url_.text;
                return reply;
            }
            continue;
        }
        bool closed = n == 0;
        switch (reader.append(std::string_view(buf, static_cast<size_t>(n)), closed)) {
        case HttpResponseReader::State::Complete:
            reusable = reader.keepAlive() && !closed && reader.leftover() == 0;
            return std::move(reader.reply());
        case HttpResponseReader::State::Error:
            reply.failure = url_.text + ": " + reader.error();
            return reply;
        case HttpResponseReader::State::NeedMore: break;
        }
        if (closed) {
            reply.failure = url_.text + ": the response was cut off";
            return reply;
        }
        // A backend that never stops sending (a trickle of 1xx, an endless body under the bound) is still
        // held to the route's deadline: the loop above waits only when nothing is there to read.
        if (msLeft(deadline) == 0) {
            reply.timedOut = true;
            reply.failure = "timed out reading the response of " + url_.text;
            return reply;
        }
    }
}

HttpReply HttpIntegration::post(std::string_view body, const std::vector<std::pair<std::string, std::string>> &headers,
                                std::chrono::steady_clock::time_point deadline) {
    std::string request;
    request.reserve(256 + body.size());
    request += "POST " + url_.path + " HTTP/1.1\r\nHost: " + url_.host;
    // Appended piece by piece: GCC 12 takes `"literal" + std::string&&` for an overlapping memcpy (-Wrestrict).
    if (url_.port != 80) {
        request += ':';
        request += std::to_string(url_.port);
    }
    request += "\r\nContent-Type: application/json\r\nContent-Length: ";
    request += std::to_string(body.size());
    request += "\r\n";
    for (const auto &[name, value] : headers) request += name + ": " + value + "\r\n";
    request += "\r\n";
    request.append(body);

    for (int attempt = 0;; ++attempt) {
        int fd = -1;
        bool pooled = false;
        {
            std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                fd = idle_.back();
                idle_.pop_back();
                pooled = true;
            }
        }
        if (fd < 0) {
            std::string error;
            fd = connectTo(deadline, error);
            if (fd < 0) {
                HttpReply r;
                r.failure = error;
                r.timedOut = msLeft(deadline) == 0;
                return r;
            }
        }
        bool reusable = false;
        HttpReply reply = exchange(fd, request, deadline, reusable);
        // A pooled connection the backend closed meanwhile fails before any answer: retry once on a new one.
        if (pooled && reply.status == 0 && !reply.timedOut && attempt == 0) {
            ::close(fd);
            continue;
        }
        if (reusable) {
            std::lock_guard lock(mutex_);
            if (idle_.size() < kMaxIdle) {
                idle_.push_back(fd);
                fd = -1;
            }
        }
        if (fd >= 0) ::close(fd);
        return reply;
    }
}

}  // namespace wsgw
