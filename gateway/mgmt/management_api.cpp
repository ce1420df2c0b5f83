// The management listener: its accept loop (paused by AcceptBackoff when descriptors run out), the keep-alive
// HTTP/1.1 connections (requests read by HttpRequestReader: Content-Length or chunked bodies, Expect:
// 100-continue), the routing of /@connections, /@groups, /@broadcast and the operations endpoints.
#include "management_api.h"
#include "config_file.h"

#include "tls_terminator.h"

#include "accept_backoff.h"
#include "connection_id.h"
#include "event.h"
#include "http_request.h"
#include "listen_socket.h"
#include "log.h"
#include "management_path.h"
#include "webpubsub_clients.h"

#include <ev.h>
#include <openssl/crypto.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace wsgw {

extern const char kConsoleHtml[];
extern const std::size_t kConsoleHtmlSize;

const std::string &consoleHtml() {
    static const std::string html(kConsoleHtml, kConsoleHtmlSize);
    return html;
}

namespace {

// Open management connections at most: each holds up to kMaxPendingOutput of answers plus a request, so
// this bounds the listener's memory whoever connects (backends keep a few kept-alive connections each).
constexpr size_t kMaxConnections = 1024;
constexpr double kIdleSeconds = 15.0;          // a connection with no complete request for this long is closed
constexpr std::chrono::seconds kTlsHandshakeTime{10};  // an https:// client's TLS handshake
constexpr double kLingerSeconds = 2.0;         // after the last answer, input is read and dropped this long at most
constexpr size_t kMaxLingerBytes = 1 << 20;    // ... and this much
// A client that does not read its answers is not read from either once this much of them waits: no more of
// its pipelined requests are answered until it reads. Checked before each request, not after a whole read:
// 16 KiB of pipelined "GET /console" is ~650 requests, and answering a read's worth first held 11 MB per
// connection.
constexpr size_t kMaxPendingOutput = 64 * 1024;
constexpr size_t kMaxBodyBytes = 131072;
constexpr size_t kDefaultPageSize = 100;
constexpr size_t kMaxPageSize = 1000;

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
    int status = 200;
    std::string body;
    std::string contentType = "application/json";
    Headers headers;
    bool deferred = false;  // answered later, from the cluster's executor (see defer())
};

std::string jsonMessage(std::string_view message) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("message");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

// AWS SDKs name the error from x-amzn-ErrorType, so every error carries one.
Response awsError(int status, const char *errorType, std::string_view message) {
    Response r;
    r.status = status;
    r.body = jsonMessage(message);
    r.headers.emplace_back("x-amzn-ErrorType", errorType);
    return r;
}

bool constantTimeEquals(const std::string &a, const std::string &b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Response noContent() {
    Response ok;
    ok.status = 204;
    ok.contentType.clear();
    return ok;
}

Response gone(const std::string &id) {
    return awsError(410, "GoneException", "the connection " + id + " is closed or never existed");
}

Response clusterError(const std::string &what) {
    return awsError(503, "ServiceUnavailableException",
                    what + ": the node that holds it did not answer, or Redis is unreachable; retry");
}

// POST/GET/DELETE /@connections/{id}. Thread-safe: runs on the network thread for a local connection and
// on the cluster's executor for one that may be on another node.
Response connectionRequest(HostContext &host, const std::string &method, const std::string &id, const std::string &body) {
    if (method == "POST") {
        int rc = postToConnection(host, id, body.data(), body.size(), false);
        if (rc == WSGW_OK) return Response{};
        if (rc == WSGW_TOO_LARGE) return awsError(413, "PayloadTooLargeException", "the data is over the message limit");
        if (rc == WSGW_GONE) return gone(id);
        return clusterError("the push to " + id + " was not delivered");
    }
    if (method == "GET") {
        Response ok;
        if (!describeConnection(host, id, ok.body)) return gone(id);
        return ok;
    }
    int rc = deleteConnection(host, id);
    if (rc == WSGW_OK) return noContent();
    if (rc == WSGW_GONE) return gone(id);
    return clusterError("the close of " + id + " was not done");
}

// The group endpoints (PUT/DELETE /@groups/{group}/connections/{id}, POST/GET /@groups/{group},
// POST /@broadcast); the path and ID are checked already. Thread-safe like connectionRequest.
Response groupRequest(HostContext &host, ManagementTarget target, const std::string &method, const std::string &group,
                      const std::string &id, const std::string &body) {
    if (target == ManagementTarget::GroupMember) {
        int rc = method == "PUT" ? addToGroup(host, group, id) : removeFromGroup(host, group, id);
        if (rc == WSGW_OK) return noContent();
        if (rc == WSGW_GONE) return gone(id);
        if (rc == WSGW_TOO_LARGE)
            return awsError(400, "BadRequestException",
                            "the connection " + id + " is in " + std::to_string(GroupRegistry::kMaxGroupsPerConnection) +
                                " groups already: remove it from one first");
        return clusterError("the membership of " + id + " in '" + group + "' was not changed");
    }
    if (method == "GET") {
        std::vector<std::string> members;
        if (host.cluster) {
            if (!host.cluster->groupMembers(group, members)) return clusterError("the members of '" + group + "' are unknown");
        } else {
            members = host.groups.members(group);
        }
        std::sort(members.begin(), members.end());
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        w.StartObject();
        w.Key("group");
        w.String(group);
        w.Key("connections");
        w.StartArray();
        for (const auto &m : members) w.String(m);
        w.EndArray();
        w.EndObject();
        Response ok;
        ok.body.assign(buf.GetString(), buf.GetSize());
        return ok;
    }
    // POST /@users/{user}: every connection of an Azure Web PubSub user (SPEC section 12); `group` holds the user.
    if (target == ManagementTarget::User) {
        if (sendToUser(host, group, body.data(), body.size(), false) != WSGW_OK)
            return awsError(413, "PayloadTooLargeException", "the data is over the message limit");
        return Response{};
    }
    if (sendToGroup(host, target == ManagementTarget::Broadcast ? std::string() : group, body.data(), body.size(), false) != WSGW_OK)
        return awsError(413, "PayloadTooLargeException", "the data is over the message limit");
    return Response{};
}

// Answers computed on the cluster's executor come back to the network thread through here.
struct DeferredAnswers {
    std::mutex mutex;
    bool alive = true;
    struct ev_loop *loop = nullptr;
    ev_async *wake = nullptr;
    std::vector<std::pair<uint64_t, Response>> done;
};

}  // namespace

bool isLoopbackHost(const std::string &host) {
    if (host == "localhost" || host == "::1") return true;
    in_addr a{};
    if (inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
    return false;
}

std::string loadManagementCredentials(const std::string &path, ManagementCredentials &out) {
    std::string error;
    std::optional<std::string> file = readConfigFile(path, "the management credentials", &error);
    if (!file) return path + ": " + error;
    std::string text = std::move(*file);
    rapidjson::Document doc;
    doc.Parse(text.c_str(), text.size());
    const std::string shape =
        " (expected {\"tokens\": [\"...\"], \"sigv4\": [{\"accessKeyId\": \"...\", \"secretAccessKey\": \"...\"}]})";
    if (doc.HasParseError() || !doc.IsObject()) return path + ": not a JSON object" + shape;
    for (auto &m : doc.GetObject()) {
        std::string key = m.name.GetString();
        if (key == "tokens") {
            if (!m.value.IsArray()) return path + ": /tokens: expected an array of strings" + shape;
            for (auto &t : m.value.GetArray()) {
                if (!t.IsString() || t.GetStringLength() < 16)
                    return path + ": /tokens: every token must be a string of at least 16 characters";
                out.tokens.emplace_back(t.GetString(), t.GetStringLength());
            }
        } else if (key == "sigv4") {
            if (!m.value.IsArray()) return path + ": /sigv4: expected an array" + shape;
            size_t i = 0;
            for (auto &c : m.value.GetArray()) {
                std::string where = path + ": /sigv4/" + std::to_string(i++);
                if (!c.IsObject() || !c.HasMember("accessKeyId") || !c.HasMember("secretAccessKey") ||
                    !c["accessKeyId"].IsString() || !c["secretAccessKey"].IsString() || c["accessKeyId"].GetStringLength() == 0 ||
                    c["secretAccessKey"].GetStringLength() == 0)
                    return where + ": needs non-empty string fields accessKeyId and secretAccessKey";
                out.sigv4.push_back({c["accessKeyId"].GetString(), c["secretAccessKey"].GetString()});
            }
        } else {
            return path + ": unknown property '" + key + "'" + shape;
        }
    }
    if (out.empty()) return path + ": no credentials in the file" + shape;
    return {};
}


namespace {

struct HttpConnection {
    ManagementApi::Impl *owner = nullptr;
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

}  // namespace

struct ManagementApi::Impl {
    HostPort listen;
    ManagementCredentials credentials;
    HostContext &host;
    struct ev_loop *loop = nullptr;
    int listenFd = -1;
    std::string boundAddress;
    ev_io acceptWatcher{};
    // Out of descriptors, accept() fails at once and the socket stays readable: pause instead of spinning.
    AcceptBackoff acceptBackoff{"management", host.metrics.acceptErrors};
    std::unordered_map<HttpConnection *, std::unique_ptr<HttpConnection>> connections;
    std::unordered_map<uint64_t, HttpConnection *> bySerial;
    uint64_t nextSerial = 1;
    HttpConnection *current = nullptr;  // the connection whose request is being answered
    std::shared_ptr<DeferredAnswers> deferred = std::make_shared<DeferredAnswers>();
    ev_async deferredWake{};

    int rate = 0;
    OperationsHooks ops;
    std::string tlsCert, tlsKey;
    std::unique_ptr<TlsTerminator> tls;
    double tokens = 0;
    ev_tstamp refilledAt = 0;
    ev_tstamp refusedLoggedAt = -1e9;  // the last "too many open" warning (one per 10 s)

    Impl(HostPort l, ManagementCredentials c, HostContext &h, int r)
        : listen(std::move(l)), credentials(std::move(c)), host(h), rate(r), tokens(r) {}

    // Single-threaded (network thread): a plain token bucket, refilled from the loop's clock.
    bool takeToken() {
        if (rate <= 0) return true;
        ev_tstamp now = ev_now(loop);
        if (refilledAt == 0) refilledAt = now;
        tokens = std::min<double>(rate, tokens + (now - refilledAt) * rate);
        refilledAt = now;
        if (tokens < 1) return false;
        tokens -= 1;
        return true;
    }

    static void onAccept(struct ev_loop *, ev_io *w, int) {
        auto *m = static_cast<Impl *>(w->data);
        for (int i = 0; i < 64; ++i) {
            std::string peer;
            int fd = acceptWithPeer(m->listenFd, &peer);
            if (fd < 0) {
                int err = errno;
                if (m->acceptBackoff.failed(err)) return;  // out of descriptors: paused, retried by a timer
                if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED)
                    log::warn("management accept failed", {log::Field("error", std::strerror(err))});
                return;
            }
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (m->tls) m->tls->adopt({fd, peer, false, std::chrono::steady_clock::now() + kTlsHandshakeTime});
            else m->serve(fd, peer);
        }
    }

    void serve(int fd, const std::string &peer) {
        Impl *m = this;
        if (connections.size() >= kMaxConnections) {
            static constexpr std::string_view kBusy =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nx-amzn-ErrorType: LimitExceededException\r\n"
                "Retry-After: 1\r\nContent-Length: 113\r\nConnection: close\r\n\r\n"
                "{\"message\":\"the management API has 1024 open connections, its most: reuse kept-alive connections or retry later\"}";
            static_assert(kBusy.size() - kBusy.find("\r\n\r\n") - 4 == 113, "Content-Length matches the body");
            if (!tls) (void)!::send(fd, kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);  // best effort
            ::close(fd);
            ev_tstamp now = ev_now(loop);
            if (now - refusedLoggedAt >= 10) {
                refusedLoggedAt = now;
                log::warn("management connection refused: too many open", {log::Field("limit", static_cast<int64_t>(kMaxConnections)),
                                                                           log::Field("sourceIp", peer)});
            }
            return;
        }
        {
            auto c = std::make_unique<HttpConnection>();
            c->owner = m;
            c->fd = fd;
            c->peer = peer;
            ev_io_init(&c->readWatcher, onReadable, fd, EV_READ);
            c->readWatcher.data = c.get();
            ev_io_init(&c->writeWatcher, onWritable, fd, EV_WRITE);
            c->writeWatcher.data = c.get();
            ev_timer_init(&c->idleTimer, onIdle, kIdleSeconds, kIdleSeconds);
            c->idleTimer.data = c.get();
            ev_io_start(m->loop, &c->readWatcher);
            ev_timer_start(m->loop, &c->idleTimer);
            HttpConnection *raw = c.get();
            raw->serial = m->nextSerial++;
            m->bySerial.emplace(raw->serial, raw);
            m->connections.emplace(raw, std::move(c));
        }
    }

    void closeConnection(HttpConnection *c) {
        ev_io_stop(loop, &c->readWatcher);
        ev_io_stop(loop, &c->writeWatcher);
        ev_timer_stop(loop, &c->idleTimer);
        ::close(c->fd);
        bySerial.erase(c->serial);
        connections.erase(c);
    }

    static void onIdle(struct ev_loop *, ev_timer *w, int) {
        auto *c = static_cast<HttpConnection *>(w->data);
        c->owner->timedOut(c);
    }

    // A request begun and not finished within kIdleSeconds (a head or a chunked body that never ends) is
    // told why before the connection goes, as nginx and AWS answer 408; an idle connection just closes.
    void timedOut(HttpConnection *c) {
        if (c->lingering || c->waiting || c->closeAfterWrite || c->in.empty() || !c->out.empty()) {
            closeConnection(c);
            return;
        }
        refuse(c, awsError(408, "RequestTimeoutException",
                           "Request timeout: the request was not complete within 15 s; send the whole head and body "
                           "without pausing, and end a chunked body with its zero-length chunk"),
               "request not complete within 15 s");
        flush(c);
    }

    static void onReadable(struct ev_loop *, ev_io *w, int) {
        auto *c = static_cast<HttpConnection *>(w->data);
        c->owner->readFrom(c);
    }

    static void onWritable(struct ev_loop *, ev_io *w, int) {
        auto *c = static_cast<HttpConnection *>(w->data);
        c->owner->flush(c);
    }

    void readFrom(HttpConnection *c) {
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
    void refuse(HttpConnection *c, const Response &r, const std::string &reason) {
        c->out += renderHttpResponse(r.status, r.contentType, r.body, r.headers, false);
        c->closeAfterWrite = true;
        log::info("management request refused",
                  {log::Field("status", r.status), log::Field("reason", reason), log::Field("sourceIp", c->peer)});
    }

    void processInput(HttpConnection *c) {
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
                    if (std::optional<Response> refusal = refusalBeforeBody(p.request)) {
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
            current = c;
            Response r = handle(request, c->peer);
            current = nullptr;
            if (r.deferred) {
                // Keep HTTP/1.1's order: nothing more is read or answered on this connection until it comes.
                c->waiting = true;
                c->waitingKeepAlive = request.keepAlive;
                ev_io_stop(loop, &c->readWatcher);
                break;
            }
            c->out += renderHttpResponse(r.status, r.contentType, r.body, r.headers, request.keepAlive, request.method == "HEAD");
            if (!request.keepAlive) c->closeAfterWrite = true;
            ev_timer_again(loop, &c->idleTimer);
        }
        c->in.erase(0, offset);
        flush(c);
    }

    // Sends what the kernel takes now; false when the connection failed (flush then closes it).
    bool sendSome(HttpConnection *c) {
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

    void flush(HttpConnection *c) {
        if (!sendSome(c)) {
            closeConnection(c);
            return;
        }
        if (c->out.empty()) {
            ev_io_stop(loop, &c->writeWatcher);
            if (c->closeAfterWrite) {
                lingerThenClose(c);
                return;
            }
            if (c->readPaused) {
                c->readPaused = false;
                if (!c->waiting) ev_io_start(loop, &c->readWatcher);
            }
            if (c->inputPending && !c->waiting) processInput(c);  // the requests left while it did not read
        } else {
            ev_io_start(loop, &c->writeWatcher);
            if (c->out.size() > kMaxPendingOutput && !c->readPaused) {
                c->readPaused = true;
                ev_io_stop(loop, &c->readWatcher);
            }
        }
    }

    // close() with unread input sends a RST, and a RST can destroy the answer before the client has read it
    // (a refused body is often still coming). So the write side is shut, and what the client still sends is
    // read and dropped until it closes, for kLingerSeconds or kMaxLingerBytes at most.
    void lingerThenClose(HttpConnection *c) {
        ::shutdown(c->fd, SHUT_WR);
        c->lingering = true;
        ev_io_start(loop, &c->readWatcher);
        ev_timer_stop(loop, &c->idleTimer);
        ev_timer_set(&c->idleTimer, kLingerSeconds, 0.);
        ev_timer_start(loop, &c->idleTimer);
    }

    // ---- answers that wait on the cluster ------------------------------------------------------------------

    // Runs `work` on the cluster's executor and answers the current request when it is done.
    Response defer(std::function<Response()> work) {
        uint64_t serial = current->serial;
        host.cluster->runBlocking([answers = deferred, serial, work = std::move(work)] {
            Response r = work();
            std::lock_guard lock(answers->mutex);
            if (!answers->alive) return;
            answers->done.emplace_back(serial, std::move(r));
            ev_async_send(answers->loop, answers->wake);
        });
        Response later;
        later.deferred = true;
        return later;
    }

    static void onDeferredAnswers(struct ev_loop *, ev_async *w, int) {
        auto *m = static_cast<Impl *>(w->data);
        std::vector<std::pair<uint64_t, Response>> done;
        {
            std::lock_guard lock(m->deferred->mutex);
            done.swap(m->deferred->done);
        }
        for (auto &[serial, r] : done) {
            auto it = m->bySerial.find(serial);
            if (it == m->bySerial.end()) continue;  // the client went away meanwhile
            HttpConnection *c = it->second;
            c->out += renderHttpResponse(r.status, r.contentType, r.body, r.headers, c->waitingKeepAlive);
            if (!c->waitingKeepAlive) c->closeAfterWrite = true;
            c->waiting = false;
            if (!c->readPaused && !c->closeAfterWrite) ev_io_start(m->loop, &c->readWatcher);
            m->processInput(c);
        }
    }

    // ---- requests ---------------------------------------------------------------------------------------

    // Before the body has come (bodyKnown false), a SigV4 signature, which covers the body, passes here
    // and is checked with the whole request.
    bool authorized(const HttpRequest &req, std::string &reason, bool bodyKnown = true) {
        if (credentials.empty()) return true;
        const std::string *auth = req.header("Authorization");
        if (!auth || auth->empty()) {
            reason = "Missing Authentication Token: send Authorization: Bearer <token> or sign the request with AWS SigV4";
            return false;
        }
        // "Bearer" alone (or with only blanks after it) is the right scheme without its token: say that,
        // not that the scheme is unsupported.
        if (auth->size() >= 6 && strncasecmp(auth->c_str(), "Bearer", 6) == 0 && auth->find_first_not_of(" \t", 6) == std::string::npos) {
            reason = "Authorization: Bearer has no token: send Authorization: Bearer <token>, with a token of the "
                     "--management-credentials file";
            return false;
        }
        static constexpr std::string_view kBearer = "Bearer ";
        if (auth->size() > kBearer.size() && strncasecmp(auth->c_str(), kBearer.data(), kBearer.size()) == 0) {
            std::string token = auth->substr(kBearer.size());
            for (const auto &t : credentials.tokens)
                if (constantTimeEquals(t, token)) return true;
            reason = "the bearer token is not valid";
            return false;
        }
        if (auth->rfind("AWS4-HMAC-SHA256", 0) == 0) {
            if (!bodyKnown) return true;
            SigV4Result r = verifySigV4(req.method, req.path, req.rawQuery, req.headers, req.body, credentials.sigv4,
                                        nowEpochMs() / 1000);
            if (r.ok) return true;
            reason = r.reason;
            return false;
        }
        reason = "unsupported Authorization scheme: use Bearer or AWS4-HMAC-SHA256";
        return false;
    }

    Response handle(const HttpRequest &req, const std::string &peer) {
        Response r = takeToken() ? route(req, peer)
                                 : awsError(429, "LimitExceededException",
                                            "Too Many Requests: over " + std::to_string(rate) + " management requests per second");
        log::debug("management request", {log::Field("method", req.method), log::Field("path", req.path),
                                          log::Field("status", r.status), log::Field("sourceIp", peer)});
        return r;
    }

    Response operations(const HttpRequest &req, bool &handled) {
        handled = true;
        const std::string &path = req.path;
        bool get = req.method == "GET";
        Response r;
        // The probes and the console need no credentials, so neither does being told their method.
        if (!get && (path == "/healthz" || path == "/readyz" || path == "/console" || path == "/console/")) {
            Response e = awsError(405, "MethodNotAllowedException", path + " answers GET only");
            e.headers.emplace_back("Allow", "GET");
            return e;
        }
        if (path == "/healthz" && get) {
            r.body = R"({"status":"alive"})";
            return r;
        }
        if (path == "/readyz" && get) {
            std::vector<std::string> problems = ops.readinessProblems ? ops.readinessProblems() : std::vector<std::string>{};
            rapidjson::StringBuffer buf;
            rapidjson::Writer<rapidjson::StringBuffer> w(buf);
            w.StartObject();
            w.Key("status");
            w.String(problems.empty() ? "ready" : "not ready");
            w.Key("problems");
            w.StartArray();
            for (const auto &p : problems) w.String(p);
            w.EndArray();
            w.EndObject();
            r.status = problems.empty() ? 200 : 503;
            r.body.assign(buf.GetString(), buf.GetSize());
            return r;
        }
        if ((path == "/console" || path == "/console/") && get) {
            r.contentType = "text/html; charset=utf-8";
            r.body = consoleHtml();
            r.headers.emplace_back("Cache-Control", "no-store");
            return r;
        }
        bool protectedPath = path == "/metrics" || path == "/@routes" || path == "/@info";
        if (!protectedPath) {
            handled = false;
            return r;
        }
        std::string reason;
        if (!authorized(req, reason)) return awsError(403, "ForbiddenException", reason);
        if (!get) {
            Response e = awsError(405, "MethodNotAllowedException", path + " answers GET only");
            e.headers.emplace_back("Allow", "GET");
            return e;
        }
        if (path == "/metrics") {
            r.contentType = "text/plain; version=0.0.4; charset=utf-8";
            r.body = ops.metrics ? ops.metrics() : std::string();
        } else if (path == "/@routes") {
            r.body = ops.routesJson ? ops.routesJson() : "{}";
        } else {
            r.body = ops.infoJson ? ops.infoJson() : "{}";
        }
        return r;
    }

    static bool isOperationsPath(const std::string &path) {
        return path == "/healthz" || path == "/readyz" || path == "/console" || path == "/console/" || path == "/metrics" ||
               path == "/@routes" || path == "/@info";
    }

    // For Expect: 100-continue: the answer a request gets from its head alone, or nothing when its body is
    // wanted. The operations endpoints take no body that matters, so they always get 100.
    std::optional<Response> refusalBeforeBody(const HttpRequest &req) {
        if (isOperationsPath(req.path)) return std::nullopt;
        return refusalOfHead(req, parseManagementPath(req.path), false);
    }

    // Everything about a /@connections, /@groups or /@broadcast request that its head decides: the path,
    // credentials, the method, the ID and group name, and the size (the body's, or before it has come the
    // declared Content-Length). Nothing when the request is to be carried out.
    std::optional<Response> refusalOfHead(const HttpRequest &req, const ManagementPath &mp, bool bodyKnown) {
        if (mp.target == ManagementTarget::Unknown) {
            if (mp.badEncoding) return awsError(400, "BadRequestException", mp.error);
            std::string why = mp.error.empty() ? "no such resource" : mp.error;
            return awsError(404, "NotFoundException",
                            why + ": the management API serves /@connections/{connectionId}, /@connections, "
                                  "/@groups/{group}, /@groups/{group}/connections/{connectionId}, /@broadcast, /@users/{userId}, /@routes, "
                                  "/@info, /metrics, /healthz, /readyz and /console");
        }
        std::string reason;
        if (!authorized(req, reason, bodyKnown)) return awsError(403, "ForbiddenException", reason);
        auto methodNotAllowed = [](const std::string &message, const char *allow) {
            Response e = awsError(405, "MethodNotAllowedException", message);
            e.headers.emplace_back("Allow", allow);
            return e;
        };
        auto badId = [&mp] {
            return awsError(400, "BadRequestException",
                            "Invalid connectionId: '" + mp.connectionId.substr(0, 64) +
                                "' is not a connection ID this gateway could have issued (22 URL-safe base64 characters)");
        };
        switch (mp.target) {
        case ManagementTarget::ConnectionList:
            if (req.method != "GET") return methodNotAllowed("only GET lists connections", "GET");
            return std::nullopt;
        case ManagementTarget::Connection:
            if (!isWellFormedConnectionId(mp.connectionId)) return badId();
            if (req.method != "POST" && req.method != "GET" && req.method != "DELETE")
                return methodNotAllowed("use POST, GET or DELETE on /@connections/{connectionId}", "POST, GET, DELETE");
            break;
        case ManagementTarget::Group:
        case ManagementTarget::GroupMember:
        case ManagementTarget::Broadcast: {
            const char *allowed = mp.target == ManagementTarget::GroupMember ? "PUT, DELETE"
                                  : mp.target == ManagementTarget::Group     ? "POST, GET"
                                                                             : "POST";
            bool methodOk = mp.target == ManagementTarget::GroupMember ? (req.method == "PUT" || req.method == "DELETE")
                            : mp.target == ManagementTarget::Group     ? (req.method == "POST" || req.method == "GET")
                                                                       : req.method == "POST";
            if (!methodOk) return methodNotAllowed("use " + std::string(allowed) + " on " + req.path, allowed);
            if (mp.target != ManagementTarget::Broadcast && !isValidGroupName(mp.group))
                return awsError(400, "BadRequestException", "Invalid group '" + mp.group.substr(0, 64) + "': " + groupNameRule());
            if (mp.target == ManagementTarget::GroupMember && !isWellFormedConnectionId(mp.connectionId)) return badId();
            break;
        }
        case ManagementTarget::User:
            if (req.method != "POST") return methodNotAllowed("use POST on /@users/{userId} to send to the user's connections", "POST");
            break;
        case ManagementTarget::Unknown:
            break;
        }
        size_t size = bodyKnown ? req.body.size() : req.contentLength;
        if (req.method == "POST" && size > host.maxMessageBytes.load())
            return awsError(413, "PayloadTooLargeException",
                            "the data is " + std::to_string(size) + " bytes; the message limit is " +
                                std::to_string(host.maxMessageBytes.load()));
        return std::nullopt;
    }

    Response route(const HttpRequest &req, const std::string &) {
        bool handled = false;
        Response op = operations(req, handled);
        if (handled) return op;
        ManagementPath mp = parseManagementPath(req.path);
        if (std::optional<Response> refusal = refusalOfHead(req, mp, true)) return std::move(*refusal);
        if (mp.target == ManagementTarget::ConnectionList) return list(req);
        if (mp.target != ManagementTarget::Connection) return groups(req, mp);
        // A connection of this node is answered at once; any other may be on another node of the cluster.
        if (!host.cluster || isLocal(host, mp.connectionId)) return connectionRequest(host, req.method, mp.connectionId, req.body);
        return defer([&h = host, method = req.method, id = mp.connectionId, body = req.body] {
            return connectionRequest(h, method, id, body);
        });
    }

    // The group endpoints, once refusalOfHead has passed the request.
    Response groups(const HttpRequest &req, const ManagementPath &mp) {
        // On one node everything here is local and quick; in a cluster each may wait on Redis.
        const std::string &group = mp.target == ManagementTarget::User ? mp.user : mp.group;
        if (!host.cluster) return groupRequest(host, mp.target, req.method, group, mp.connectionId, req.body);
        return defer([&h = host, target = mp.target, method = req.method, group, id = mp.connectionId, body = req.body] {
            return groupRequest(h, target, method, group, id, body);
        });
    }

    // Beyond AWS: a page of live connections ordered by ID; `cursor` is the last ID of the previous page.
    Response list(const HttpRequest &req) {
        size_t limit = kDefaultPageSize;
        std::string cursor;
        for (const auto &[k, v] : parseQueryString(req.rawQuery)) {
            if (k == "limit") {
                char *end = nullptr;
                long n = std::strtol(v.c_str(), &end, 10);
                if (v.empty() || *end || n < 1 || n > static_cast<long>(kMaxPageSize))
                    return awsError(400, "BadRequestException", "limit must be a number from 1 to " + std::to_string(kMaxPageSize));
                limit = static_cast<size_t>(n);
            } else if (k == "cursor") {
                cursor = v;
            } else {
                return awsError(400, "BadRequestException", "unknown query parameter '" + k + "': use limit and cursor");
            }
        }
        std::vector<std::shared_ptr<LiveConnection>> page;
        host.registry->forEach([&](const std::shared_ptr<LiveConnection> &c) {
            if (c->upgraded.load() && c->info.connectionId > cursor) page.push_back(c);
        });
        bool more = page.size() > limit;
        auto byId = [](const auto &a, const auto &b) { return a->info.connectionId < b->info.connectionId; };
        if (more) {
            std::partial_sort(page.begin(), page.begin() + static_cast<long>(limit), page.end(), byId);
            page.resize(limit);
        } else {
            std::sort(page.begin(), page.end(), byId);
        }
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        w.StartObject();
        w.Key("items");
        w.StartArray();
        for (const auto &c : page) {
            w.StartObject();
            w.Key("connectionId");
            w.String(c->info.connectionId);
            w.Key("connectedAt");
            w.String(formatIso8601Millis(c->info.connectedAtMs));
            w.Key("identity");
            w.StartObject();
            w.Key("sourceIp");
            w.String(c->info.sourceIp);
            w.Key("userAgent");
            w.String(c->info.userAgent);
            w.EndObject();
            w.Key("lastActiveAt");
            w.String(formatIso8601Millis(c->lastActiveAtMs.load()));
            w.EndObject();
        }
        w.EndArray();
        if (more) {
            w.Key("nextCursor");
            w.String(page.back()->info.connectionId);
        }
        w.EndObject();
        Response ok;
        ok.body.assign(buf.GetString(), buf.GetSize());
        return ok;
    }
};

ManagementApi::ManagementApi(HostPort listen, ManagementCredentials credentials, HostContext &host, int ratePerSecond)
    : impl_(std::make_unique<Impl>(std::move(listen), std::move(credentials), host, ratePerSecond)) {}

ManagementApi::~ManagementApi() {
    stop();
}

std::string ManagementApi::start(struct ev_loop *loop) {
    Impl &m = *impl_;
    if (!isLoopbackHost(m.listen.host) && m.credentials.empty()) {
        return "--management-listen " + m.listen.host + ":" + std::to_string(m.listen.port) +
               " is not a loopback address, so the management API needs credentials: give "
               "--management-credentials FILE (bearer tokens or SigV4 keys) or listen on 127.0.0.1";
    }
    m.loop = loop;
    std::string error;
    m.listenFd = openListeningSocket(m.listen, "--management-listen", &m.boundAddress, &error);
    if (m.listenFd < 0) return error;
    if (!m.tlsCert.empty()) {
        auto made = TlsTerminator::create(loop, m.tlsCert, m.tlsKey, [&m](AcceptedSocket &&s) { m.serve(s.fd, s.peer); });
        if (auto *err = std::get_if<std::string>(&made)) return "--management-tls-cert/--management-tls-key: " + *err;
        m.tls = std::move(std::get<std::unique_ptr<TlsTerminator>>(made));
    }
    ev_io_init(&m.acceptWatcher, Impl::onAccept, m.listenFd, EV_READ);
    m.acceptWatcher.data = &m;
    ev_io_start(loop, &m.acceptWatcher);
    m.acceptBackoff.attach(loop, &m.acceptWatcher);
    ev_async_init(&m.deferredWake, Impl::onDeferredAnswers);
    m.deferredWake.data = &m;
    ev_async_start(loop, &m.deferredWake);
    {
        std::lock_guard lock(m.deferred->mutex);
        m.deferred->loop = loop;
        m.deferred->wake = &m.deferredWake;
    }
    return {};
}

std::string ManagementApi::boundAddress() const { return impl_->boundAddress; }

void ManagementApi::setOperationsHooks(OperationsHooks hooks) { impl_->ops = std::move(hooks); }

void ManagementApi::setTls(std::string certFile, std::string keyFile) {
    impl_->tlsCert = std::move(certFile);
    impl_->tlsKey = std::move(keyFile);
}

void ManagementApi::stop() {
    Impl &m = *impl_;
    if (!m.loop) return;
    {
        std::lock_guard lock(m.deferred->mutex);  // answers still being computed are dropped
        m.deferred->alive = false;
    }
    ev_async_stop(m.loop, &m.deferredWake);
    ev_io_stop(m.loop, &m.acceptWatcher);
    m.acceptBackoff.stop();
    if (m.listenFd >= 0) {
        ::close(m.listenFd);
        m.listenFd = -1;
    }
    std::vector<HttpConnection *> all;
    for (auto &[p, c] : m.connections) all.push_back(p);
    for (auto *c : all) m.closeConnection(c);
    m.tls.reset();
    m.loop = nullptr;
}

}  // namespace wsgw
