// Owns: the management listener and its keep-alive HTTP/1.1 connections (see management_server.h).
#include "management_server.h"

#include "tls_terminator.h"

#include "http_request.h"
#include "listen_socket.h"
#include "log.h"
#include "monotonic_clock.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace wsgw {

namespace {

// Open management connections at most: each holds up to kMaxPendingOutput of answers plus a request, so
// this bounds the listener's memory whoever connects (backends keep a few kept-alive connections each).
constexpr size_t kMaxConnections = 1024;
constexpr std::chrono::seconds kTlsHandshakeTime{10};  // an https:// client's TLS handshake
constexpr double kLingerSeconds = 2.0;         // after the last answer, input is read and dropped this long at most
constexpr size_t kMaxLingerBytes = 1 << 20;    // ... and this much
// A client that does not read its answers is not read from either once this much of them waits: no more of
// its pipelined requests are answered until it reads. Checked before each request, not after a whole read:
// 16 KiB of pipelined "GET /console" is ~650 requests, and answering a read's worth first held 11 MB per
// connection.
constexpr size_t kMaxPendingOutput = 64 * 1024;
constexpr size_t kMaxBodyBytes = 131072;

}  // namespace

// Answers computed on the cluster's executor come back to the network thread through here.
struct DeferredManagementAnswers {
    std::mutex mutex;
    bool alive = true;
    struct ev_loop *loop = nullptr;
    ev_async *wake = nullptr;
    std::vector<std::pair<uint64_t, ManagementResponse>> done;
};

struct ManagementConnection {
    ManagementServer *owner = nullptr;
    uint64_t serial = 0;
    bool waiting = false;           // a deferred answer is due; later pipelined requests wait for it
    bool waitingKeepAlive = false;  // the waiting request's keep-alive
    int fd = -1;
    std::string peer;
    ev_io readWatcher{}, writeWatcher{};
    ev_timer idleTimer{};
    std::string in, out;
    HttpRequestReader reader{16384, kMaxBodyBytes};  // the request at the front of `in`, read so far
    bool continueAnswered = false;                   // its Expect: 100-continue was answered (100 or a refusal)
    bool closeAfterWrite = false;
    bool lingering = false;  // the last answer is sent (write side shut): input is dropped until the client closes
    size_t lingerBytes = 0;
    bool readPaused = false;
    bool inputPending = false;  // whole requests left unanswered in `in` while the answers before them wait
};

ManagementServer::ManagementServer(HostContext &host, ManagementRoutes &routes)
    : host_(host),
      routes_(routes),
      acceptBackoff_("management", host.metrics.acceptErrors),
      deferred_(std::make_shared<DeferredManagementAnswers>()) {}

ManagementServer::~ManagementServer() = default;

void ManagementServer::setTls(std::string certFile, std::string keyFile) {
    tlsCert_ = std::move(certFile);
    tlsKey_ = std::move(keyFile);
}

std::string ManagementServer::start(struct ev_loop *loop, const HostPort &listen) {
    loop_ = loop;
    std::string error;
    listenFd_ = openListeningSocket(listen, "--management-listen", &boundAddress_, &error);
    if (listenFd_ < 0) return error;
    if (!tlsCert_.empty()) {
        auto made = TlsTerminator::create(loop, tlsCert_, tlsKey_, [this](AcceptedSocket &&s) { serve(s.fd, s.peer); });
        if (auto *err = std::get_if<std::string>(&made)) return "--management-tls-cert/--management-tls-key: " + *err;
        tls_ = std::move(std::get<std::unique_ptr<TlsTerminator>>(made));
    }
    ev_io_init(&acceptWatcher_, onAccept, listenFd_, EV_READ);
    acceptWatcher_.data = this;
    ev_io_start(loop, &acceptWatcher_);
    acceptBackoff_.attach(loop, &acceptWatcher_);
    ev_async_init(&deferredWake_, onDeferredAnswers);
    deferredWake_.data = this;
    ev_async_start(loop, &deferredWake_);
    {
        std::lock_guard lock(deferred_->mutex);
        deferred_->loop = loop;
        deferred_->wake = &deferredWake_;
    }
    return {};
}

void ManagementServer::stop() {
    if (!loop_) return;
    {
        std::lock_guard lock(deferred_->mutex);  // answers still being computed are dropped
        deferred_->alive = false;
    }
    ev_async_stop(loop_, &deferredWake_);
    ev_io_stop(loop_, &acceptWatcher_);
    acceptBackoff_.stop();
    if (listenFd_ >= 0) {
        ::close(listenFd_);
        listenFd_ = -1;
    }
    std::vector<ManagementConnection *> all;
    for (auto &[p, c] : connections_) all.push_back(p);
    for (auto *c : all) closeConnection(c);
    tls_.reset();
    loop_ = nullptr;
}

void ManagementServer::onAccept(struct ev_loop *, ev_io *w, int) {
    auto *m = static_cast<ManagementServer *>(w->data);
    for (int i = 0; i < 64; ++i) {
        std::string peer;
        int fd = acceptWithPeer(m->listenFd_, &peer);
        if (fd < 0) {
            int err = errno;
            if (m->acceptBackoff_.failed(err)) return;  // out of descriptors: paused, retried by a timer
            if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED)
                log::warn("management accept failed", {log::Field("error", std::strerror(err))});
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (m->tls_) m->tls_->adopt({fd, peer, false, std::chrono::steady_clock::now() + kTlsHandshakeTime});
        else m->serve(fd, peer);
    }
}

void ManagementServer::serve(int fd, const std::string &peer) {
    if (connections_.size() >= kMaxConnections && !closeLongestIdle()) {
        static constexpr std::string_view kBusy =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nx-amzn-ErrorType: LimitExceededException\r\n"
            "Retry-After: 1\r\nContent-Length: 113\r\nConnection: close\r\n\r\n"
            "{\"message\":\"the management API has 1024 open connections, its most: reuse kept-alive connections or retry later\"}";
        static_assert(kBusy.size() - kBusy.find("\r\n\r\n") - 4 == 113, "Content-Length matches the body");
        if (!tls_) (void)!::send(fd, kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);  // best effort
        ::close(fd);
        double now = monotonicSeconds();
        if (now - refusedLoggedAt_ >= 10) {
            refusedLoggedAt_ = now;
            log::warn("management connection refused: too many open", {log::Field("limit", static_cast<int64_t>(kMaxConnections)),
                                                                       log::Field("sourceIp", peer)});
        }
        return;
    }
    {
        auto c = std::make_unique<ManagementConnection>();
        c->owner = this;
        c->fd = fd;
        c->peer = peer;
        ev_io_init(&c->readWatcher, onReadable, fd, EV_READ);
        c->readWatcher.data = c.get();
        ev_io_init(&c->writeWatcher, onWritable, fd, EV_WRITE);
        c->writeWatcher.data = c.get();
        ev_timer_init(&c->idleTimer, onIdle, requestTimeoutSeconds_, requestTimeoutSeconds_);
        c->idleTimer.data = c.get();
        ev_io_start(loop_, &c->readWatcher);
        ev_timer_start(loop_, &c->idleTimer);
        ManagementConnection *raw = c.get();
        raw->serial = nextSerial_++;
        bySerial_.emplace(raw->serial, raw);
        connections_.emplace(raw, std::move(c));
    }
}

// At the most open connections, a new one takes the place of the connection that has been idle the longest
// (kept alive after its last answer, or never sent a byte): otherwise sockets that send nothing, or a client
// that leaks kept-alive connections, held every place, and /healthz and the backends' pushes got 503 until
// they idled out (15 s), again and again. A connection with a request under way keeps its place: if every
// one has, the new one gets 503.
bool ManagementServer::closeLongestIdle() {
    ManagementConnection *idlest = nullptr;
    ev_tstamp leastLeft = 0;
    for (auto &[p, c] : connections_) {
        if (p == current_ || c->waiting || c->lingering || c->closeAfterWrite || c->inputPending || !c->in.empty() || !c->out.empty())
            continue;
        ev_tstamp left = ev_timer_remaining(loop_, &c->idleTimer);  // the idle timer restarts at each answer
        if (!idlest || left < leastLeft) {
            idlest = p;
            leastLeft = left;
        }
    }
    if (!idlest) return false;
    closeConnection(idlest);
    ++evictedSinceLogged_;
    double now = monotonicSeconds();
    if (now - evictedLoggedAt_ >= 10) {
        evictedLoggedAt_ = now;
        log::warn("management connections at their most: the longest idle ones were closed to admit new ones",
                  {log::Field("limit", static_cast<int64_t>(kMaxConnections)), log::Field("closed", evictedSinceLogged_)});
        evictedSinceLogged_ = 0;
    }
    return true;
}

void ManagementServer::closeConnection(ManagementConnection *c) {
    ev_io_stop(loop_, &c->readWatcher);
    ev_io_stop(loop_, &c->writeWatcher);
    ev_timer_stop(loop_, &c->idleTimer);
    ::close(c->fd);
    bySerial_.erase(c->serial);
    connections_.erase(c);
}

void ManagementServer::onIdle(struct ev_loop *, ev_timer *w, int) {
    auto *c = static_cast<ManagementConnection *>(w->data);
    c->owner->timedOut(c);
}

// A request begun and not finished within requestTimeoutSeconds_ (a head or a chunked body that never ends) is
// told why before the connection goes, as nginx and AWS answer 408; an idle connection just closes.
void ManagementServer::timedOut(ManagementConnection *c) {
    if (c->lingering || c->waiting || c->closeAfterWrite || c->in.empty() || !c->out.empty()) {
        closeConnection(c);
        return;
    }
    const std::string within = "not complete within " + std::to_string(requestTimeoutSeconds_) + " s";
    refuse(c, awsError(408, "RequestTimeoutException",
                       "Request timeout: the request was " + within + "; send the whole head and body "
                       "without pausing, and end a chunked body with its zero-length chunk"),
           "request " + within);
    flush(c);
}

void ManagementServer::onReadable(struct ev_loop *, ev_io *w, int) {
    auto *c = static_cast<ManagementConnection *>(w->data);
    c->owner->readFrom(c);
}

void ManagementServer::onWritable(struct ev_loop *, ev_io *w, int) {
    auto *c = static_cast<ManagementConnection *>(w->data);
    c->owner->flush(c);
}

void ManagementServer::readFrom(ManagementConnection *c) {
    char buf[16384];
    if (c->lingering) {
        ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) c->lingerBytes += static_cast<size_t>(n);
        if (n == 0 || c->lingerBytes > kMaxLingerBytes || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            closeConnection(c);
        return;
    }
    ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        closeConnection(c);
        return;
    }
    if (n < 0) return;
    if (c->closeAfterWrite) return;  // refused: what follows is not read as requests, nor kept
    c->in.append(buf, static_cast<size_t>(n));
    processInput(c);
}

// The final answer to a request that cannot be read on (a parse error, or a refusal before its body):
// the connection closes after it, since what follows on the wire cannot be told apart from a request.
void ManagementServer::refuse(ManagementConnection *c, const ManagementResponse &r, const std::string &reason) {
    c->out += renderHttpResponse(r.status, r.contentType, r.body, r.headers, false);
    c->closeAfterWrite = true;
    if (uint64_t notLogged = 0; refusalLog_.admit(monotonicSeconds(), notLogged))
        log::info("management request refused", {log::Field("status", r.status), log::Field("reason", reason),
                                                  log::Field("sourceIp", c->peer), log::Field("notLogged", notLogged)});
}

void ManagementServer::processInput(ManagementConnection *c) {
    size_t offset = 0;
    c->inputPending = false;
    while (!c->closeAfterWrite && !c->waiting && offset < c->in.size()) {
        if (c->out.size() > kMaxPendingOutput && (!sendSome(c) || c->out.size() > kMaxPendingOutput)) {
            c->inputPending = true;  // answered when the client has read (flush), not before
            break;
        }
        HttpParse &p = c->reader.parse(std::string_view(c->in).substr(offset));
        if (p.state == HttpParseState::NeedMore) {
            // Expect: 100-continue: the client waits for our word before it sends the body. A request its
            // head already condemns gets its final answer instead (RFC 9110 section 10.1.1).
            if (p.headComplete && p.request.expectContinue && !c->continueAnswered) {
                c->continueAnswered = true;
                if (std::optional<ManagementResponse> refusal = routes_.refusalBeforeBody(p.request)) {
                    refuse(c, *refusal, "refused before the body (Expect: 100-continue)");
                    offset = c->in.size();
                } else {
                    c->out += "HTTP/1.1 100 Continue\r\n\r\n";
                }
            }
            break;
        }
        if (p.state == HttpParseState::Error) {
            const char *type = p.error.status == 413 ? "PayloadTooLargeException" : "BadRequestException";
            refuse(c, awsError(p.error.status, type, p.error.reason), p.error.reason);
            offset = c->in.size();
            break;
        }
        offset += p.consumed;
        HttpRequest request = std::move(p.request);
        c->reader.reset();
        c->continueAnswered = false;
        current_ = c;
        ManagementResponse r = routes_.handle(request, c->peer, monotonicSeconds());
        current_ = nullptr;
        if (r.deferred) {
            // Keep HTTP/1.1's order: nothing more is read or answered on this connection until it comes.
            c->waiting = true;
            c->waitingKeepAlive = request.keepAlive;
            ev_io_stop(loop_, &c->readWatcher);
            break;
        }
        c->out += renderHttpResponse(r.status, r.contentType, r.body, r.headers, request.keepAlive, request.method == "HEAD");
        if (!request.keepAlive) c->closeAfterWrite = true;
        ev_timer_again(loop_, &c->idleTimer);
    }
    c->in.erase(0, offset);
    flush(c);
}

// Sends what the kernel takes now; false when the connection failed (flush then closes it).
bool ManagementServer::sendSome(ManagementConnection *c) {
    while (!c->out.empty()) {
        ssize_t n = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            c->out.erase(0, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}

void ManagementServer::flush(ManagementConnection *c) {
    if (!sendSome(c)) {
        closeConnection(c);
        return;
    }
    if (c->out.empty()) {
        ev_io_stop(loop_, &c->writeWatcher);
        if (c->closeAfterWrite) {
            lingerThenClose(c);
            return;
        }
        if (c->readPaused) {
            c->readPaused = false;
            if (!c->waiting) ev_io_start(loop_, &c->readWatcher);
        }
        if (c->inputPending && !c->waiting) processInput(c);  // the requests left while it did not read
    } else {
        ev_io_start(loop_, &c->writeWatcher);
        if (c->out.size() > kMaxPendingOutput && !c->readPaused) {
            c->readPaused = true;
            ev_io_stop(loop_, &c->readWatcher);
        }
    }
}

// close() with unread input sends a RST, and a RST can destroy the answer before the client has read it
// (a refused body is often still coming). So the write side is shut, and what the client still sends is
// read and dropped until it closes, for kLingerSeconds or kMaxLingerBytes at most.
void ManagementServer::lingerThenClose(ManagementConnection *c) {
    ::shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    ev_io_start(loop_, &c->readWatcher);
    ev_timer_stop(loop_, &c->idleTimer);
    ev_timer_set(&c->idleTimer, kLingerSeconds, 0.);
    ev_timer_start(loop_, &c->idleTimer);
}

// ---- answers that wait on the cluster ------------------------------------------------------------------

// Runs `work` on the cluster's executor and answers the current request when it is done.
ManagementResponse ManagementServer::defer(std::function<ManagementResponse()> work) {
    uint64_t serial = current_->serial;
    host_.cluster->runBlocking([answers = deferred_, serial, work = std::move(work)] {
        ManagementResponse r = work();
        std::lock_guard lock(answers->mutex);
        if (!answers->alive) return;
        answers->done.emplace_back(serial, std::move(r));
        ev_async_send(answers->loop, answers->wake);
    });
    ManagementResponse later;
    later.deferred = true;
    return later;
}

void ManagementServer::onDeferredAnswers(struct ev_loop *, ev_async *w, int) {
    auto *m = static_cast<ManagementServer *>(w->data);
    std::vector<std::pair<uint64_t, ManagementResponse>> done;
    {
        std::lock_guard lock(m->deferred_->mutex);
        done.swap(m->deferred_->done);
    }
    for (auto &[serial, r] : done) {
        auto it = m->bySerial_.find(serial);
        if (it == m->bySerial_.end()) continue;  // the client went away meanwhile
        ManagementConnection *c = it->second;
        c->out += renderHttpResponse(r.status, r.contentType, r.body, r.headers, c->waitingKeepAlive);
        if (!c->waitingKeepAlive) c->closeAfterWrite = true;
        c->waiting = false;
        if (!c->readPaused && !c->closeAfterWrite) ev_io_start(m->loop_, &c->readWatcher);
        m->processInput(c);
    }
}

}  // namespace wsgw
