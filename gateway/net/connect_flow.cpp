// Owns: $connect, the row's durability and adoption by libwebsockets (connect_flow.h).
#include "connect_flow.h"

#include "command_queue.h"
#include "connection_id.h"
#include "log.h"
#include "network_thread_state.h"
#include "proxy_relay.h"
#include "session_closer.h"
#include "session_timers.h"
#include "upgrade_reader.h"
#include "webpubsub_endpoint.h"

namespace wsgw {

namespace {

// A refusal whose body the $connect handler chose (AWS passes the integration's body through).
std::string renderRawResponse(int status, std::string_view body) {
    std::string s = "HTTP/1.1 " + std::to_string(status) + " " + httpReasonPhrase(status) + "\r\n";
    s += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    s += body;
    return s;
}

}  // namespace

Invocation lifecycleInvocation(const std::shared_ptr<const RouteTable> &table, wsgw_event_type type,
                               std::shared_ptr<LiveConnection> connection, int64_t requestTimeMs) {
    Invocation inv;
    inv.table = table;
    inv.route = type == WSGW_CONNECT ? table->connect : table->disconnect;
    inv.connection = std::move(connection);
    inv.type = type;
    inv.requestId = newRequestId();
    inv.requestTimeMs = requestTimeMs;
    return inv;
}

void ConnectFlow::fillInfo(Session *s, UpgradeRequest &&req) {
    auto live = std::make_shared<LiveConnection>();
    ConnectionInfo &info = live->info;
    info.connectionId = s->id;
    info.connectedAtMs = nowEpochMs();
    s->openedAt = t_.loopSeconds();
    s->openedAtEpochMs = info.connectedAtMs;
    info.sourceIp = s->peer;
    if (const std::string *ua = req.header("User-Agent")) info.userAgent = *ua;
    if (const std::string *h = req.header("Host")) {
        // The domain name AWS reports has no port.
        size_t colon = h->rfind(':');
        bool bracketed = !h->empty() && h->front() == '[';
        info.domainName = (colon == std::string::npos || (bracketed && h->back() == ']')) ? *h : h->substr(0, colon);
    }
    info.headers = std::move(req.headers);
    info.rawQuery = std::move(req.rawQuery);
    wpsFillConnectionInfo(s, info);  // an Azure Web PubSub client: its token's user, roles and groups
    live->lastActiveAtMs.store(info.connectedAtMs);
    s->attach(std::move(live));
}

void ConnectFlow::startConnect(Session *s, UpgradeRequest &&req) {
    if (wpsResumeConnect(t_, s)) return;  // a reliable Web PubSub client resumes its connection: no $connect
    fillInfo(s, std::move(req));
    const std::shared_ptr<LiveConnection> &live = s->live;
    const ConnectionInfo &info = live->info;
    s->state = Session::State::Connecting;
    live->networkThread = t_.settings.threadIndex;
    t_.registry.add(live);  // from here a push (even from inside $connect) is accepted and queued
    RouteMetrics::add(t_.connectMetrics->connects);
    const std::shared_ptr<const RouteTable> &table = t_.table;
    if (!table || !table->connect) {
        t_.logGatewayAnswer("CONNECT", s->id, "$connect", 200, info.sourceIp, info.userAgent, {});
        admit(s);
        return;
    }
    Invocation inv = lifecycleInvocation(table, WSGW_CONNECT, live, info.connectedAtMs);
    if (!table->disconnect) {  // no $disconnect to owe: nothing to make durable first
        t_.invoker().submit(t_.laneOf(s), std::move(inv), false);
        return;
    }
    // Every $connect that runs is followed by a $disconnect, even across kill -9: the row is committed
    // first (group commit with the connections arriving meanwhile), so that start-up recovery finds it.
    // The store's thread submits $connect itself once the row is committed: no trip back through this
    // thread. A row it could not commit comes back as RowNotDurable, and the upgrade is refused.
    if (t_.store.writesFailing()) {
        // The store is retrying a failed commit (a full disk, a lock another process holds): this row would
        // only wait in memory, headers and all, until the deadline below refused the upgrade anyway (62,000
        // upgrades in 30 s held 800 MB). Refused at once instead; $connect has not run.
        t_.upgradeReader->refuseUpgrade(s, 503, "the connection table cannot be written: try again shortly");
        return;
    }
    s->rowStored = true;
    s->awaitingRow = true;
    s->rowClaim = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<CommandSink> sink = t_.commands->sink();
    t_.store.insertDurable(rowOf(s), [sink, id = s->id, lane = t_.laneOf(s), invoker = &t_.invoker(), claim = s->rowClaim,
                                      inv = std::move(inv)](bool committed) mutable {
        if (claim->exchange(true)) return;  // the row's deadline refused the upgrade first: no $connect
        auto target = sink.lock();
        if (!target) return;
        if (committed && target->alive()) invoker->submit(lane, std::move(inv), true);
        else target->post(Command{Command::Kind::RowNotDurable, InlineId(id), {}, false, 0});
    });
    // The store retries a failed commit until it succeeds (a full disk, a lock another process holds), which
    // can be never: the client waits handshakeTimeoutSeconds at most, then gets 503. Without this deadline
    // every upgrade held its socket and session until the disk had room again.
    int deadlineSeconds = t_.table ? t_.table->config.limits.handshakeTimeoutSeconds : 10;
    ev_timer &timer = s->upgrade->handshakeTimer;  // stopped before $connect began; reused for the row
    ev_timer_init(&timer, onRowDeadline, deadlineSeconds, 0.);
    timer.data = s;
    ev_timer_start(t_.loop, &timer);
}

void ConnectFlow::onRowDeadline(struct ev_loop *, ev_timer *w, int) {
    auto *s = static_cast<Session *>(w->data);
    NetworkThreadState &t = *s->thread;
    if (s->state != Session::State::Connecting || !s->awaitingRow) return;
    if (s->rowClaim->exchange(true)) return;  // committed just now: $connect is on its way, with its own timeout
    s->awaitingRow = false;  // refuseUpgrade logs it; the store logs why its writes fail (once per 10 s)
    t.upgradeReader->refuseUpgrade(s, 503, "the connection table cannot be written: try again shortly");
}

void ConnectFlow::stopRowDeadline(Session *s) {
    if (s->upgrade) ev_timer_stop(t_.loop, &s->upgrade->handshakeTimer);
}

void ConnectFlow::rowNotDurable(std::string_view id) {
    Session *s = t_.find(id);
    if (!s || s->state != Session::State::Connecting || !s->awaitingRow) return;
    s->awaitingRow = false;
    stopRowDeadline(s);
    t_.upgradeReader->refuseUpgrade(s, 503, "the connection table cannot be written: try again shortly");
}

void ConnectFlow::decideConnect(std::string_view id, int status, std::string &body) {
    Session *s = t_.find(id);
    if (!s || s->state != Session::State::Connecting) return;
    s->awaitingRow = false;
    stopRowDeadline(s);  // the session may leave now (adoption can fail): no timer may outlive it
    if (status == 0) {
        admit(s);
        return;
    }
    std::string response = body.empty() ? renderHttpRefusal(status, status == 502 ? "Internal server error"
                                                                     : status == 504 ? "Endpoint request timed out"
                                                                                     : httpReasonPhrase(status))
                                        : renderRawResponse(status, body);
    if (uint64_t notLogged = 0; t_.refusalLog.admit(t_.loopSeconds(), notLogged))
        log::info("connect refused", {log::Field("connectionId", id), log::Field("status", status), log::Field("notLogged", notLogged)});
    t_.upgradeReader->dropUnaccepted(s, &response);
}

void ConnectFlow::admit(Session *s) {
    if (s->live->hasChosenBackend()) t_.proxyRelay->startChosenBackend(s);
    else if (t_.table && t_.table->proxy) t_.proxyRelay->startBackend(s);
    else adopt(s);
}

void ConnectFlow::adopt(Session *s) {
    s->state = Session::State::Adopting;
    int fd = s->fd;
    s->fd = -1;  // lws owns the socket from here, even when adoption fails
    const std::string id = s->id;
    // From here libwebsockets reads only frames: those that came with the request (after its head, in the
    // buffer handed over) are screened now, the rest as it recv()s them (client_frame_guard.h).
    std::string &head = s->upgrade->head;
    size_t headEnd = head.find("\r\n\r\n");
    headEnd = headEnd == std::string::npos ? head.size() : headEnd + 4;
    s->clientFrames.setLimits(&t_.clientFrameLimits);
    // Watched first: the preloaded frames are unmasked only when the rest of the stream will be too.
    s->clientFrames.watch(fd, s);
    head.resize(headEnd + s->clientFrames.screenPreloaded(s, head.data() + headEnd, head.size() - headEnd));
    t_.adopting = s;
    lws *wsi = lws_adopt_socket_vhost_readbuf(t_.vhost, fd, head.data(), head.size());
    t_.adopting = nullptr;
    // The session may already be gone if lws closed the socket while processing the head.
    if (t_.sessions.find(id) == t_.sessions.end()) return;
    if (!wsi) {
        t_.closer->finish(s);
        return;
    }
    if (!lws_get_opaque_user_data(wsi)) lws_set_opaque_user_data(wsi, s);
    if (s->upgrade) std::string().swap(s->upgrade->head);
}

ConnectionRow ConnectFlow::rowOf(Session *s) {
    ConnectionRow row;
    row.connectionId = s->id;
    row.nodeId = t_.settings.nodeId;
    row.connectedAtMs = s->live->info.connectedAtMs;
    row.lastActiveAtMs = row.connectedAtMs;
    row.sourceIp = s->live->info.sourceIp;
    row.userAgent = s->live->info.userAgent;
    row.headersJson = multiValueJson(s->live->info.headers);
    row.queryJson = multiValueJson(parseQueryString(s->live->info.rawQuery));
    row.authorizerJson = s->live->info.authorizerJson;
    return row;
}

void ConnectFlow::established(Session *s, lws *wsi) {
    s->wsi = wsi;
    s->state = Session::State::Open;
    // libwebsockets has decided the extensions (LWS_CALLBACK_CONFIRM_EXTENSION_OKAY came before this, if the
    // client offered any): RSV1 without permessage-deflate now fails the connection as our own 1002.
    s->clientFrames.handshakeDone(s->deflate);
    t_.upgradeReader->stopHandshakeWatchers(s);
    s->upgrade.reset();  // the 101 has its subprotocol header by now
    s->live->upgraded.store(true);
    s->lastTouchAt = t_.loopSeconds();  // the row was written with lastActiveAt = connectedAt
    if (s->rowStored) {
        // Written before $connect ran; what the authorizer or $connect added is written now. As a durable
        // write: a plain insert followed by this connection's DELETE in the same batch would cancel out with
        // it (the store's short-lived-connection shortcut), and the row committed before $connect would stay.
        if (!s->live->info.authorizerJson.empty()) t_.store.insertDurable(rowOf(s), [](bool) {});
    } else {
        t_.store.insert(rowOf(s));
        s->rowStored = true;
    }
    // Only $connect's event, its authorizer and a proxy backend see the headers, and all of them are
    // done: an idle connection need not carry them (no other thread reads them from here on).
    std::vector<std::pair<std::string, std::string>>().swap(s->live->info.headers);
    log::debug("connected", {log::Field("connectionId", s->id), log::Field("sourceIp", s->live->info.sourceIp)});
    t_.timers->start(s);
    // An unmasked frame came with the request: once libwebsockets has delivered the frames before it (on
    // the loop's next iteration), it fails.
    if (s->clientFrames.failed()) t_.closer->badClientFrameFound(s);
    if (!wpsClientOpened(t_, s)) t_.closer->requestClose(s, 1011, "the connection could not join its groups");
    if (s->closeRequested) {  // closed while $connect ran (DELETE, a slow consumer): close now, with a deadline
        t_.timers->armCloseDeadline(s);
        lws_callback_on_writable(wsi);
    } else if (t_.draining) {
        t_.closer->requestClose(s, 1001, "Going away");
    } else if (!s->out.empty()) {
        lws_callback_on_writable(wsi);
    }
}

}  // namespace wsgw
