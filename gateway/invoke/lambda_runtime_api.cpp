#include "lambda_runtime_api.h"

#include "connection_id.h"
#include "text.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr std::string_view kPrefix = "/2018-06-01/runtime/";

const char *reasonPhrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    default: return "Error";
    }
}

}  // namespace

RuntimeApiRequest classifyRuntimeRequest(const HttpMessageHead &head, std::string body) {
    RuntimeApiRequest r;
    std::string_view target = head.target;
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    if (target.substr(0, kPrefix.size()) != kPrefix) {
        r.kind = RuntimeApiRequest::Kind::NotFound;
        r.problem = "not a Lambda Runtime API path (they start with /2018-06-01/runtime/)";
        return r;
    }
    std::string_view rest = target.substr(kPrefix.size());
    auto wantMethod = [&](const char *method, RuntimeApiRequest::Kind kind) {
        r.kind = head.method == method ? kind : RuntimeApiRequest::Kind::MethodNotAllowed;
        if (r.kind == RuntimeApiRequest::Kind::MethodNotAllowed) r.problem = std::string(rest) + " takes " + method;
    };
    if (rest == "invocation/next") {
        wantMethod("GET", RuntimeApiRequest::Kind::Next);
        return r;
    }
    if (rest == "init/error") {
        wantMethod("POST", RuntimeApiRequest::Kind::InitError);
        r.body = std::move(body);
        if (const std::string *t = head.header("Lambda-Runtime-Function-Error-Type")) r.errorTypeHeader = *t;
        return r;
    }
    constexpr std::string_view kInvocation = "invocation/";
    if (rest.substr(0, kInvocation.size()) == kInvocation) {
        std::string_view tail = rest.substr(kInvocation.size());
        auto slash = tail.find('/');
        if (slash != std::string_view::npos && slash > 0) {
            std::string_view id = tail.substr(0, slash), what = tail.substr(slash + 1);
            if (what == "response" || what == "error") {
                wantMethod("POST", what == "response" ? RuntimeApiRequest::Kind::Response : RuntimeApiRequest::Kind::Error);
                r.requestId = std::string(id);
                r.body = std::move(body);
                if (const std::string *t = head.header("Lambda-Runtime-Function-Error-Type")) r.errorTypeHeader = *t;
                return r;
            }
        }
    }
    r.kind = RuntimeApiRequest::Kind::NotFound;
    r.problem = "unknown Runtime API path " + std::string(target);
    return r;
}

std::string runtimeApiResponse(int status, std::string_view body, const std::vector<std::pair<std::string, std::string>> &headers,
                               std::string_view contentType) {
    std::string out;
    out.reserve(160 + body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += reasonPhrase(status);
    out += "\r\nContent-Type: ";
    out += contentType;
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
    for (const auto &[name, value] : headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    out += "\r\n";
    out += body;
    return out;
}

std::string nextInvocationResponse(const NextInvocation &inv) {
    return runtimeApiResponse(200, inv.eventJson,
                              {{"Lambda-Runtime-Aws-Request-Id", inv.requestId},
                               {"Lambda-Runtime-Deadline-Ms", std::to_string(inv.deadlineEpochMs)},
                               {"Lambda-Runtime-Invoked-Function-Arn", inv.functionArn},
                               {"Lambda-Runtime-Trace-Id", inv.traceId}});
}

std::string newLambdaTraceId() {
    unsigned char root[12], parent[8];
    fillRandom(root, sizeof root);
    fillRandom(parent, sizeof parent);
    char time[16];
    std::snprintf(time, sizeof time, "%08lx", static_cast<unsigned long>(std::time(nullptr)) & 0xffffffffUL);
    std::string_view rootBytes(reinterpret_cast<const char *>(root), sizeof root);
    std::string_view parentBytes(reinterpret_cast<const char *>(parent), sizeof parent);
    return "Root=1-" + std::string(time) + "-" + toHex(rootBytes) + ";Parent=" + toHex(parentBytes) + ";Sampled=0";
}

int openRuntimeApiListener(int *port, std::string *error) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
        *error = std::string("cannot listen on 127.0.0.1 for the Lambda Runtime API: ") + std::strerror(errno);
        close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

namespace {
HttpParserOptions runtimeParserOptions() {
    HttpParserOptions o;
    o.kind = HttpMessageKind::Request;
    o.maxBodyBytes = RuntimeApiConnection::kMaxBodyBytes;
    o.maxChunkedWireBytes = RuntimeApiConnection::kMaxBodyBytes * 2;
    return o;
}
}  // namespace

RuntimeApiConnection::RuntimeApiConnection(int fd) : fd_(fd), parser_(runtimeParserOptions()) {
    // Every answer is written whole, in one send. Without this, Nagle held an answer back while the one
    // before it was unacknowledged: a client that pipelines its response and its next `next` (ours does)
    // got the 202, sent nothing more, and its delayed ACK held the following event back ~40 ms.
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RuntimeApiConnection::~RuntimeApiConnection() {
    if (fd_ >= 0) close(fd_);
}

bool RuntimeApiConnection::readRequests(std::vector<RuntimeApiRequest> &out) {
    char chunk[65536];
    bool open = true;
    // No more than one request's worth before parsing: an endless body is refused by the parser at its
    // limit, not read into memory for as long as the client sends.
    while (buffer_.size() - parsed_ <= kMaxBufferedBytes) {
        ssize_t n = recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            buffer_.append(chunk, static_cast<size_t>(n));
            if (static_cast<size_t>(n) < sizeof chunk) break;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        open = false;  // closed by the peer, or reset
        break;
    }
    // The complete requests in the buffer, in order (a client may pipeline), at most kMaxRequestsPerRead: a
    // client that pipelines thousands gets them answered a batch per round, between the supervisor's other
    // work. Parsed from an offset, and the buffer compacted only once most of it is parsed: erasing each
    // request from the front was a copy of the whole buffer per request (quadratic in a 12 MB pipeline).
    moreParsed_ = false;
    for (size_t taken = 0; parsed_ < buffer_.size(); ++taken) {
        if (taken == kMaxRequestsPerRead) {
            moreParsed_ = true;
            break;
        }
        HttpParseState state = parser_.feed(std::string_view(buffer_).substr(parsed_));
        if (state == HttpParseState::NeedMore) break;
        if (state == HttpParseState::Error) {
            RuntimeApiRequest bad;
            bad.kind = RuntimeApiRequest::Kind::Malformed;
            bad.status = parser_.error().status;
            bad.problem = parser_.error().reason;
            out.push_back(std::move(bad));
            return false;
        }
        size_t used = parser_.consumed();
        out.push_back(classifyRuntimeRequest(parser_.head(), std::move(parser_.body())));
        parsed_ += used;
        parser_.reset();
    }
    if (parsed_ == buffer_.size() || parsed_ > buffer_.size() / 2) {
        buffer_.erase(0, parsed_);
        parsed_ = 0;
    }
    return open;
}

bool RuntimeApiConnection::send(std::string_view bytes) {
    if (broken_) return false;
    size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd_, POLLOUT, 0};
            if (poll(&p, 1, 5000) > 0) continue;
        }
        broken_ = true;
        return false;
    }
    return true;
}

}  // namespace wsgw
