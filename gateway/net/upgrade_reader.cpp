// Owns: accepting, reading the upgrade request and admission (upgrade_reader.h).
#include "upgrade_reader.h"

#include "connect_flow.h"
#include "connection_id.h"
#include "listen_socket.h"
#include "log.h"
#include "network_thread_state.h"
#include "proxy_relay.h"
#include "upgrade_head_io.h"
#include "upgrade_admission.h"
#include "webpubsub_endpoint.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr int kAcceptsPerWakeup = 64;

}  // namespace

UpgradeReader::UpgradeReader(NetworkThreadState &thread) : t_(thread), acceptBackoff_("public", thread.host.metrics.acceptErrors) {}

std::string UpgradeReader::open() {
    // The listening socket is ours (not lws's) so that we read the upgrade head before lws sees it.
    std::string error;
    listenFd_ = openListeningSocket(t_.settings.listen, "--listen", &t_.boundAddress, &error, t_.settings.reusePortSockets);
    if (listenFd_ < 0) return error;
    if (!t_.settings.tlsCert.empty()) {
        auto made = TlsTerminator::create(
            t_.loop, t_.settings.tlsCert, t_.settings.tlsKey,
            [this](AcceptedSocket &&socket) { beginHandshake(std::move(socket)); },
            [counts = t_.settings.pendingIpCounts](const AcceptedSocket &socket) {
                if (socket.countedForPeer) counts->release(socket.peer);
            });
        if (auto *err = std::get_if<std::string>(&made)) return "--tls-cert/--tls-key: " + *err;
        tls_ = std::move(std::get<std::unique_ptr<TlsTerminator>>(made));
    }
    return {};
}

void UpgradeReader::startAccepting() {
    ev_io_init(&acceptWatcher_, onAccept, listenFd_, EV_READ);
    acceptWatcher_.data = this;
    ev_io_start(t_.loop, &acceptWatcher_);
    acceptBackoff_.attach(t_.loop, &acceptWatcher_);
}

void UpgradeReader::stopAccepting() {
    ev_io_stop(t_.loop, &acceptWatcher_);
    acceptBackoff_.stop();
    closeListeningSocket();
}

void UpgradeReader::closeListeningSocket() {
    if (listenFd_ >= 0) {
        ::close(listenFd_);
        listenFd_ = -1;
    }
}

void UpgradeReader::onAccept(struct ev_loop *, ev_io *w, int) {
    auto *reader = static_cast<UpgradeReader *>(w->data);
    for (int i = 0; i < kAcceptsPerWakeup; ++i) {
        std::string peer;
        int fd = acceptWithPeer(reader->listenFd_, &peer);
        if (fd < 0) {
            int err = errno;
            if (reader->acceptBackoff_.failed(err)) return;  // out of descriptors: paused, retried by a timer
            if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED)
                log::warn("accept failed", {log::Field("error", std::strerror(err))});
            return;
        }
        bool counted = false;
        if (!reader->pendingAdmitted(peer, &counted)) {
            ::close(fd);  // no request was read yet: there is nothing an answer could go to
            continue;
        }
        int timeoutSeconds = reader->t_.table ? reader->t_.table->config.limits.handshakeTimeoutSeconds : 10;
        AcceptedSocket socket{fd, std::move(peer), counted, std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds)};
        if (reader->tls_) reader->tls_->adopt(std::move(socket));
        else reader->beginHandshake(std::move(socket));
    }
}

bool UpgradeReader::pendingAdmitted(const std::string &peer, bool *counted) {
    size_t max = t_.table ? t_.table->config.limits.maxConnectionsPerIp : 0;
    if (!max) return true;
    if (!t_.settings.pendingIpCounts->tryAdd(peer, max)) {
        RouteMetrics::add(t_.connectMetrics->clientErrors);
        t_.host.metrics.pendingPerIpRefusals.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    *counted = true;
    return true;
}

void UpgradeReader::beginHandshake(AcceptedSocket &&socket) {
    int fd = socket.fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Bounds what the kernel holds for a client that stops reading (it autotunes up to 4 MiB otherwise).
    if (size_t sndbuf = t_.table ? t_.table->config.limits.socketSendBufferBytes : 0) {
        int bytes = static_cast<int>(std::min<size_t>(sndbuf, INT_MAX / 2));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }
    auto s = std::make_unique<Session>();
    s->thread = &t_;
    s->fd = fd;
    s->peer = std::move(socket.peer);
    s->pendingIpCounted = socket.countedForPeer;
    s->id = newConnectionId();
    Session *raw = s.get();
    PendingUpgrade &up = *raw->upgrade;
    ev_io_init(&up.io, onHeadReadable, fd, EV_READ);
    up.io.data = raw;
    ev_io_start(t_.loop, &up.io);
    // What is left of the deadline set at accept (a wss:// client has spent part of it on its TLS handshake).
    double left = std::chrono::duration<double>(socket.handshakeDeadline - std::chrono::steady_clock::now()).count();
    ev_timer_init(&up.handshakeTimer, onHandshakeTimeout, std::max(left, 0.001), 0.);
    up.handshakeTimer.data = raw;
    ev_timer_start(t_.loop, &up.handshakeTimer);
    t_.sessions.emplace(raw->id, std::move(s));
    // The request has usually arrived with the connection. Reading it now, before the loop registers
    // the socket with epoll, spares that registration (the watcher is stopped again before it happens)
    // and a loop iteration; if it has not arrived, the watcher waits for it.
    readHead(raw);
}

void UpgradeReader::refuseUpgrade(Session *s, int status, const std::string &reason) {
    std::string response = renderHttpRefusal(status, reason);
    const std::string &sourceIp = s->peer;
    if (uint64_t notLogged = 0; t_.refusalLog.admit(t_.loopSeconds(), notLogged))
        log::info("upgrade refused", {log::Field("status", status), log::Field("reason", reason), log::Field("sourceIp", sourceIp),
                                      log::Field("notLogged", notLogged)});
    RouteMetrics::add(t_.connectMetrics->clientErrors);
    t_.logGatewayAnswer("CONNECT", s->id, "$connect", status, sourceIp, {}, reason);
    dropUnaccepted(s, &response);
}

void UpgradeReader::stopHandshakeWatchers(Session *s) {
    if (!s->upgrade) return;
    ev_io_stop(t_.loop, &s->upgrade->io);
    ev_timer_stop(t_.loop, &s->upgrade->handshakeTimer);
}

void UpgradeReader::closeAfterUpgrade(Session *s, const UpgradeRequest &request, const std::string &subprotocol,
                                      int code, const std::string &reason) {
    const std::string *key = request.header("Sec-WebSocket-Key");
    std::string response = renderUpgradeThenClose(key ? std::string_view(*key) : std::string_view(), subprotocol, code, reason);
    if (uint64_t notLogged = 0; t_.refusalLog.admit(t_.loopSeconds(), notLogged))
        log::info("upgrade closed at once", {log::Field("code", code), log::Field("reason", reason), log::Field("sourceIp", s->peer),
                                             log::Field("notLogged", notLogged)});
    t_.logGatewayAnswer("CONNECT", s->id, "$connect", 101, s->peer, {}, reason);
    dropUnaccepted(s, &response);
}

void UpgradeReader::dropUnaccepted(Session *s, const std::string *response) {
    std::string unanswered;
    if (!response && !(unanswered = wpsRestUnansweredResponse(t_, s)).empty()) response = &unanswered;
    stopHandshakeWatchers(s);
    if (s->backendConnect) ev_timer_stop(t_.loop, &s->backendConnect->timer);
    if (s->backend) t_.proxyRelay->closeBackend(s, 1001, "Going away");
    if (s->fd >= 0) {
        answerAndClose(s->fd, response);
        s->fd = -1;
    }
    if (s->live) {
        t_.registry.remove(s->id);
        // A $connect handler may have put it in groups before the refusal; the store forgets those too,
        // and the row written before $connect ran. No $disconnect is owed for it: journalled (one small
        // write() into the page cache) so that a kill -9 before the removal commits does not make the next
        // start run one.
        bool inGroups = !t_.host.groups.groupsOf(s->id).empty();
        if (inGroups) forgetConnectionGroups(t_.host, s->id);
        if (inGroups || s->rowStored) t_.store.removeClosed(s->id);
    }
    t_.releaseIp(s);
    t_.eraseSession(s);
}

void UpgradeReader::onHandshakeTimeout(struct ev_loop *, ev_timer *w, int) {
    auto *s = static_cast<Session *>(w->data);
    log::info("handshake timeout", {log::Field("connectionId", s->id)});
    s->thread->upgradeReader->dropUnaccepted(s, nullptr);
}

void UpgradeReader::onHeadReadable(struct ev_loop *, ev_io *w, int) {
    auto *s = static_cast<Session *>(w->data);
    s->thread->upgradeReader->readHead(s);
}

void UpgradeReader::readHead(Session *s) {
    PendingUpgrade &up = *s->upgrade;
    switch (receiveHeadBytes(s->fd, up.head)) {
    case HeadRead::Closed: dropUnaccepted(s, nullptr); return;
    case HeadRead::Wait: return;
    case HeadRead::Received: break;
    }
    if (wpsRestRequestHandled(t_, s)) return;  // Azure Web PubSub's REST API (docs/webpubsub.md)
    HeadParse parsed = parseUpgradeHead(up.head, kMaxHeadBytes);
    if (parsed.result == HeadResult::NeedMore) return;
    if (parsed.result == HeadResult::Refuse) {
        std::string response = renderHttpRefusal(parsed.refusal.status, parsed.refusal.reason, parsed.refusal.extraHeaders);
        const std::string &sourceIp = s->peer;
        if (uint64_t notLogged = 0; t_.refusalLog.admit(t_.loopSeconds(), notLogged))
            log::info("upgrade refused", {log::Field("status", parsed.refusal.status), log::Field("reason", parsed.refusal.reason),
                                          log::Field("sourceIp", sourceIp), log::Field("notLogged", notLogged)});
        RouteMetrics::add(t_.connectMetrics->clientErrors);
        t_.logGatewayAnswer("CONNECT", s->id, "$connect", parsed.refusal.status, sourceIp, {}, parsed.refusal.reason);
        dropUnaccepted(s, &response);
        return;
    }
    if (t_.draining) {
        std::string response = renderHttpRefusal(503, "the gateway is shutting down: reconnect shortly");
        dropUnaccepted(s, &response);
        return;
    }
    if (!admitted(s, parsed.request)) return;
    if (extensionOffersRefusedByLibwebsockets(parsed.request, t_.table && t_.table->config.compression && !t_.table->proxy, up.head)) {
        // Declined, not refused (upgrade_admission.h): libwebsockets would close the socket after $connect.
        size_t before = up.head.size();
        up.head = withoutHeader(up.head, parsed.request.headLength, "Sec-WebSocket-Extensions");
        parsed.request.headLength -= before - up.head.size();
        log::debug("upgrade: extension offers declined (libwebsockets cannot read them)", {log::Field("connectionId", s->id)});
    }
    up.path = parsed.request.path;
    if (isWpsClientPath(up.path) && !t_.table->proxy) {
        if (!wpsClientAdmitted(t_, s, parsed)) return;  // its token, hub and subprotocol (docs/webpubsub.md)
    } else if (!subprotocolChosen(s, parsed)) {
        return;
    }
    stopHandshakeWatchers(s);
    t_.releasePendingIp(s);  // its request is read: from here maxConnectionsPerIp counts it as a connection
    t_.connectFlow->startConnect(s, std::move(parsed.request));
}

bool UpgradeReader::admitted(Session *s, const UpgradeRequest &request) {
    if (!t_.table) return true;
    const Limits &limits = t_.table->config.limits;
    if (auto refusal = checkOrigin(request, limits)) {
        refuseUpgrade(s, refusal->status, refusal->reason);
        return false;
    }
    if (limits.maxConnectionsPerIp) {
        // A Web PubSub client coming back for a connection that waits for it, from the address that connection
        // counts for: it takes that connection's place (a client at its address's limit could never resume).
        // If the resume is then refused (a wrong token), the place stays with this socket until it closes.
        if (std::string id = wpsResumeId(request); !id.empty()) {
            std::shared_ptr<LiveConnection> waiting = t_.host.webPubSub.detachedConnection(id);
            if (waiting && waiting->info.sourceIp == s->peer && waiting->detachedHoldsIpCount.exchange(false)) {
                s->ipCounted = true;
                return true;
            }
        }
        if (!t_.settings.ipCounts->tryAdd(s->peer, limits.maxConnectionsPerIp)) {
            UpgradeRefusal refusal = perAddressRefusal(s->peer, limits.maxConnectionsPerIp);
            refuseUpgrade(s, refusal.status, refusal.reason);
            return false;
        }
        s->ipCounted = true;
    }
    return true;
}

bool UpgradeReader::subprotocolChosen(Session *s, HeadParse &parsed) {
    static const std::vector<std::string> kNone;
    const std::shared_ptr<const RouteTable> &table = t_.table;
    SubprotocolDecision sub = decideSubprotocol(parsed.request, table ? table->config.subprotocols : kNone, table && table->proxy);
    if (sub.refusal) {
        std::string response = renderHttpRefusal(sub.refusal->status, sub.refusal->reason);
        RouteMetrics::add(t_.connectMetrics->clientErrors);
        dropUnaccepted(s, &response);
        return false;
    }
    PendingUpgrade &up = *s->upgrade;
    up.subprotocol = std::move(sub.chosen);  // LWS_CALLBACK_ADD_HEADERS puts it back into the 101
    up.offers = std::move(sub.offersForBackend);
    if (sub.stripOffers) up.head = withoutHeader(up.head, parsed.request.headLength, "Sec-WebSocket-Protocol");
    return true;
}

}  // namespace wsgw
