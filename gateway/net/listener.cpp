#include "listener.h"

#include "fifo_queue.h"
#include "send_queue.h"

#include "accept_backoff.h"
#include "close_frame.h"
#include "frame_writer.h"
#include "upgrade_admission.h"
#include "connection_id.h"
#include "handshake.h"
#include "listen_socket.h"
#include "backend_link.h"
#include "log.h"
#include "permessage_deflate.h"
#include "tls_terminator.h"
#include "utf8.h"

#include <ev.h>
#include <libwebsockets.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <unordered_map>

namespace wsgw {

namespace {

constexpr size_t kMaxHeadBytes = 8192;
constexpr int64_t kTouchIntervalMs = 1000;   // lastActiveAt is written at most this often per connection
constexpr size_t kMaxDiscardBytes = 16u << 20;  // of an oversized message, before closing regardless
constexpr size_t kSpareBuffers = 256;             // message buffers kept for reuse per network thread, and
constexpr size_t kSpareMinBytes = 64;             // their sizes: smaller ones cost little to allocate,
constexpr size_t kSpareMaxBytes = 64 * 1024;      // larger ones are not worth holding on to
constexpr size_t kRxBufferBytes = 64 * 1024;
constexpr double kBackendConnectSeconds = 10.0;  // a proxy backend's upgrade must complete within this
constexpr int kAcceptsPerWakeup = 64;
constexpr double kCloseDeadlineSeconds = 5.0;  // a close frame the socket has not taken by then: TCP is dropped

std::string withHeadroom(std::string_view payload) {
    std::string s;
    s.reserve(LWS_PRE + payload.size());
    s.append(LWS_PRE, '\0');
    s.append(payload);
    return s;
}

// A refusal whose body the $connect handler chose (AWS passes the integration's body through).
std::string renderRawResponse(int status, std::string_view body) {
    std::string s = "HTTP/1.1 " + std::to_string(status) + " " + httpReasonPhrase(status) + "\r\n";
    s += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    s += body;
    return s;
}

void writeAllBestEffort(int fd, const std::string &bytes) {
    // The socket is about to be closed; a refusal that does not fit the send buffer is cut short rather
    // than holding the network thread.
    size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
}

}  // namespace

// What only the upgrade needs. It is freed once the connection is open, so that the many idle connections
// of a gateway do not carry it.
struct PendingUpgrade {
    ev_io io{};
    ev_timer handshakeTimer{};
    std::string head;
    std::string subprotocol;  // chosen from the client's offers; lws is handed the head without them
    std::string path;         // the request path, for a proxy backend
    std::string offers;       // the client's subprotocol offers, passed on to a proxy backend
};

struct Session {
    enum class State { ReadingHead, Connecting, Adopting, Open, Finished };

    Listener::Impl *owner = nullptr;
    std::string id;
    State state = State::ReadingHead;
    int fd = -1;
    std::unique_ptr<PendingUpgrade> upgrade = std::make_unique<PendingUpgrade>();
    std::string peer;         // the client's address (a TLS connection arrives over a local socketpair)
    BackendLink *backend = nullptr;  // "proxy": the backend connection (it lives in lws)
    bool awaitingBackend = false, clientPaused = false, backendPaused = false;
    struct BackendConnect {  // while a proxy backend is being reached, and its event sink for the link's life
        std::unique_ptr<BackendEvents> events;
        ev_timer timer{};
    };
    std::unique_ptr<BackendConnect> backendConnect;
    std::shared_ptr<LiveConnection> live;
    std::shared_ptr<Invoker::Lane> lane;  // made by the first invocation: an idle connection may never need it
    lws *wsi = nullptr;
    SendQueue out;            // frames towards the client (their bytes are reserved in live->sendQueueBytes)
    std::string rx;
    std::unique_ptr<CompressedInput> inflateInput;  // permessage-deflate: compressed bytes zlib reads from
    bool rxBinary = false;
    int64_t lastTouchMs = 0;
    bool closeRequested = false;
    bool rxFlowOff = false;   // reading paused because its pending messages reached a bound (SPEC section 10)
    bool rowStored = false;   // its row is in (or queued for) the connection table
    size_t heldByLws = 0;     // bytes handed to libwebsockets that it has not written yet
    bool awaitingRow = false; // $connect waits for its row to be committed
    // How it closed: ours (requestClose) and the peer's close frame, which wins in $disconnect. Allocated at
    // the first close, so an open connection does not carry it.
    struct Closing {
        int code = 0;
        std::string reason;
        bool peerClosed = false;
        int peerCode = 0;
        std::string peerReason;
    };
    std::unique_ptr<Closing> closing;
    Closing &closingInfo() {
        if (!closing) closing = std::make_unique<Closing>();
        return *closing;
    }
    bool rxTooBig = false;  // over the message limit: the rest of the message is read and dropped
    size_t rxDiscarded = 0;
    bool inFrame = false;   // the last chunk lws delivered left part of its frame to come
    bool deflate = false;   // permessage-deflate: lws hands us inflated bytes
    bool ipCounted = false;  // its source address (peer) counts against maxConnectionsPerIp
    double lastActivity = 0;  // loop time of the last message in or frame out, for the idle timeout
    // One timer for the idle timeout, the lifetime and a credential's expiry: it fires at the earliest and
    // is set again for what is left (one timer instead of three per connection).
    ev_timer deadlineTimer{};
    double lifetimeEndsAt = 0;  // loop time
    double expiresAt = 0;       // loop time; 0 when the credential does not expire
    std::unique_ptr<std::unordered_map<std::string, TokenBucket>> routeBuckets;  // connectionThrottle, by route key
};

// A connection ID held by value without a heap allocation: every push or close queued to a network thread
// carries one. IDs the gateway issues are 22 characters; a longer one (which no session has) is kept as
// the empty ID, which matches nothing.
class InlineId {
public:
    InlineId() = default;
    explicit InlineId(std::string_view id) {
        if (id.size() > sizeof bytes_) return;
        len_ = static_cast<uint8_t>(id.size());
        std::memcpy(bytes_, id.data(), id.size());
    }
    std::string_view view() const { return {bytes_, len_}; }

private:
    char bytes_[30];
    uint8_t len_ = 0;
};

struct Command {
    enum class Kind { Send, Close, ConnectDecided, Drain, Resume, RowNotDurable } kind;
    InlineId connectionId;
    std::string data;  // Send: the payload; Close: reason; ConnectDecided: body
    bool binary = false;
    int code = 0;      // Close: close code; ConnectDecided: HTTP status (0 accepts)
    std::shared_ptr<const std::string> shared = {};  // Send: a fan-out payload instead of `data`
};

// Lets another thread (the connection table's writer) post to a listener for as long as it exists: the store
// may answer after the listener is gone.
struct CommandSink {
    std::mutex mutex;
    Listener::Impl *impl = nullptr;
    void post(Command &&c);
    bool alive() {
        std::lock_guard lock(mutex);
        return impl != nullptr;
    }
};

struct Listener::Impl {
    Listener *self = nullptr;
    ListenerSettings settings;
    ConnectionRegistry &registry;
    ConnectionStore &store;
    HostContext &host;
    std::shared_ptr<const RouteTable> table;
    std::string boundAddress;

    struct ev_loop *loop = nullptr;
    lws_context *context = nullptr;
    lws_vhost *vhost = nullptr;
    int listenFd = -1;
    ev_io acceptWatcher{};
    AcceptBackoff acceptBackoff{"public", host.metrics.acceptErrors};
    ev_async wakeWatcher{};
    // Message buffers are reused on this thread: a sent reply (an echo sends back the very buffer its
    // message arrived in) becomes a later message's receive buffer, instead of one malloc and free each.
    std::vector<std::string> spareBuffers;
    FrameWriter writer;     // writeable(): a connection's queued frames onto its socket
    ev_prepare prepareWatcher{};  // before the loop sleeps: wake the workers for what this iteration read
    ev_signal sigterm{}, sigint{};
    ev_timer drainTimer{};
    bool draining = false;
    ev_tstamp drainDeadline = 0;

    // Keyed by a view of the session's own id: no second copy of the ID per connection.
    std::unordered_map<std::string_view, std::unique_ptr<Session>> sessions;
    Session *adopting = nullptr;  // the session whose socket lws_adopt is taking right now

    std::mutex commandMutex;
    std::vector<Command> commands;
    std::vector<Command> commandsInHand;
    // A reload's new table, handed over with the command queue; the old one goes back to the reloader so
    // that plugin shutdown never runs on this thread.
    std::shared_ptr<const RouteTable> incomingTable;
    std::promise<std::shared_ptr<const RouteTable>> *tableSwapped = nullptr;
    ev_signal sighup{};
    std::function<void()> onReloadRequest;

    std::string scratchKey;
    std::unique_ptr<TlsTerminator> tls;  // wss://: accepted sockets go through it first
    std::function<void()> drainHook;
    RouteMetrics *connectMetrics = host.metrics.route("$connect");
    RouteMetrics *defaultMetrics = host.metrics.route("$default");

    Impl(Listener *s, ListenerSettings st, ConnectionRegistry &r, ConnectionStore &cs, HostContext &h)
        : self(s), settings(std::move(st)), registry(r), store(cs), host(h) {}

    Invoker &invoker() { return *self->invoker_; }
    std::shared_ptr<CommandSink> commandSink = std::make_shared<CommandSink>();

    void post(Command &&c) {
        bool wasEmpty;
        {
            std::lock_guard lock(commandMutex);
            wasEmpty = commands.empty();
            commands.push_back(std::move(c));
        }
        if (wasEmpty) ev_async_send(loop, &wakeWatcher);
    }

    // ---- accepting and the upgrade head -------------------------------------------------------------

    static void onAccept(struct ev_loop *, ev_io *w, int) {
        auto *impl = static_cast<Impl *>(w->data);
        for (int i = 0; i < kAcceptsPerWakeup; ++i) {
            std::string peer;
            int fd = acceptWithPeer(impl->listenFd, &peer);
            if (fd < 0) {
                int err = errno;
                if (impl->acceptBackoff.failed(err)) return;  // out of descriptors: paused, retried by a timer
                if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED)
                    log::warn("accept failed", {log::Field("error", std::strerror(err))});
                return;
            }
            if (impl->tls) impl->tls->adopt(fd, peer);
            else impl->beginHandshake(fd, peer);
        }
    }

    void beginHandshake(int fd, const std::string &peer) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto s = std::make_unique<Session>();
        s->owner = this;
        s->fd = fd;
        s->peer = peer;
        s->id = newConnectionId();
        Session *raw = s.get();
        PendingUpgrade &up = *raw->upgrade;
        ev_io_init(&up.io, onHeadReadable, fd, EV_READ);
        up.io.data = raw;
        ev_io_start(loop, &up.io);
        int timeoutSeconds = table ? table->config.limits.handshakeTimeoutSeconds : 10;
        ev_timer_init(&up.handshakeTimer, onHandshakeTimeout, timeoutSeconds, 0.);
        up.handshakeTimer.data = raw;
        ev_timer_start(loop, &up.handshakeTimer);
        sessions.emplace(raw->id, std::move(s));
        // The request has usually arrived with the connection. Reading it now, before the loop registers
        // the socket with epoll, spares that registration (the watcher is stopped again before it happens)
        // and a loop iteration; if it has not arrived, the watcher waits for it.
        readHead(raw);
    }

    // A refusal the gateway makes itself (no handler runs): counted, logged and sent.
    void refuseUpgrade(Session *s, int status, const std::string &reason) {
        std::string response = renderHttpRefusal(status, reason);
        const std::string &sourceIp = s->peer;
        log::info("upgrade refused", {log::Field("status", status), log::Field("reason", reason), log::Field("sourceIp", sourceIp)});
        RouteMetrics::add(connectMetrics->clientErrors);
        logGatewayAnswer("CONNECT", s->id, "$connect", status, sourceIp, {}, reason);
        dropUnaccepted(s, &response);
    }

    void stopHandshakeWatchers(Session *s) {
        if (!s->upgrade) return;
        ev_io_stop(loop, &s->upgrade->io);
        ev_timer_stop(loop, &s->upgrade->handshakeTimer);
    }

    // Drops a connection that never became a WebSocket: nothing of it is in the registry or the table.
    void dropUnaccepted(Session *s, const std::string *response) {
        stopHandshakeWatchers(s);
        if (s->backendConnect) ev_timer_stop(loop, &s->backendConnect->timer);
        if (s->backend) {
            s->backend->detach();
            s->backend->close(1001, "Going away");
            s->backend = nullptr;
        }
        if (s->fd >= 0) {
            if (response) writeAllBestEffort(s->fd, *response);
            ::shutdown(s->fd, SHUT_WR);
            ::close(s->fd);
            s->fd = -1;
        }
        if (s->live) {
            registry.remove(s->id);
            // A $connect handler may have put it in groups before the refusal; the store forgets those too,
            // and the row written before $connect ran.
            bool inGroups = !host.groups.groupsOf(s->id).empty();
            if (inGroups) forgetConnectionGroups(host, s->id);
            if (inGroups || s->rowStored) store.remove(s->id);
        }
        releaseIp(s);
        eraseSession(s);
    }

    const std::shared_ptr<Invoker::Lane> &laneOf(Session *s) {
        if (!s->lane) s->lane = invoker().newLane();
        return s->lane;
    }

    void recycle(std::string &&buffer) {
        if (buffer.capacity() < kSpareMinBytes || buffer.capacity() > kSpareMaxBytes || spareBuffers.size() >= kSpareBuffers) return;
        buffer.clear();
        spareBuffers.push_back(std::move(buffer));
    }

    // Frees the session. By iterator, as the key views the id of the session being freed.
    void eraseSession(Session *s) {
        auto it = sessions.find(s->id);
        if (it != sessions.end()) sessions.erase(it);
    }

    void releaseIp(Session *s) {
        if (!s->ipCounted) return;
        settings.ipCounts->release(s->peer);
        s->ipCounted = false;
    }

    static void onHandshakeTimeout(struct ev_loop *, ev_timer *w, int) {
        auto *s = static_cast<Session *>(w->data);
        log::info("handshake timeout", {log::Field("connectionId", s->id)});
        s->owner->dropUnaccepted(s, nullptr);
    }

    static void onHeadReadable(struct ev_loop *, ev_io *w, int) {
        auto *s = static_cast<Session *>(w->data);
        s->owner->readHead(s);
    }

    void readHead(Session *s) {
        char buf[4096];
        ssize_t n = ::recv(s->fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            dropUnaccepted(s, nullptr);
            return;
        }
        if (n < 0) return;
        PendingUpgrade &up = *s->upgrade;
        up.head.append(buf, static_cast<size_t>(n));
        HeadParse parsed = parseUpgradeHead(up.head, kMaxHeadBytes);
        if (parsed.result == HeadResult::NeedMore) return;
        if (parsed.result == HeadResult::Refuse) {
            std::string response = renderHttpRefusal(parsed.refusal.status, parsed.refusal.reason, parsed.refusal.extraHeaders);
            const std::string &sourceIp = s->peer;
            log::info("upgrade refused", {log::Field("status", parsed.refusal.status), log::Field("reason", parsed.refusal.reason),
                                          log::Field("sourceIp", sourceIp)});
            RouteMetrics::add(connectMetrics->clientErrors);
            logGatewayAnswer("CONNECT", s->id, "$connect", parsed.refusal.status, sourceIp, {}, parsed.refusal.reason);
            dropUnaccepted(s, &response);
            return;
        }
        if (draining) {
            std::string response = renderHttpRefusal(503, "the gateway is shutting down: reconnect shortly");
            dropUnaccepted(s, &response);
            return;
        }
        if (table) {
            const Limits &limits = table->config.limits;
            if (auto refusal = checkOrigin(parsed.request, limits)) {
                refuseUpgrade(s, refusal->status, refusal->reason);
                return;
            }
            if (limits.maxConnectionsPerIp) {
                if (!settings.ipCounts->tryAdd(s->peer, limits.maxConnectionsPerIp)) {
                    UpgradeRefusal refusal = perAddressRefusal(s->peer, limits.maxConnectionsPerIp);
                    refuseUpgrade(s, refusal.status, refusal.reason);
                    return;
                }
                s->ipCounted = true;
            }
        }
        up.path = parsed.request.path;
        static const std::vector<std::string> kNone;
        SubprotocolDecision sub = decideSubprotocol(parsed.request, table ? table->config.subprotocols : kNone, table && table->proxy);
        if (sub.refusal) {
            std::string response = renderHttpRefusal(sub.refusal->status, sub.refusal->reason);
            RouteMetrics::add(connectMetrics->clientErrors);
            dropUnaccepted(s, &response);
            return;
        }
        up.subprotocol = std::move(sub.chosen);  // LWS_CALLBACK_ADD_HEADERS puts it back into the 101
        up.offers = std::move(sub.offersForBackend);
        if (sub.stripOffers) up.head = withoutHeader(up.head, parsed.request.headLength, "Sec-WebSocket-Protocol");
        stopHandshakeWatchers(s);
        startConnect(s, std::move(parsed.request));
    }

    // Takes the parsed request: its headers move into the connection's info instead of being copied.
    void startConnect(Session *s, UpgradeRequest &&req) {
        auto live = std::make_shared<LiveConnection>();
        ConnectionInfo &info = live->info;
        info.connectionId = s->id;
        info.connectedAtMs = nowEpochMs();
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
        live->lastActiveAtMs.store(info.connectedAtMs);
        s->live = live;
        s->state = Session::State::Connecting;
        live->networkThread = settings.threadIndex;
        registry.add(live);  // from here a push (even from inside $connect) is accepted and queued
        RouteMetrics::add(connectMetrics->connects);
        if (table && table->connect) {
            Invocation inv;
            inv.table = table;
            inv.route = table->connect;
            inv.connection = live;
            inv.type = WSGW_CONNECT;
            inv.requestId = newRequestId();
            inv.requestTimeMs = info.connectedAtMs;
            if (!table->disconnect) {  // no $disconnect to owe: nothing to make durable first
                invoker().submit(laneOf(s), std::move(inv), false);
                return;
            }
            // Every $connect that runs is followed by a $disconnect, even across kill -9: the row is committed
            // first (group commit with the connections arriving meanwhile), so that start-up recovery finds it.
            // The store's thread submits $connect itself once the row is committed: no trip back through this
            // thread. A row it could not commit comes back as RowNotDurable, and the upgrade is refused.
            s->rowStored = true;
            s->awaitingRow = true;
            std::weak_ptr<CommandSink> sink = commandSink;
            store.insertDurable(rowOf(s), [sink, id = s->id, lane = laneOf(s), invoker = &invoker(),
                                           inv = std::move(inv)](bool committed) mutable {
                auto target = sink.lock();
                if (!target) return;
                if (committed && target->alive()) invoker->submit(lane, std::move(inv), true);
                else target->post(Command{Command::Kind::RowNotDurable, InlineId(id), {}, false, 0});
            });
        } else {
            logGatewayAnswer("CONNECT", s->id, "$connect", 200, info.sourceIp, info.userAgent, {});
            admit(s);
        }
    }

    // The store could not commit the row: the upgrade is refused ($connect did not run).
    void rowNotDurable(std::string_view id) {
        auto it = sessions.find(id);
        if (it == sessions.end() || it->second->state != Session::State::Connecting || !it->second->awaitingRow) return;
        it->second->awaitingRow = false;
        refuseUpgrade(it->second.get(), 503, "the connection table cannot be written: try again shortly");
    }

    void decideConnect(std::string_view id, int status, std::string &body) {
        auto it = sessions.find(id);
        if (it == sessions.end() || it->second->state != Session::State::Connecting) return;
        Session *s = it->second.get();
        if (status == 0) {
            admit(s);
            return;
        }
        std::string response = body.empty() ? renderHttpRefusal(status, status == 502 ? "Internal server error"
                                                                         : status == 504 ? "Endpoint request timed out"
                                                                                         : httpReasonPhrase(status))
                                            : renderRawResponse(status, body);
        log::info("connect refused", {log::Field("connectionId", id), log::Field("status", status)});
        dropUnaccepted(s, &response);
    }

    // $connect said yes: complete the upgrade, or first reach the proxy backend.
    void admit(Session *s) {
        if (s->live->hasChosenBackend()) startChosenBackend(s);
        else if (table && table->proxy) startBackend(s);
        else adopt(s);
    }

    // A $connect handler named this connection's backend (Azure's SignalR pattern: negotiate, then connect).
    void startChosenBackend(Session *s) {
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

    // ---- the proxy backend ------------------------------------------------------------------------------

    struct ProxyEvents final : BackendEvents {
        Impl *impl;
        std::string id;
        ProxyEvents(Impl *i, std::string sid) : impl(i), id(std::move(sid)) {}
        Session *session() const {
            auto it = impl->sessions.find(id);
            return it == impl->sessions.end() ? nullptr : it->second.get();
        }
        void backendOpen(const std::string &subprotocol) override {
            Session *s = session();
            if (!s || !s->awaitingBackend) return;
            s->awaitingBackend = false;
            ev_timer_stop(impl->loop, &s->backendConnect->timer);
            if (!subprotocol.empty() || !s->live->hasChosenBackend()) s->upgrade->subprotocol = subprotocol;
            impl->adopt(s);
        }
        void backendFailed(const std::string &reason) override {
            Session *s = session();
            if (!s) return;
            s->backend = nullptr;
            if (s->awaitingBackend) impl->refuseBackend(s, 502, "the backend is unreachable: " + reason);
        }
        void backendMessage(std::string payload, bool binary) override {
            Session *s = session();
            if (!s) return;
            RouteMetrics::add(impl->defaultMetrics->messagesOut);
            impl->queueOwnFrame(s, std::move(payload), binary);
            // The backend is held back well before the client's send queue reaches its bound (SPEC section 10),
            // so a slow client of a proxied API slows its backend rather than being closed.
            size_t pauseAt = std::min<size_t>(BackendLink::kHighWater, impl->host.maxSendQueueBytes.load(std::memory_order_relaxed) / 2);
            if (s->out.bytes() > pauseAt && s->backend && !s->backendPaused) {
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
            if (code == 1005) impl->requestClose(s, 1000, reason);
            else impl->requestClose(s, sendable ? code : 1011, sendable ? reason : "the backend connection was lost");
        }
        void backendDrained() override {
            Session *s = session();
            if (s && s->clientPaused && s->wsi) {
                s->clientPaused = false;
                lws_rx_flow_control(s->wsi, 1);
            }
        }
    };

    void startBackend(Session *s) {
        const WsUrl &url = *table->proxy;
        const ProxySpec &spec = table->config.proxy;
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

    void connectBackend(Session *s, BackendTarget target) {
        s->awaitingBackend = true;
        s->backendConnect = std::make_unique<Session::BackendConnect>();
        s->backendConnect->events = std::make_unique<ProxyEvents>(this, s->id);
        ev_timer_init(&s->backendConnect->timer, onBackendTimeout, kBackendConnectSeconds, 0.);
        s->backendConnect->timer.data = s;
        ev_timer_start(loop, &s->backendConnect->timer);
        std::string id = s->id;
        BackendLink *link = BackendLink::open(context, vhost, target, s->backendConnect->events.get());
        auto it = sessions.find(id);  // a failure inside open() may have refused (and dropped) the session
        if (it != sessions.end()) it->second->backend = link;
    }

    static void onBackendTimeout(struct ev_loop *, ev_timer *w, int) {
        auto *s = static_cast<Session *>(w->data);
        if (s->awaitingBackend) s->owner->refuseBackend(s, 504, "the backend did not answer the upgrade in time");
    }

    void refuseBackend(Session *s, int status, const std::string &reason) {
        s->awaitingBackend = false;
        if (s->backendConnect) ev_timer_stop(loop, &s->backendConnect->timer);
        if (s->backend) {
            s->backend->detach();
            s->backend->close(1001, "Going away");
            s->backend = nullptr;
        }
        RouteMetrics::add(connectMetrics->executionErrors);
        logGatewayAnswer("CONNECT", s->id, "$connect", status, s->peer, s->live ? std::string_view(s->live->info.userAgent) : "", reason);
        log::warn("proxy backend refused the connection", {log::Field("connectionId", s->id), log::Field("status", status),
                                                            log::Field("reason", reason)});
        std::string response = renderHttpRefusal(status, reason);
        dropUnaccepted(s, &response);
    }

    // The client's message goes to the backend; a backend that reads slowly stops us reading the client.
    void forwardToBackend(Session *s) {
        RouteMetrics::add(defaultMetrics->messagesIn);
        s->backend->send(withHeadroom(s->rx), s->rxBinary);
        s->rx.clear();
        if (s->backend->queuedBytes() > BackendLink::kHighWater && !s->clientPaused) {
            s->clientPaused = true;
            lws_rx_flow_control(s->wsi, 0);
        }
    }

    void adopt(Session *s) {
        s->state = Session::State::Adopting;
        int fd = s->fd;
        s->fd = -1;  // lws owns the socket from here, even when adoption fails
        const std::string id = s->id;
        adopting = s;
        lws *wsi = lws_adopt_socket_vhost_readbuf(vhost, fd, s->upgrade->head.data(), s->upgrade->head.size());
        adopting = nullptr;
        // The session may already be gone if lws closed the socket while processing the head.
        if (sessions.find(id) == sessions.end()) return;
        if (!wsi) {
            finish(s);
            return;
        }
        if (!lws_get_opaque_user_data(wsi)) lws_set_opaque_user_data(wsi, s);
        if (s->upgrade) std::string().swap(s->upgrade->head);
    }

    // ---- libwebsockets callbacks ----------------------------------------------------------------------

    // Where permessage-deflate keeps a public connection's compressed input (backend links have none).
    static std::unique_ptr<CompressedInput> *compressedInputOf(lws *wsi) {
        const lws_protocols *protocol = lws_get_protocol(wsi);
        if (!protocol || protocol->callback != &Impl::callback) return nullptr;
        auto *s = static_cast<Session *>(lws_get_opaque_user_data(wsi));
        return s ? &s->inflateInput : nullptr;
    }

    static int callback(lws *wsi, enum lws_callback_reasons reason, void *, void *in, size_t len) {
        lws_context *ctx = lws_get_context(wsi);
        auto *impl = ctx ? static_cast<Impl *>(lws_context_user(ctx)) : nullptr;
        if (!impl) return 0;
        auto *s = static_cast<Session *>(lws_get_opaque_user_data(wsi));
        if (!s && impl->adopting && reason != LWS_CALLBACK_PROTOCOL_INIT && reason != LWS_CALLBACK_PROTOCOL_DESTROY &&
            reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
            s = impl->adopting;
            lws_set_opaque_user_data(wsi, s);
        }
        switch (reason) {
        case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: {
            bool deflate = s && impl->table && impl->table->config.compression && !impl->table->proxy && !s->backend;
            if (s) s->deflate = deflate;
            return deflate ? 0 : 1;
        }
        case LWS_CALLBACK_ADD_HEADERS:
            if (s && s->upgrade && !s->upgrade->subprotocol.empty()) {
                auto *args = static_cast<lws_process_html_args *>(in);
                auto *p = reinterpret_cast<unsigned char *>(args->p);
                unsigned char *end = p + args->max_len;
                if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char *>("sec-websocket-protocol:"),
                                                reinterpret_cast<const unsigned char *>(s->upgrade->subprotocol.data()),
                                                static_cast<int>(s->upgrade->subprotocol.size()), &p, end))
                    return -1;
                args->max_len -= static_cast<int>(p - reinterpret_cast<unsigned char *>(args->p));
                args->p = reinterpret_cast<char *>(p);
            }
            return 0;
        case LWS_CALLBACK_ESTABLISHED:
            if (s) impl->established(s, wsi);
            break;
        case LWS_CALLBACK_RECEIVE:
            if (s) return impl->receive(s, wsi, static_cast<const char *>(in), len);
            break;
        case LWS_CALLBACK_SERVER_WRITEABLE:
            if (s) return impl->writeable(s, wsi);
            break;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
            if (s) return impl->peerClosed(s, wsi, static_cast<const unsigned char *>(in), len);
            break;
        case LWS_CALLBACK_CLOSED:
        case LWS_CALLBACK_WSI_DESTROY:
            if (s) {
                lws_set_opaque_user_data(wsi, nullptr);
                impl->finish(s);
            }
            break;
        default:
            break;
        }
        return 0;
    }

    // The client's close frame: a valid one is echoed (return 0) and reaches $disconnect; a malformed one
    // fails the connection with 1002 or 1007 (close_frame.h). libwebsockets would check the reason only if it
    // checked UTF-8 itself, which we do per message instead.
    int peerClosed(Session *s, lws *wsi, const unsigned char *p, size_t len) {
        PeerClose close = checkPeerClose(p, len);
        Session::Closing &c = s->closingInfo();
        if (close.valid) {
            c.peerClosed = true;
            c.peerCode = close.code;
            c.peerReason = std::move(close.reason);
            return 0;
        }
        // $disconnect reports the failure we answered with, not the peer's malformed frame.
        s->closeRequested = true;
        c.code = close.failWith;
        c.reason = close.fault;
        lws_close_reason(wsi, static_cast<lws_close_status>(close.failWith),
                         reinterpret_cast<unsigned char *>(const_cast<char *>(close.fault)), std::strlen(close.fault));
        return -1;
    }

    ConnectionRow rowOf(Session *s) {
        ConnectionRow row;
        row.connectionId = s->id;
        row.nodeId = settings.nodeId;
        row.connectedAtMs = s->live->info.connectedAtMs;
        row.lastActiveAtMs = row.connectedAtMs;
        row.sourceIp = s->live->info.sourceIp;
        row.userAgent = s->live->info.userAgent;
        row.headersJson = multiValueJson(s->live->info.headers);
        row.queryJson = multiValueJson(parseQueryString(s->live->info.rawQuery));
        row.authorizerJson = s->live->info.authorizerJson;
        return row;
    }

    void established(Session *s, lws *wsi) {
        s->wsi = wsi;
        s->state = Session::State::Open;
        stopHandshakeWatchers(s);
        s->upgrade.reset();  // the 101 has its subprotocol header by now
        s->live->upgraded.store(true);
        s->lastTouchMs = s->live->info.connectedAtMs;
        if (s->rowStored) {
            // Written before $connect ran; what the authorizer or $connect added is written now.
            if (!s->live->info.authorizerJson.empty()) store.insert(rowOf(s));
        } else {
            store.insert(rowOf(s));
            s->rowStored = true;
        }
        // Only $connect's event, its authorizer and a proxy backend see the headers, and all of them are
        // done: an idle connection need not carry them (no other thread reads them from here on).
        std::vector<std::pair<std::string, std::string>>().swap(s->live->info.headers);
        log::debug("connected", {log::Field("connectionId", s->id), log::Field("sourceIp", s->live->info.sourceIp)});
        startTimers(s);
        if (s->closeRequested) {  // closed while $connect ran (DELETE, a slow consumer): close now, with a deadline
            armCloseDeadline(s);
            lws_callback_on_writable(wsi);
        } else if (draining) {
            requestClose(s, 1001, "Going away");
        } else if (!s->out.empty()) {
            lws_callback_on_writable(wsi);
        }
    }

    int receive(Session *s, lws *wsi, const char *in, size_t len) {
        if (s->state != Session::State::Open) return 0;
        if (lws_is_first_fragment(wsi)) {
            s->rx.clear();
            s->rxBinary = lws_frame_is_binary(wsi) != 0;
        }
        size_t frameLeft = lws_remaining_packet_payload(wsi);
        bool frameStarts = !s->inFrame;
        s->inFrame = frameLeft != 0;
        bool messageEnds = lws_is_final_fragment(wsi) && frameLeft == 0;
        // With permessage-deflate `len` is inflated bytes and only what is left of the frame counts the wire.
        size_t wireBytes = frameLeft + (s->deflate ? 0 : len);
        if (frameStarts && !s->rxTooBig && table && wireBytes > table->config.limits.maxFrameBytes) {
            // Over the frame limit on the wire (AWS: 32 KiB): the same 1009 as an oversized message.
            s->rxTooBig = true;
            s->rxDiscarded = len;
            std::string().swap(s->rx);
            return messageEnds ? closeTooBig(s, wsi) : 0;
        }
        if (s->rxTooBig) {
            if (s->closeRequested) return 0;  // closing: what libwebsockets still inflates is dropped
            s->rxDiscarded += len;
            return messageEnds || s->rxDiscarded > kMaxDiscardBytes ? closeTooBig(s, wsi) : 0;
        }
        size_t limit = table ? table->config.limits.maxMessageBytes : 131072;
        if (s->rx.size() + len > limit) {
            // The rest of the message is read and dropped before closing: a socket closed with unread
            // bytes sends a TCP reset, and the client would see 1006 instead of our 1009.
            s->rxTooBig = true;
            s->rxDiscarded = s->rx.size() + len;
            std::string().swap(s->rx);
            // A compressed message closes at once: its remaining wire bytes are few, but inflating them (a
            // "deflate bomb" of up to 16 MiB) would hold this thread's other connections back.
            return messageEnds || s->deflate ? closeTooBig(s, wsi) : 0;
        }
        // A message's first chunk reserves its whole frame: one allocation, and no copies while it grows.
        if (s->rx.empty() && frameLeft) {
            if (s->rx.capacity() == 0 && !spareBuffers.empty()) {
                s->rx = std::move(spareBuffers.back());
                spareBuffers.pop_back();
            }
            s->rx.reserve(std::min(limit, len + frameLeft));
        }
        s->rx.append(in, len);
        host.metrics.bytesIn.fetch_add(len, std::memory_order_relaxed);
        if (!messageEnds) return 0;
        if (s->inflateInput) s->inflateInput->trim();  // nothing is left to inflate once a message has ended
        // UTF-8 is checked here, over the whole message, rather than by libwebsockets byte by byte (which
        // cost a fifth of the time of a 16 KiB echo); a character split across frames is then fine too.
        // A JSON body is checked by the route selector in the same pass that selects its route.
        bool proxied = s->backend != nullptr;
        bool scannedAsUtf8 = false;
        const CompiledRoute *route = table && !proxied ? table->route(s->rx, s->rxBinary, scratchKey, &scannedAsUtf8) : nullptr;
        if (!s->rxBinary && !scannedAsUtf8 && !isValidUtf8(s->rx.data(), s->rx.size())) return closeInvalidUtf8(s, wsi);
        dispatchMessage(s, route);
        return 0;
    }

    int closeInvalidUtf8(Session *s, lws *wsi) {
        static const char kReason[] = "Invalid UTF-8 in a text message";
        std::string().swap(s->rx);
        return closeFromReceive(s, wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, kReason);
    }

    // Closes from inside LWS_CALLBACK_RECEIVE. Returning -1 there closes at once; but while libwebsockets
    // is still inflating a compressed message it drops that return, and the connection would hang. So a
    // permessage-deflate connection closes from its next WRITEABLE instead, as requestClose does.
    int closeFromReceive(Session *s, lws *wsi, lws_close_status code, const char *reason) {
        requestCloseNow(s, static_cast<int>(code), reason);
        if (s->deflate) {
            lws_rx_flow_control(wsi, 0);  // nothing more is read from a connection that is closing
            lws_callback_on_writable(wsi);
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);  // a peer that never reads is dropped
            armCloseDeadline(s);  // and by us, should libwebsockets not get to it (it may still be inflating)
            return 0;
        }
        lws_close_reason(wsi, code, reinterpret_cast<unsigned char *>(const_cast<char *>(reason)), std::strlen(reason));
        return -1;
    }

    // An access-log line for an event the gateway answered itself (no handler ran).
    void logGatewayAnswer(const char *eventType, std::string_view connectionId, std::string_view routeKey, int status,
                          std::string_view sourceIp, std::string_view userAgent, std::string_view error,
                          std::string_view requestId = {}, int disconnectCode = 0) {
        if (!host.accessLog) return;
        std::string generated = requestId.empty() ? newRequestId() : std::string();
        AccessEntry e;
        e.eventType = eventType;
        e.requestId = requestId.empty() ? std::string_view(generated) : requestId;
        e.connectionId = connectionId;
        e.routeKey = routeKey;
        e.status = status;
        e.sourceIp = sourceIp;
        e.userAgent = userAgent;
        e.error = error;
        e.requestTimeEpochMs = nowEpochMs();
        e.disconnectStatusCode = disconnectCode;
        host.accessLog->write(e);
    }

    int closeTooBig(Session *s, lws *wsi) { return closeFromReceive(s, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "Message too big"); }

    // `route` is what the table selected (nullptr for a proxied connection, or no route and no $default).
    void dispatchMessage(Session *s, const CompiledRoute *route) {
        // The loop's time (wall clock, taken once per iteration): no clock read per message.
        auto now = static_cast<int64_t>(ev_now(loop) * 1000.0);
        s->live->lastActiveAtMs.store(now, std::memory_order_relaxed);
        if (now - s->lastTouchMs >= kTouchIntervalMs) {
            s->lastTouchMs = now;
            store.touch(s->id, now);
        }
        bool proxied = s->backend != nullptr;
        std::string requestId = newRequestId();
        s->lastActivity = ev_now(loop);
        if (table && !withinThrottles(s, route)) {
            RouteMetrics *m = route ? route->metrics : defaultMetrics;
            queueOwnFrame(s, awsErrorFrame("Too Many Requests", s->id, requestId), false);
            s->rx.clear();
            RouteMetrics::add(m->messagesIn);
            RouteMetrics::add(m->clientErrors);
            RouteMetrics::add(m->messagesOut);
            logGatewayAnswer("MESSAGE", s->id, route ? std::string_view(route->key) : std::string_view("$default"), 429,
                             s->live->info.sourceIp, s->live->info.userAgent, "Too Many Requests", requestId);
            return;
        }
        if (proxied) {
            forwardToBackend(s);
            return;
        }
        if (!route) {
            queueOwnFrame(s, awsErrorFrame("Forbidden", s->id, requestId), false);
            s->rx.clear();
            RouteMetrics::add(defaultMetrics->messagesIn);
            RouteMetrics::add(defaultMetrics->clientErrors);
            RouteMetrics::add(defaultMetrics->messagesOut);
            logGatewayAnswer("MESSAGE", s->id, "$default", 403, s->live->info.sourceIp, s->live->info.userAgent, "Forbidden",
                             requestId);
            return;
        }
        RouteMetrics::add(route->metrics->messagesIn);
        Invocation inv;
        inv.table = table;
        inv.route = route;
        inv.connection = s->live;
        inv.type = WSGW_MESSAGE;
        inv.body = std::move(s->rx);
        s->rx = std::string();
        inv.binary = s->rxBinary;
        inv.requestId = std::move(requestId);
        inv.messageId = newRequestId();
        inv.requestTimeMs = now;
        inv.pendingBytes = inv.body.size();
        inv.pendingCounted = true;
        s->live->addPending(inv.pendingBytes);
        host.metrics.pendingBytes.fetch_add(static_cast<int64_t>(inv.pendingBytes), std::memory_order_relaxed);
        invoker().submit(laneOf(s), std::move(inv), false);  // woken once per loop iteration (onPrepare)
        if (table) {
            const Limits &limits = table->config.limits;
            if (s->live->pendingAtBound(limits.maxPendingMessages, limits.maxPendingBytes)) pauseReading(s, limits);
        }
    }

    // SPEC section 10, receive side: the lane is at a bound, so the socket is not read and TCP holds the client
    // back. The worker that brings the lane below half asks for the resume (Command::Kind::Resume).
    void pauseReading(Session *s, const Limits &limits) {
        if (s->rxFlowOff || !s->wsi) return;
        s->rxFlowOff = true;
        s->live->readPaused.store(true, std::memory_order_release);
        lws_rx_flow_control(s->wsi, 0);
        host.metrics.readsPaused.fetch_add(1, std::memory_order_relaxed);
        // The workers may have emptied the lane before the flag was up: then nobody else would resume.
        if (s->live->pendingBelowHalf(limits.maxPendingMessages, limits.maxPendingBytes) &&
            s->live->readPaused.exchange(false, std::memory_order_acq_rel))
            resumeReading(s);
    }

    void resumeReading(Session *s) {
        if (!s->rxFlowOff || s->live->readPaused.load(std::memory_order_acquire) || !s->wsi) return;
        s->rxFlowOff = false;
        if (!s->closeRequested) lws_rx_flow_control(s->wsi, 1);
    }

    // The API's, the route's and this connection's token buckets, in that order; false: over a limit.
    bool withinThrottles(Session *s, const CompiledRoute *route) {
        double now = ev_now(loop);
        if (!table->throttle.take(now)) return false;
        if (!route) return true;
        if (!route->throttle.take(now)) return false;
        if (!route->connectionThrottle.enabled()) return true;
        if (!s->routeBuckets) s->routeBuckets = std::make_unique<std::unordered_map<std::string, TokenBucket>>();
        auto it = s->routeBuckets->find(route->key);
        if (it == s->routeBuckets->end()) it = s->routeBuckets->emplace(route->key, TokenBucket(route->connectionThrottle)).first;
        return it->second.take(now);
    }

    // Idle timeout and lifetime (AWS: 10 minutes, 2 hours; both close with 1001) and a JWT's expiry (1008).
    void startTimers(Session *s) {
        double now = ev_now(loop);
        s->lastActivity = now;
        if (!table) return;
        const Limits &limits = table->config.limits;
        double lived = static_cast<double>(nowEpochMs() - s->live->info.connectedAtMs) / 1000.0;
        s->lifetimeEndsAt = now + std::max(0.0, limits.maxConnectionSeconds - lived);
        if (int64_t exp = s->live->info.admission ? s->live->info.admission->expiresAt : 0)
            s->expiresAt = now + std::max(0.0, static_cast<double>(exp * 1000 - nowEpochMs()) / 1000.0);
        ev_timer_init(&s->deadlineTimer, onDeadline, nextDeadline(s, limits.idleTimeoutSeconds) - now, 0.);
        s->deadlineTimer.data = s;
        ev_timer_start(loop, &s->deadlineTimer);
    }

    void stopTimers(Session *s) { ev_timer_stop(loop, &s->deadlineTimer); }

    // The earliest of the idle deadline, the end of the lifetime and the credential's expiry (loop time).
    static double nextDeadline(const Session *s, double idleLimit) {
        double at = std::min(s->lastActivity + idleLimit, s->lifetimeEndsAt);
        return s->expiresAt > 0 ? std::min(at, s->expiresAt) : at;
    }

    // Idle timeout and lifetime (AWS: 10 minutes, 2 hours; both close with 1001) and a JWT's expiry (1008).
    // The idle deadline moves with every message; the timer is set again for what is left when it fires
    // rather than restarted per message, so a message costs one store.
    static void onDeadline(struct ev_loop *l, ev_timer *w, int) {
        auto *s = static_cast<Session *>(w->data);
        Impl *impl = s->owner;
        if (s->closeRequested) {
            impl->dropAtDeadline(s);
            return;
        }
        double now = ev_now(l) + 0.001;
        double idleLimit = impl->table ? impl->table->config.limits.idleTimeoutSeconds : 600;
        if (s->expiresAt > 0 && now >= s->expiresAt) {
            log::info("credential expired", {log::Field("connectionId", s->id)});
            impl->requestClose(s, 1008, "Token expired");
        } else if (now >= s->lifetimeEndsAt) {
            log::info("connection lifetime reached", {log::Field("connectionId", s->id)});
            impl->requestClose(s, 1001, "Going away");
        } else if (now >= s->lastActivity + idleLimit) {
            log::info("idle timeout", {log::Field("connectionId", s->id)});
            impl->requestClose(s, 1001, "Going away");
        } else {
            ev_timer_set(w, nextDeadline(s, idleLimit) - ev_now(l), 0.);
            ev_timer_start(l, w);
        }
    }

    // A frame made on this thread (an error frame, a proxied backend message): reserved here.
    void queueOwnFrame(Session *s, std::string bytes, bool binary) {
        if (s->closeRequested) return;
        switch (s->live->reserveSend(bytes.size(), host.maxSendQueueBytes.load(std::memory_order_relaxed))) {
        case LiveConnection::Reserve::Queued:
            queueReserved(s, Payload(std::move(bytes)), binary);
            break;
        case LiveConnection::Reserve::Overflowed:
            closeSlowConsumer(s);
            break;
        case LiveConnection::Reserve::Gone:
            break;
        }
    }

    // A frame whose bytes the sender has reserved in live->sendQueueBytes (LiveConnection::reserveSend).
    void queueReserved(Session *s, Payload &&payload, bool binary) {
        size_t len = payload.size();
        if (s->closeRequested) {  // closing: the frame is not sent, and its reservation is given back
            s->live->releaseSend(len);
            return;
        }
        s->lastActivity = ev_now(loop);
        host.metrics.sendQueueBytes.fetch_add(static_cast<int64_t>(len), std::memory_order_relaxed);
        s->out.push(OutFrame{std::move(payload), binary});
        if (s->state == Session::State::Open && s->out.frames() == 1) lws_callback_on_writable(s->wsi);
    }

    // The frames still queued are dropped with the connection: their bytes leave the gauges.
    void dropQueued(Session *s) {
        releaseHeldByLws(s);
        size_t dropped = s->out.clear();
        if (!dropped) return;
        host.metrics.sendQueueBytes.fetch_sub(static_cast<int64_t>(dropped), std::memory_order_relaxed);
        if (s->live) s->live->releaseSend(dropped);
    }

    void closeSlowConsumer(Session *s) {
        host.metrics.slowConsumerCloses.fetch_add(1, std::memory_order_relaxed);
        log::warn("slow consumer: send queue over maxSendQueueBytes, closing",
                  {log::Field("connectionId", s->id), log::Field("queuedBytes", static_cast<uint64_t>(s->out.bytes()))});
        requestClose(s, 1008, kSlowConsumerReason);
    }

    // SPEC section 10: a close has 5 s. The deadline timer (idle, lifetime, expiry until now) is set for it.
    void armCloseDeadline(Session *s) {
        if (s->state != Session::State::Open) return;  // established() arms it
        ev_timer_stop(loop, &s->deadlineTimer);
        ev_timer_set(&s->deadlineTimer, kCloseDeadlineSeconds, 0.);
        ev_timer_start(loop, &s->deadlineTimer);
    }

    // The close frame was not taken in time (a client that does not read): the TCP connection is dropped;
    // libwebsockets reports it CLOSED, which runs $disconnect with the close code we chose.
    void dropAtDeadline(Session *s) {
        if (!s->wsi) return;
        log::info("close deadline passed: dropping the connection",
                  {log::Field("connectionId", s->id), log::Field("queuedBytes", static_cast<uint64_t>(s->out.bytes()))});
        dropQueued(s);
        // A reset, not a FIN: a FIN would wait behind the bytes the client is not reading, and the kernel
        // would hold them (and the client would see an open connection) for minutes.
        int fd = lws_get_socket_fd(s->wsi);
        if (fd >= 0) {
            linger hard{1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
            // Shut both ways: the socket reports a hang-up even while its reading is paused, so
            // libwebsockets closes it (with the linger above, as a reset) even if its own timeout does not.
            ::shutdown(fd, SHUT_RDWR);
        }
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }

    // Bytes libwebsockets keeps for a connection still count against its send queue (SPEC section 10) until
    // libwebsockets has written them, which it has when it calls WRITEABLE again with nothing held.
    void holdForLibwebsockets(Session *s, size_t bytes) {
        s->heldByLws += bytes;
        s->live->sendQueueBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
        host.metrics.sendQueueBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    }

    void releaseHeldByLws(Session *s) {
        if (!s->heldByLws) return;
        if (s->live) s->live->releaseSend(s->heldByLws);
        host.metrics.sendQueueBytes.fetch_sub(static_cast<int64_t>(s->heldByLws), std::memory_order_relaxed);
        s->heldByLws = 0;
    }

    int writeable(Session *s, lws *wsi) {
        if (s->heldByLws && !lws_partial_buffered(wsi)) releaseHeldByLws(s);
        if (!s->out.empty()) {
            SendBatch batch;
            size_t frames = writer.gather(s->out, batch);
            long handed = writer.send(wsi, batch);
            if (handed < 0) return -1;
            size_t sent = s->out.popSent(frames, [this](std::string &&buffer) { recycle(std::move(buffer)); });
            host.metrics.bytesOut.fetch_add(sent, std::memory_order_relaxed);
            host.metrics.sendQueueBytes.fetch_sub(static_cast<int64_t>(sent), std::memory_order_relaxed);
            s->live->releaseSend(sent);
            if (handed > 0) {
                holdForLibwebsockets(s, static_cast<size_t>(handed));
                if (s->out.empty()) lws_callback_on_writable(wsi);  // to learn when libwebsockets has sent it
            }
        }
        if (s->backendPaused && s->out.bytes() < std::min<size_t>(BackendLink::kLowWater, host.maxSendQueueBytes.load(std::memory_order_relaxed) / 8) &&
            s->backend) {
            s->backendPaused = false;
            s->backend->pauseReading(false);
        }
        if (!s->out.empty()) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        if (s->closeRequested) {
            Session::Closing &c = s->closingInfo();
            lws_close_reason(wsi, static_cast<lws_close_status>(c.code), reinterpret_cast<unsigned char *>(c.reason.data()),
                             c.reason.size());
            return -1;
        }
        return 0;
    }

    // Closes after the frames already queued have been written, or drops the connection when they have not
    // been within kCloseDeadlineSeconds.
    void requestClose(Session *s, int code, std::string reason) {
        if (s->closeRequested) return;
        s->closeRequested = true;
        s->closingInfo().code = code;
        s->closingInfo().reason = std::move(reason);
        if (s->state == Session::State::Open) {
            armCloseDeadline(s);
            lws_callback_on_writable(s->wsi);
        }
    }

    void requestCloseNow(Session *s, int code, std::string reason) {
        dropQueued(s);
        s->closeRequested = true;
        s->closingInfo().code = code;
        s->closingInfo().reason = std::move(reason);
    }

    // The connection is gone: forget it everywhere and run its $disconnect (it was accepted).
    void finish(Session *s) {
        if (s->state == Session::State::Finished) return;
        s->state = Session::State::Finished;
        stopTimers(s);
        dropQueued(s);
        releaseIp(s);
        if (s->backendConnect) ev_timer_stop(loop, &s->backendConnect->timer);
        if (adopting == s) adopting = nullptr;  // lws may still call back for this wsi; it is no longer ours
        registry.remove(s->id);
        forgetConnectionGroups(host, s->id);
        bool disconnectRuns = table && table->disconnect;
        if (!disconnectRuns) store.remove(s->id);  // else once $disconnect has run (Invocation::removeRowAfter)
        int code;
        std::string reason;
        if (s->closing && s->closing->peerClosed) {
            code = s->closing->peerCode ? s->closing->peerCode : 1005;
            reason = s->closing->peerCode ? s->closing->peerReason : "Client-side close frame status not set";
        } else if (s->closeRequested) {
            code = s->closingInfo().code;
            reason = s->closingInfo().reason;
        } else {
            code = 1006;
            reason = "Connection closed abnormally";
        }
        if (s->backend) {  // the client left: the backend hears the same close
            bool sendable = code >= 1000 && code != 1005 && code != 1006 && code != 1015 && code < 5000;
            s->backend->detach();
            s->backend->close(sendable ? code : 1001, sendable ? reason : std::string("Going away"));
            s->backend = nullptr;
        }
        if (table && table->disconnect) {
            Invocation inv;
            inv.table = table;
            inv.route = table->disconnect;
            inv.connection = s->live;
            inv.type = WSGW_DISCONNECT;
            inv.requestId = newRequestId();
            inv.requestTimeMs = nowEpochMs();
            inv.disconnectCode = code;
            inv.disconnectReason = reason;
            inv.removeRowAfter = &store;
            invoker().submit(laneOf(s), std::move(inv), false);
        } else {
            logGatewayAnswer("DISCONNECT", s->id, "$disconnect", 200, s->live->info.sourceIp, s->live->info.userAgent, {}, {},
                             code);
        }
        log::debug("disconnected", {log::Field("connectionId", s->id), log::Field("code", code), log::Field("reason", reason)});
        eraseSession(s);
        if (draining && sessions.empty()) ev_break(loop, EVBREAK_ALL);
    }

    // ---- the command queue from other threads ---------------------------------------------------------

    static void onWake(struct ev_loop *, ev_async *w, int) { static_cast<Impl *>(w->data)->drainCommands(); }
    static void onPrepare(struct ev_loop *, ev_prepare *w, int) {
        auto *m = static_cast<Impl *>(w->data);
        if (m->self->invoker_) m->self->invoker_->wakeDeferred();
    }

    void drainCommands() {
        std::shared_ptr<const RouteTable> swapIn;
        std::promise<std::shared_ptr<const RouteTable>> *swapped = nullptr;
        {
            std::lock_guard lock(commandMutex);
            commandsInHand.swap(commands);
            swapIn = std::move(incomingTable);
            std::swap(swapped, tableSwapped);
        }
        if (swapped) {
            std::swap(table, swapIn);
            applyLimits(host, table->config.limits);
            swapped->set_value(std::move(swapIn));
        }
        for (Command &c : commandsInHand) {
            if (c.kind == Command::Kind::Drain) {
                beginDrain();
                continue;
            }
            if (c.kind == Command::Kind::ConnectDecided) {
                decideConnect(c.connectionId.view(), c.code, c.data);
                continue;
            }
            if (c.kind == Command::Kind::RowNotDurable) {
                rowNotDurable(c.connectionId.view());
                continue;
            }
            auto it = sessions.find(c.connectionId.view());
            if (it == sessions.end()) continue;  // closed meanwhile: the push is dropped, as GONE would say (its
                                                 // reservation went with the connection)
            Session *s = it->second.get();
            if (s->state == Session::State::Finished || s->state == Session::State::ReadingHead) continue;
            if (c.kind == Command::Kind::Send) {
                queueReserved(s, c.shared ? Payload(std::move(c.shared)) : Payload(std::move(c.data)), c.binary);
            } else if (c.kind == Command::Kind::Resume) {
                resumeReading(s);
            } else {
                requestClose(s, c.code, std::move(c.data));
            }
        }
        commandsInHand.clear();
    }

    // ---- shutdown ---------------------------------------------------------------------------------------

    static void onSignal(struct ev_loop *, ev_signal *w, int) {
        auto *impl = static_cast<Impl *>(w->data);
        if (impl->drainHook && !impl->draining) impl->drainHook();
        impl->beginDrain();
    }
    static void onHangup(struct ev_loop *, ev_signal *w, int) {
        auto *impl = static_cast<Impl *>(w->data);
        log::info("SIGHUP: reloading");
        if (impl->onReloadRequest) impl->onReloadRequest();
    }

    void beginDrain() {
        if (draining) return;
        draining = true;
        log::info("draining", {log::Field("connections", static_cast<uint64_t>(sessions.size()))});
        ev_io_stop(loop, &acceptWatcher);
        acceptBackoff.stop();
        if (listenFd >= 0) {
            ::close(listenFd);
            listenFd = -1;
        }
        std::vector<Session *> all;
        for (auto &[id, s] : sessions) all.push_back(s.get());
        for (Session *s : all) {
            if (s->state == Session::State::ReadingHead) dropUnaccepted(s, nullptr);
            else if (s->state == Session::State::Open) requestClose(s, 1001, "Going away");
            // Connecting sessions finish their $connect; an accepted one is closed right after upgrade.
        }
        if (sessions.empty()) {
            ev_break(loop, EVBREAK_ALL);
            return;
        }
        ev_timer_init(&drainTimer, onDrainTimeout, settings.drainSeconds, 0.);
        drainTimer.data = this;
        ev_timer_start(loop, &drainTimer);
    }

    static void onDrainTimeout(struct ev_loop *l, ev_timer *w, int) {
        auto *impl = static_cast<Impl *>(w->data);
        log::warn("drain timeout: closing the remaining connections",
                  {log::Field("connections", static_cast<uint64_t>(impl->sessions.size()))});
        ev_break(l, EVBREAK_ALL);
    }
};

void applyLimits(HostContext &host, const Limits &limits) {
    host.maxMessageBytes.store(limits.maxMessageBytes);
    host.maxSendQueueBytes.store(limits.maxSendQueueBytes);
    host.maxPendingMessages.store(limits.maxPendingMessages);
    host.maxPendingBytes.store(limits.maxPendingBytes);
}

// lws logs every adoption with a readbuf at error level; those lines are noise for us.
static void lwsLogEmit(int level, const char *line) {
    if (std::strstr(line, "calling service") || std::strstr(line, "deferring handling ah")) return;
    std::string text = line;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    log::write(level & LLL_ERR ? log::Level::Error : log::Level::Warn, "libwebsockets",
               {log::Field("detail", text)});
}

void CommandSink::post(Command &&c) {
    std::lock_guard lock(mutex);
    if (impl) impl->post(std::move(c));
}

Listener::Listener(ListenerSettings settings, ConnectionRegistry &registry, ConnectionStore &store, HostContext &host)
    : impl_(std::make_unique<Impl>(this, std::move(settings), registry, store, host)) {
    impl_->commandSink->impl = impl_.get();
}

Listener::~Listener() {
    {
        std::lock_guard lock(impl_->commandSink->mutex);
        impl_->commandSink->impl = nullptr;
    }
    if (impl_->context) lws_context_destroy(impl_->context);
    impl_->tls.reset();  // its relays' watchers live on the loop
    if (impl_->listenFd >= 0) ::close(impl_->listenFd);
    if (impl_->loop) ev_loop_destroy(impl_->loop);
}

void Listener::setReloadRequest(std::function<void()> request) { impl_->onReloadRequest = std::move(request); }

void Listener::setDrainHook(std::function<void()> hook) { impl_->drainHook = std::move(hook); }

void Listener::setListenPort(int port) { impl_->settings.listen.port = port; }

void Listener::requestDrain() { impl_->post(Command{Command::Kind::Drain, {}, {}, false, 0}); }

bool IpConnectionCounts::tryAdd(const std::string &ip, size_t max) {
    std::lock_guard lock(mutex_);
    size_t &count = counts_[ip];
    if (count >= max) {
        if (count == 0) counts_.erase(ip);
        return false;
    }
    ++count;
    return true;
}

void IpConnectionCounts::release(const std::string &ip) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(ip);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
}

std::shared_ptr<const RouteTable> Listener::replaceRouteTable(std::shared_ptr<const RouteTable> table) {
    std::promise<std::shared_ptr<const RouteTable>> swapped;
    auto old = swapped.get_future();
    {
        std::lock_guard lock(impl_->commandMutex);
        impl_->incomingTable = std::move(table);
        impl_->tableSwapped = &swapped;
    }
    ev_async_send(impl_->loop, &impl_->wakeWatcher);
    // The loop answers within one turn; it stops turning only when the gateway stops.
    if (old.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        std::lock_guard lock(impl_->commandMutex);
        if (impl_->tableSwapped == &swapped) {
            impl_->tableSwapped = nullptr;
            return std::move(impl_->incomingTable);  // never installed: the caller keeps the old table
        }
    }
    return old.get();
}

void Listener::setRouteTable(std::shared_ptr<const RouteTable> table) {
    impl_->table = std::move(table);
    if (impl_->table) applyLimits(impl_->host, impl_->table->config.limits);
}

std::string Listener::boundAddress() const { return impl_->boundAddress; }

bool Listener::tlsEnabled() const { return impl_->tls != nullptr; }

bool Listener::accepting() const { return impl_->listenFd >= 0 && !impl_->draining; }

struct ev_loop *Listener::loop() const { return impl_->loop; }

std::string Listener::start() {
    Impl &m = *impl_;
    m.loop = ev_loop_new(static_cast<unsigned>(EVFLAG_AUTO) | static_cast<unsigned>(EVBACKEND_EPOLL));
    if (!m.loop) return "cannot create the event loop (libev)";

    // The listening socket is ours (not lws's) so that we read the upgrade head before lws sees it.
    std::string error;
    m.listenFd = openListeningSocket(m.settings.listen, "--listen", &m.boundAddress, &error, m.settings.reusePort);
    if (m.listenFd < 0) return error;

    if (!m.settings.tlsCert.empty()) {
        auto made = TlsTerminator::create(m.loop, m.settings.tlsCert, m.settings.tlsKey,
                                          [&m](int fd, const std::string &peer) { m.beginHandshake(fd, peer); });
        if (auto *err = std::get_if<std::string>(&made)) return "--tls-cert/--tls-key: " + *err;
        m.tls = std::move(std::get<std::unique_ptr<TlsTerminator>>(made));
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, lwsLogEmit);
    static const lws_protocols protocols[] = {
        // A 64 KiB receive buffer: a large message arrives in few callbacks. It costs little resident memory
        // per idle connection, as only the pages a message touched are resident.
        {"wsgw", Impl::callback, 0, kRxBufferBytes, 0, nullptr, 0},
        {"wsgw-backend",
         [](lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
             return BackendLink::callback(wsi, static_cast<int>(reason), user, in, len);
         },
         0, 4096, 0, nullptr, 0},
        {nullptr, nullptr, 0, 0, 0, nullptr, 0},
    };
    lws_context_creation_info info{};
    // TLS is initialised for proxy backends reached over wss:// (lws is a client there; wss:// towards our
    // own clients is the TlsTerminator's).
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBEV;
    // OpenSSL's global init once per process: done again by a second context, its client TLS context
    // (the system CAs, ~700 KB) was never freed. Every vhost still sets it, for wss:// proxy backends.
    if (m.settings.threadIndex == 0) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    void *foreign[1] = {m.loop};
    info.foreign_loops = foreign;
    info.user = &m;
    info.max_http_header_data = static_cast<unsigned short>(kMaxHeadBytes + 1024);
    info.max_http_header_pool = 64;
    info.pt_serv_buf_size = kRxBufferBytes;  // what one read() may take, shared by all connections of the thread
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    setCompressedInputSlot(&Impl::compressedInputOf);
    m.context = lws_create_context(&info);
    if (!m.context) return "cannot create the libwebsockets context (is libwebsockets-evlib-ev installed?)";
    lws_context_creation_info vinfo{};
    vinfo.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vinfo.protocols = protocols;
    vinfo.vhost_name = "public";
    // permessage-deflate (RFC 7692): libwebsockets inflates what a client compressed. What we send leaves
    // uncompressed (RSV1 clear), which the extension allows for any message; LWS_CALLBACK_CONFIRM_EXTENSION_OKAY
    // declines it for "compression": false and for proxied connections (their frames pass through as they are).
    static const lws_extension kExtensions[] = {
        {"permessage-deflate", permessageDeflateExtension, "permessage-deflate; client_max_window_bits"},
        {nullptr, nullptr, nullptr},
    };
    vinfo.extensions = kExtensions;
    vinfo.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;  // UTF-8 is checked per message in receive()
    if (!m.settings.backendCa.empty()) vinfo.client_ssl_ca_filepath = m.settings.backendCa.c_str();
    vinfo.timeout_secs = 30;
    // No libwebsockets "validity" pings (its default: ping after 300 s without traffic, hang up at 310 s).
    // They cost a timer per connection in a sorted list that each new connection walks from the head, so
    // opening one cost O(n) (83 % of the gateway's CPU at 15k connections). Idle connections are closed by
    // our own idleTimeoutSeconds, as AWS does, and AWS sends no pings either.
    static const lws_retry_bo_t kNoValidityChecks{};
    vinfo.retry_and_idle_policy = &kNoValidityChecks;
    m.vhost = lws_create_vhost(m.context, &vinfo);
    if (!m.vhost) return "cannot create the libwebsockets vhost";

    ev_io_init(&m.acceptWatcher, Impl::onAccept, m.listenFd, EV_READ);
    m.acceptWatcher.data = &m;
    ev_io_start(m.loop, &m.acceptWatcher);
    m.acceptBackoff.attach(m.loop, &m.acceptWatcher);
    ev_prepare_init(&m.prepareWatcher, Impl::onPrepare);
    m.prepareWatcher.data = &m;
    ev_prepare_start(m.loop, &m.prepareWatcher);
    ev_async_init(&m.wakeWatcher, Impl::onWake);
    m.wakeWatcher.data = &m;
    ev_async_start(m.loop, &m.wakeWatcher);
    if (m.settings.threadIndex == 0) {  // a signal is watched by one loop only
        ev_signal_init(&m.sigterm, Impl::onSignal, SIGTERM);
        m.sigterm.data = &m;
        ev_signal_start(m.loop, &m.sigterm);
        ev_signal_init(&m.sighup, Impl::onHangup, SIGHUP);
        m.sighup.data = &m;
        ev_signal_start(m.loop, &m.sighup);
        ev_signal_init(&m.sigint, Impl::onSignal, SIGINT);
        m.sigint.data = &m;
        ev_signal_start(m.loop, &m.sigint);
    }
    return {};
}

void Listener::run() {
    Impl &m = *impl_;
    ev_run(m.loop, 0);
    // Anything still open after the drain deadline is closed now; lws reports each as CLOSED, which
    // queues its $disconnect.
    ev_async_stop(m.loop, &m.wakeWatcher);
    ev_prepare_stop(m.loop, &m.prepareWatcher);
    ev_signal_stop(m.loop, &m.sigterm);
    ev_signal_stop(m.loop, &m.sigint);
    ev_signal_stop(m.loop, &m.sighup);
    ev_timer_stop(m.loop, &m.drainTimer);
    std::vector<Session *> rest;
    for (auto &[id, s] : m.sessions) rest.push_back(s.get());
    for (Session *s : rest) {
        if (s->state == Session::State::ReadingHead || s->state == Session::State::Connecting) m.dropUnaccepted(s, nullptr);
    }
    if (m.context) {
        lws_context_destroy(m.context);
        m.context = nullptr;
    }
    rest.clear();
    for (auto &[id, s] : m.sessions) rest.push_back(s.get());
    for (Session *s : rest) m.finish(s);
}

void Listener::sendFrame(const std::string &connectionId, std::string data, bool binary) {
    impl_->post(Command{Command::Kind::Send, InlineId(connectionId), std::move(data), binary, 0});
}

void Listener::sendShared(const std::string &connectionId, std::shared_ptr<const std::string> payload, bool binary) {
    impl_->post(Command{Command::Kind::Send, InlineId(connectionId), {}, binary, 0, std::move(payload)});
}

void Listener::resumeReading(const std::string &connectionId) {
    impl_->post(Command{Command::Kind::Resume, InlineId(connectionId), {}, false, 0});
}

void Listener::closeConnection(const std::string &connectionId, int code, std::string reason) {
    impl_->post(Command{Command::Kind::Close, InlineId(connectionId), std::move(reason), false, code});
}

void Listener::connectDecided(const std::string &connectionId, int status, std::string body) {
    impl_->post(Command{Command::Kind::ConnectDecided, InlineId(connectionId), std::move(body), false, status});
}

}  // namespace wsgw
