// Owns: the relay between a client and its proxy backend (proxy_relay.h).
#include "proxy_relay.h"

#include "command_queue.h"
#include "connect_flow.h"
#include "log.h"
#include "network_thread_state.h"
#include "session_closer.h"
#include "session_writer.h"
#include "upgrade_reader.h"

#include <algorithm>
#include <cstdio>
#include <strings.h>

namespace wsgw {

namespace {

constexpr double kBackendConnectSeconds = 10.0;  // a proxy backend's upgrade must complete within this
// Of which the lookup of a backend's host name may take this much (glibc's own timeout is 5 s a try, two
// tries a server, before it gives up).
constexpr double kDnsLookupSeconds = 5.0;

std::string dnsFailure(const std::string &host, const std::string &why) {
    return "the backend is unreachable: DNS lookup of '" + host + "' " + why;
}

std::string withHeadroom(std::string_view payload) {
    std::string s;
    s.reserve(LWS_PRE + payload.size());
    s.append(LWS_PRE, '\0');
    s.append(payload);
    return s;
}

}  // namespace

// What the backend link reports, for the session it was opened for (looked up by ID: it may be gone).
struct ProxyRelay::Events final : BackendEvents {
    NetworkThreadState &t;
    std::string id;
    Events(NetworkThreadState &thread, std::string sid) : t(thread), id(std::move(sid)) {}
    Session *session() const { return t.find(id); }
    void backendOpen(const std::string &subprotocol) override {
        Session *s = session();
        if (!s || !s->awaitingBackend) return;
        s->awaitingBackend = false;
        ev_timer_stop(t.loop, &s->backendConnect->timer);
        if (!subprotocol.empty() || !s->live->hasChosenBackend()) s->upgrade->subprotocol = subprotocol;
        t.connectFlow->adopt(s);
    }
    void backendFailed(const std::string &reason, bool reached) override {
        Session *s = session();
        if (!s) return;
        s->backend = nullptr;
        if (!s->awaitingBackend) return;
        // Another of its name's addresses, if this one could not be reached (as libwebsockets did): a backend
        // that refused the upgrade itself is not asked again, with the client's credentials, at every address.
        if (!reached && t.proxyRelay->nextBackendAddress(s)) return;
        std::string tried;
        if (s->backendConnect && s->backendConnect->addressesTried > 1)
            tried = " (tried " + std::to_string(s->backendConnect->addressesTried) + " addresses)";
        t.proxyRelay->refuseBackend(s, 502, "the backend is unreachable: " + reason + tried);
    }
    void backendMessage(std::string payload, bool binary) override {
        Session *s = session();
        if (!s) return;
        RouteMetrics::add(t.defaultMetrics->messagesOut);
        t.writer->queueOwnFrame(s, std::move(payload), binary);
        // The backend is held back well before the client's send queue reaches its bound
        // (limits.maxSendQueueBytes), so a slow client of a proxied API slows its backend rather than being
        // closed. Counted as the bound counts (frame overhead included): a backend of tiny messages must be
        // paused in time as well.
        size_t pauseAt = std::min<size_t>(BackendLink::kHighWater, t.host.maxSendQueueBytes.load(std::memory_order_relaxed) / 2);
        if (s->out.chargedBytes() > pauseAt && s->backend && !s->backendPaused) {
            s->backendPaused = true;  // the client reads slowly: stop reading the backend
            s->backend->pauseReading(true);
        }
    }
    void backendClosed(int code, const std::string &reason) override {
        Session *s = session();
        if (!s) return;
        s->backend = nullptr;
        // 1005/1006 describe a missing close frame and cannot be sent; a lost backend is 1011.
        bool sendable = code >= 1000 && code != 1004 && code != 1005 && code != 1006 && code != 1015 && code < 5000;
        if (code == 1005) t.closer->requestClose(s, 1000, reason);
        else t.closer->requestClose(s, sendable ? code : 1011, sendable ? reason : "the backend connection was lost");
    }
    void backendDrained() override {
        Session *s = session();
        if (s && s->clientPaused && s->wsi) {
            s->clientPaused = false;
            lws_rx_flow_control(s->wsi, 1);
        }
    }
};

void ProxyRelay::startChosenBackend(Session *s) {
    auto url = WsUrl::parse(s->live->chosenBackend->url);
    if (auto *err = std::get_if<std::string>(&url)) {
        refuseBackend(s, 502, "the $connect handler chose an invalid backend: " + *err);
        return;
    }
    BackendTarget target;
    target.url = std::get<WsUrl>(url);
    std::string_view lines = s->live->chosenBackend->headers;
    while (!lines.empty()) {
        size_t eol = lines.find("\r\n");
        std::string_view line = lines.substr(0, eol);
        lines = eol == std::string_view::npos ? std::string_view() : lines.substr(eol + 2);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) continue;
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        target.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    target.headers.emplace_back("X-Forwarded-For", s->peer);
    target.offers = s->upgrade->subprotocol.empty() ? s->upgrade->offers : s->upgrade->subprotocol;
    connectBackend(s, std::move(target));
}

void ProxyRelay::startBackend(Session *s) {
    const WsUrl &url = *t_.table->proxy;
    const ProxySpec &spec = t_.table->config.proxy;
    BackendTarget target;
    target.url = url;
    // The client's path is appended to the backend's; the query follows when forwardQuery says so.
    const std::string &path = s->upgrade->path;
    std::string suffix = path == "/" ? std::string() : path;
    if (!suffix.empty() && !target.url.path.empty() && target.url.path.back() == '/' && suffix.front() == '/') suffix.erase(0, 1);
    target.url.path += suffix;
    const ConnectionInfo &info = s->live->info;
    if (spec.forwardQuery && !info.rawQuery.empty())
        target.url.path += (target.url.path.find('?') == std::string::npos ? "?" : "&") + info.rawQuery;
    for (const std::string &name : spec.forwardHeaders)
        for (const auto &[h, value] : info.headers)
            if (strcasecmp(h.c_str(), name.c_str()) == 0) target.headers.emplace_back(name, value);
    target.headers.emplace_back("X-Forwarded-For", s->peer);
    target.offers = s->upgrade->offers;
    connectBackend(s, std::move(target));
}

void ProxyRelay::connectBackend(Session *s, BackendTarget target) {
    if (t_.table) target.maxMessageBytes = t_.table->config.limits.maxMessageBytes;
    s->awaitingBackend = true;
    s->backendConnect = std::make_unique<Session::BackendConnect>();
    s->backendConnect->events = std::make_unique<Events>(t_, s->id);
    s->backendConnect->startedAt = t_.loopSeconds();
    ev_timer_init(&s->backendConnect->timer, onBackendTimeout, kBackendConnectSeconds, 0.);
    s->backendConnect->timer.data = s;
    if (HostResolver::needsLookup(target.url.host)) {
        lookUpBackend(s, std::move(target));
        return;
    }
    ev_timer_start(t_.loop, &s->backendConnect->timer);
    openLink(s, target);
}

// A host name: looked up on the resolver's threads (libwebsockets would block this one in getaddrinfo), the
// answer comes back as a command (backendResolved). The deadline is the lookup's until then.
void ProxyRelay::lookUpBackend(Session *s, BackendTarget target) {
    Session::BackendConnect &connect = *s->backendConnect;
    std::string host = target.url.host;
    connect.resolving = std::make_unique<BackendTarget>(std::move(target));
    connect.lookup = HostResolver::shared().resolve(host, [sink = t_.commands->sink(), id = s->id](HostResolver::Answer answer) {
        bool found = answer.error.empty();
        std::string addresses;  // one a line (no address holds a newline)
        for (const std::string &a : answer.addresses) addresses += (addresses.empty() ? "" : "\n") + a;
        sink->post(Command{Command::Kind::BackendResolved, InlineId(id), found ? std::move(addresses) : std::move(answer.error),
                           false, found ? 0 : 1});
    });
    if (!connect.lookup) {  // at the resolver's bound: this connection fails now rather than queueing
        refuseBackend(s, 502, dnsFailure(host, "not started: too many lookups are waiting, or no thread for one (the gateway's resolver is at its bound)"));
        return;
    }
    ev_timer_set(&connect.timer, kDnsLookupSeconds, 0.);
    ev_timer_start(t_.loop, &connect.timer);
}

void ProxyRelay::backendResolved(std::string_view connectionId, bool found, std::string addressesOrError) {
    Session *s = t_.find(connectionId);
    if (!s || !s->awaitingBackend || !s->backendConnect || !s->backendConnect->resolving) return;  // gone, or timed out
    Session::BackendConnect &connect = *s->backendConnect;
    BackendTarget target = std::move(*connect.resolving);
    connect.resolving.reset();
    connect.lookup = HostResolver::Ticket();
    ev_timer_stop(t_.loop, &connect.timer);
    if (!found) {
        refuseBackend(s, 502, dnsFailure(target.url.host, "failed: " + addressesOrError));
        return;
    }
    // The first address now; the others, in order, if it cannot be reached (nextBackendAddress).
    for (size_t at = 0; at <= addressesOrError.size();) {
        size_t end = std::min(addressesOrError.find('\n', at), addressesOrError.size());
        if (end > at) connect.moreAddresses.emplace_back(addressesOrError.substr(at, end - at));
        at = end + 1;
    }
    if (connect.moreAddresses.empty()) {
        refuseBackend(s, 502, dnsFailure(target.url.host, "failed: no usable address"));
        return;
    }
    target.address = std::move(connect.moreAddresses.front());
    connect.moreAddresses.erase(connect.moreAddresses.begin());
    if (!connect.moreAddresses.empty()) connect.target = std::make_unique<BackendTarget>(target);
    // The upgrade gets what is left of kBackendConnectSeconds.
    double left = kBackendConnectSeconds - (t_.loopSeconds() - connect.startedAt);
    ev_timer_set(&connect.timer, std::max(left, 0.001), 0.);
    ev_timer_start(t_.loop, &connect.timer);
    openLink(s, target);
}

bool ProxyRelay::nextBackendAddress(Session *s) {
    if (!s->backendConnect || !s->backendConnect->target || s->backendConnect->moreAddresses.empty()) return false;
    Session::BackendConnect &connect = *s->backendConnect;
    if (!ev_is_active(&connect.timer)) return false;  // the deadline has passed
    connect.target->address = std::move(connect.moreAddresses.front());
    connect.moreAddresses.erase(connect.moreAddresses.begin());
    ++connect.addressesTried;
    openLink(s, *connect.target);
    return true;
}

void ProxyRelay::openLink(Session *s, const BackendTarget &target) {
    std::string id = s->id;
    BackendLink *link = BackendLink::open(t_.context, t_.vhost, target, s->backendConnect->events.get());
    // A failure inside open() has been reported already: it may have refused (and dropped) the session, or
    // opened a link to the next address.
    if (!link) return;
    if (Session *still = t_.find(id)) still->backend = link;
}

void ProxyRelay::onBackendTimeout(struct ev_loop *, ev_timer *w, int) {
    auto *s = static_cast<Session *>(w->data);
    if (!s->awaitingBackend) return;
    if (const auto &resolving = s->backendConnect->resolving) {
        char seconds[16];
        snprintf(seconds, sizeof seconds, "%g", kDnsLookupSeconds);
        s->thread->proxyRelay->refuseBackend(s, 502, dnsFailure(resolving->url.host, std::string("did not finish within ") + seconds + " s"));
        return;
    }
    s->thread->proxyRelay->refuseBackend(s, 504, "the backend did not answer the upgrade in time");
}

void ProxyRelay::refuseBackend(Session *s, int status, const std::string &reason) {
    s->awaitingBackend = false;
    if (s->backendConnect) {
        ev_timer_stop(t_.loop, &s->backendConnect->timer);
        s->backendConnect->lookup.reset();
    }
    if (s->backend) closeBackend(s, 1001, "Going away");
    RouteMetrics::add(t_.connectMetrics->executionErrors);
    t_.logGatewayAnswer("CONNECT", s->id, "$connect", status, s->peer, s->live ? std::string_view(s->live->info.userAgent) : "", reason);
    log::warn("proxy backend refused the connection", {log::Field("connectionId", s->id), log::Field("status", status),
                                                        log::Field("reason", reason)});
    std::string response = renderHttpRefusal(status, reason);
    t_.upgradeReader->dropUnaccepted(s, &response);
}

void ProxyRelay::closeBackend(Session *s, int code, const std::string &reason) {
    s->backend->detach();
    s->backend->close(code, reason);
    s->backend = nullptr;
}

void ProxyRelay::forwardToBackend(Session *s) {
    RouteMetrics::add(t_.defaultMetrics->messagesIn);
    s->backend->send(withHeadroom(s->rx), s->rxBinary);
    s->rx.clear();
    if (s->backend->queuedBytes() > BackendLink::kHighWater && !s->clientPaused) {
        s->clientPaused = true;
        lws_rx_flow_control(s->wsi, 0);
    }
}

void ProxyRelay::resumeBackendIfDrained(Session *s) {
    if (s->backendPaused && s->out.chargedBytes() < std::min<size_t>(BackendLink::kLowWater, t_.host.maxSendQueueBytes.load(std::memory_order_relaxed) / 8) &&
        s->backend) {
        s->backendPaused = false;
        s->backend->pauseReading(false);
    }
}

}  // namespace wsgw
