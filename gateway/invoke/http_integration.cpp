#include "http_integration.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 16u << 20;
constexpr size_t kMaxIdle = 64;

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

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::variant<HttpUrl, std::string> HttpUrl::parse(const std::string &url) {
    HttpUrl u;
    u.text = url;
    if (url.rfind("https://", 0) == 0) return "'" + url + "': https:// backends are not spoken yet: use http:// (on a trusted network)";
    if (url.rfind("http://", 0) != 0) return "'" + url + "' is not an http:// URL";
    std::string rest = url.substr(7);
    size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    u.path = slash == std::string::npos ? "/" : rest.substr(slash);
    if (authority.empty()) return "'" + url + "' has no host";
    std::string portText;
    if (authority[0] == '[') {
        size_t close = authority.find(']');
        if (close == std::string::npos) return "'" + url + "': unterminated [IPv6] host";
        u.host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return "'" + url + "': expected ':port' after the IPv6 host";
            portText = authority.substr(close + 2);
        }
    } else {
        size_t colon = authority.rfind(':');
        u.host = authority.substr(0, colon);
        if (colon != std::string::npos) portText = authority.substr(colon + 1);
    }
    if (u.host.empty()) return "'" + url + "' has no host";
    if (!portText.empty()) {
        char *end = nullptr;
        long p = std::strtol(portText.c_str(), &end, 10);
        if (*end || p < 1 || p > 65535) return "'" + url + "': the port must be 1 to 65535";
        u.port = static_cast<int>(p);
    }
    for (char c : u.path)
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return "'" + url + "': the path has a space or control character";
    return u;
}

bool parseHttpResponse(std::string_view bytes, bool closed, HttpReply &out, size_t &consumed, bool &keepAlive, std::string &error) {
    size_t headEnd = bytes.find("\r\n\r\n");
    if (headEnd == std::string_view::npos) {
        if (bytes.size() > kMaxHead) error = "the response head is over 64 KiB";
        else if (closed) error = bytes.empty() ? "the backend closed the connection without answering" : "the response was cut off";
        return false;
    }
    std::string_view head = bytes.substr(0, headEnd);
    size_t eol = head.find("\r\n");
    std::string_view statusLine = head.substr(0, eol);
    if (statusLine.size() < 12 || statusLine.substr(0, 7) != "HTTP/1." || statusLine[8] != ' ') {
        error = "not an HTTP/1.x response";
        return false;
    }
    bool http10 = statusLine[7] == '0';
    int status = 0;
    for (size_t i = 9; i < 12; ++i) {
        if (statusLine[i] < '0' || statusLine[i] > '9') {
            error = "a malformed status code";
            return false;
        }
        status = status * 10 + (statusLine[i] - '0');
    }
    if (status < 100) {
        error = "a malformed status code";
        return false;
    }
    bool chunked = false, haveLength = false;
    size_t length = 0;
    keepAlive = !http10;
    std::string_view headers = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    while (!headers.empty()) {
        size_t e = headers.find("\r\n");
        std::string_view line = headers.substr(0, e);
        headers = e == std::string_view::npos ? std::string_view() : headers.substr(e + 2);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = trimmed(line.substr(0, colon)), value = trimmed(line.substr(colon + 1));
        if (iequals(name, "Content-Length")) {
            size_t n = 0;
            if (value.empty()) {
                error = "an empty Content-Length";
                return false;
            }
            for (char c : value) {
                if (c < '0' || c > '9' || n > kMaxBody) {
                    error = "a malformed or oversized Content-Length";
                    return false;
                }
                n = n * 10 + static_cast<size_t>(c - '0');
            }
            if (haveLength && n != length) {
                error = "conflicting Content-Length headers";
                return false;
            }
            haveLength = true;
            length = n;
        } else if (iequals(name, "Transfer-Encoding")) {
            chunked = value.size() >= 7 && iequals(value.substr(value.size() - 7), "chunked");
        } else if (iequals(name, "Connection")) {
            if (iequals(value, "close")) keepAlive = false;
            else if (iequals(value, "keep-alive")) keepAlive = true;
        }
    }
    size_t bodyStart = headEnd + 4;
    if (status < 200) {  // 100 Continue and friends: the real answer follows
        std::string_view next = bytes.substr(bodyStart);
        size_t more = 0;
        if (!parseHttpResponse(next, closed, out, more, keepAlive, error)) return false;
        consumed = bodyStart + more;
        return true;
    }
    out.status = status;
    if (status == 204 || status == 304) {
        out.body.clear();
        consumed = bodyStart;
        return true;
    }
    if (chunked) {
        std::string body;
        size_t pos = bodyStart;
        for (;;) {
            size_t lineEnd = bytes.find("\r\n", pos);
            if (lineEnd == std::string_view::npos) {
                if (closed) error = "the chunked body was cut off";
                return false;
            }
            size_t size = 0;
            size_t i = pos;
            for (; i < lineEnd && std::isxdigit(static_cast<unsigned char>(bytes[i])); ++i) {
                size = size * 16 + static_cast<size_t>(std::isdigit(static_cast<unsigned char>(bytes[i])) ? bytes[i] - '0'
                                                                                                          : (bytes[i] | 0x20) - 'a' + 10);
                if (size > kMaxBody) {
                    error = "the response body is over 16 MiB";
                    return false;
                }
            }
            if (i == pos) {
                error = "a malformed chunk size";
                return false;
            }
            pos = lineEnd + 2;
            if (size == 0) {  // trailers, then the empty line
                for (;;) {
                    size_t t = bytes.find("\r\n", pos);
                    if (t == std::string_view::npos) {
                        if (closed) error = "the chunked body was cut off";
                        return false;
                    }
                    bool last = t == pos;
                    pos = t + 2;
                    if (last) break;
                }
                out.body = std::move(body);
                consumed = pos;
                return true;
            }
            if (bytes.size() < pos + size + 2) {
                if (closed) error = "the chunked body was cut off";
                return false;
            }
            if (body.size() + size > kMaxBody) {
                error = "the response body is over 16 MiB";
                return false;
            }
            body.append(bytes.substr(pos, size));
            pos += size + 2;
        }
    }
    if (haveLength) {
        if (bytes.size() < bodyStart + length) {
            if (closed) error = "the response body was cut off";
            return false;
        }
        out.body.assign(bytes.substr(bodyStart, length));
        consumed = bodyStart + length;
        return true;
    }
    // No length: the body runs to the end of the connection.
    keepAlive = false;
    if (bytes.size() - bodyStart > kMaxBody) {
        error = "the response body is over 16 MiB";
        return false;
    }
    if (!closed) return false;
    out.body.assign(bytes.substr(bodyStart));
    consumed = bytes.size();
    return true;
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
    std::string in;
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
        in.append(buf, static_cast<size_t>(n));
        size_t consumed = 0;
        bool keepAlive = false;
        std::string error;
        if (parseHttpResponse(in, closed, reply, consumed, keepAlive, error)) {
            reusable = keepAlive && !closed && consumed == in.size();
            return reply;
        }
        if (!error.empty()) {
            reply.status = 0;
            reply.failure = url_.text + ": " + error;
            return reply;
        }
        if (closed) {
            reply.failure = url_.text + ": the response was cut off";
            return reply;
        }
    }
}

HttpReply HttpIntegration::post(std::string_view body, const std::vector<std::pair<std::string, std::string>> &headers,
                                std::chrono::steady_clock::time_point deadline) {
    std::string request;
    request.reserve(256 + body.size());
    request += "POST " + url_.path + " HTTP/1.1\r\nHost: " + url_.host;
    if (url_.port != 80) request += ":" + std::to_string(url_.port);
    request += "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
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
