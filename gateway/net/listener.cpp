// Owns: the Listener's public API and the parts' assembly (see README.md here for what each part owns): the
// libev loop, the libwebsockets context and public vhost, the libwebsockets callback that hands each event
// to the part that owns it, and the teardown. The parts share one NetworkThreadState.
#include "listener.h"

#include "backend_link.h"

#include "command_queue.h"
#include "connect_flow.h"
#include "drain.h"
#include "log.h"
#include "lws_log_filter.h"
#include "message_receiver.h"
#include "network_thread_state.h"
#include "permessage_deflate.h"
#include "proxy_relay.h"
#include "session_closer.h"
#include "session_timers.h"
#include "session_writer.h"
#include "upgrade_reader.h"

#include <ev.h>
#include <libwebsockets.h>

#include <cstring>
#include <unistd.h>
#include <vector>

namespace wsgw {

namespace {

constexpr size_t kRxBufferBytes = 64 * 1024;

}  // namespace

struct Listener::Impl {
    NetworkThreadState thread;
    UpgradeReader upgradeReader{thread};
    ConnectFlow connectFlow{thread};
    ProxyRelay proxyRelay{thread};
    MessageReceiver receiver{thread};
    SessionWriter writer{thread};
    SessionTimers timers{thread};
    SessionCloser closer{thread};
    CommandQueue commands{thread};
    Drain drain{thread};
    ev_prepare prepareWatcher{};  // before the loop sleeps: wake the workers for what this iteration read

    Impl(Listener *self, ListenerSettings settings, ConnectionRegistry &registry, ConnectionStore &store, HostContext &host)
        : thread(std::move(settings), registry, store, host, self->invoker_) {
        thread.upgradeReader = &upgradeReader;
        thread.connectFlow = &connectFlow;
        thread.proxyRelay = &proxyRelay;
        thread.receiver = &receiver;
        thread.writer = &writer;
        thread.timers = &timers;
        thread.closer = &closer;
        thread.commands = &commands;
        thread.drain = &drain;
    }

    static void onPrepare(struct ev_loop *, ev_prepare *w, int) {
        auto *t = static_cast<NetworkThreadState *>(w->data);
        t->endTurn();
        if (t->hasInvoker()) t->invoker().wakeDeferred();
        t->writer->flushScheduled();
    }

    std::string createContext();
    void startWatchers();

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
        void *opaque = lws_get_opaque_user_data(wsi);
        // Not for the per-message reasons: those come only for server connections, never for a backend link.
        if (reason != LWS_CALLBACK_RECEIVE && reason != LWS_CALLBACK_SERVER_WRITEABLE && BackendLink::owns(opaque))
            return BackendLink::callback(wsi, reason, nullptr, in, len);
        auto *s = static_cast<Session *>(opaque);
        if (!s && impl->thread.adopting && reason != LWS_CALLBACK_PROTOCOL_INIT && reason != LWS_CALLBACK_PROTOCOL_DESTROY &&
            reason != LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
            s = impl->thread.adopting;
            lws_set_opaque_user_data(wsi, s);
        }
        switch (reason) {
        case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: {
            const std::shared_ptr<const RouteTable> &table = impl->thread.table;
            bool deflate = s && table && table->config.compression && !table->proxy && !s->backend;
            if (s) s->deflate = deflate;
            return deflate ? 0 : 1;
        }
        case LWS_CALLBACK_ADD_HEADERS:
            return s ? addSubprotocolHeader(s, wsi, static_cast<lws_process_html_args *>(in)) : 0;
        case LWS_CALLBACK_ESTABLISHED:
            if (s) impl->connectFlow.established(s, wsi);
            break;
        case LWS_CALLBACK_RECEIVE:
            if (s) return impl->receiver.receive(s, wsi, static_cast<const char *>(in), len);
            break;
        case LWS_CALLBACK_SERVER_WRITEABLE:
            if (s) return impl->writer.writeable(s, wsi);
            break;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
            if (s) return impl->closer.peerClosed(s, wsi, static_cast<const unsigned char *>(in), len);
            break;
        case LWS_CALLBACK_CLOSED:
        case LWS_CALLBACK_WSI_DESTROY:
            if (s) {
                lws_set_opaque_user_data(wsi, nullptr);
                impl->closer.finish(s);
            }
            break;
        default:
            break;
        }
        return 0;
    }

    // The subprotocol chosen from the client's offers goes into the 101 (lws was handed the head without them).
    static int addSubprotocolHeader(Session *s, lws *wsi, lws_process_html_args *args) {
        if (!s->upgrade || s->upgrade->subprotocol.empty()) return 0;
        auto *p = reinterpret_cast<unsigned char *>(args->p);
        unsigned char *end = p + args->max_len;
        if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char *>("sec-websocket-protocol:"),
                                        reinterpret_cast<const unsigned char *>(s->upgrade->subprotocol.data()),
                                        static_cast<int>(s->upgrade->subprotocol.size()), &p, end))
            return -1;
        args->max_len -= static_cast<int>(p - reinterpret_cast<unsigned char *>(args->p));
        args->p = reinterpret_cast<char *>(p);
        return 0;
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
    // A client's compressed data that does not inflate is the client's fault, as any bad frame is: not an
    // error of the gateway (any client could fill the error log with it, once per connection).
    if (std::strstr(line, "zlib error inflate")) {
        log::write(log::Level::Info, "a client sent compressed data that does not inflate; its connection is dropped",
                   {log::Field("detail", text)});
        return;
    }
    log::write(level & LLL_ERR ? log::Level::Error : log::Level::Warn, "libwebsockets",
               {log::Field("detail", text)});
}

Listener::Listener(ListenerSettings settings, ConnectionRegistry &registry, ConnectionStore &store, HostContext &host)
    : impl_(std::make_unique<Impl>(this, std::move(settings), registry, store, host)) {}

Listener::~Listener() {
    impl_->commands.detachSink();
    if (impl_->thread.context) lws_context_destroy(impl_->thread.context);
    impl_->upgradeReader.closeTls();  // its relays' watchers live on the loop
    impl_->upgradeReader.closeListeningSocket();
    if (impl_->thread.loop) ev_loop_destroy(impl_->thread.loop);
}

void Listener::setReloadRequest(std::function<void()> request) { impl_->drain.onReloadRequest = std::move(request); }

void Listener::setDrainHook(std::function<void()> hook) { impl_->drain.drainHook = std::move(hook); }

void Listener::setListenPort(int port) { impl_->thread.settings.listen.port = port; }

void Listener::requestDrain() { impl_->commands.post(Command{Command::Kind::Drain, {}, {}, false, 0}); }

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
    return impl_->commands.replaceTable(std::move(table));
}

void Listener::setRouteTable(std::shared_ptr<const RouteTable> table) {
    impl_->thread.table = std::move(table);
    if (!impl_->thread.table) return;
    applyLimits(impl_->thread.host, impl_->thread.table->config.limits);
    impl_->thread.clientFrameLimits = clientFrameLimitsOf(impl_->thread.table->config.limits);
}

std::string Listener::boundAddress() const { return impl_->thread.boundAddress; }

bool Listener::tlsEnabled() const { return impl_->upgradeReader.tlsEnabled(); }

bool Listener::accepting() const { return impl_->upgradeReader.listening() && !impl_->thread.draining; }

struct ev_loop *Listener::loop() const { return impl_->thread.loop; }

std::string Listener::start() {
    Impl &m = *impl_;
    m.thread.loop = ev_loop_new(static_cast<unsigned>(EVFLAG_AUTO) | static_cast<unsigned>(EVBACKEND_EPOLL));
    if (!m.thread.loop) return "cannot create the event loop (libev)";
    if (std::string error = m.upgradeReader.open(); !error.empty()) return error;
    if (std::string error = m.createContext(); !error.empty()) return error;
    m.startWatchers();
    return {};
}

std::string Listener::Impl::createContext() {
    setLwsLogLevel(LLL_ERR | LLL_WARN, lwsLogEmit);
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
    if (thread.settings.threadIndex == 0) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    void *foreign[1] = {thread.loop};
    info.foreign_loops = foreign;
    info.user = this;
    info.max_http_header_data = static_cast<unsigned short>(UpgradeReader::kMaxHeadBytes + 1024);
    info.max_http_header_pool = 64;
    info.pt_serv_buf_size = kRxBufferBytes;  // what one read() may take, shared by all connections of the thread
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    setCompressedInputSlot(&Impl::compressedInputOf);
    thread.context = lws_create_context(&info);
    if (!thread.context) return "cannot create the libwebsockets context (is libwebsockets-evlib-ev installed?)";
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
    if (!thread.settings.backendCa.empty()) vinfo.client_ssl_ca_filepath = thread.settings.backendCa.c_str();
    vinfo.timeout_secs = 30;
    // No libwebsockets "validity" pings (its default: ping after 300 s without traffic, hang up at 310 s).
    // They cost a timer per connection in a sorted list that each new connection walks from the head, so
    // opening one cost O(n) (83 % of the gateway's CPU at 15k connections). Idle connections are closed by
    // our own idleTimeoutSeconds, as AWS does, and AWS sends no pings either.
    static const lws_retry_bo_t kNoValidityChecks{};
    vinfo.retry_and_idle_policy = &kNoValidityChecks;
    thread.vhost = lws_create_vhost(thread.context, &vinfo);
    if (!thread.vhost) return "cannot create the libwebsockets vhost";
    return {};
}

void Listener::Impl::startWatchers() {
    upgradeReader.startAccepting();
    ev_prepare_init(&prepareWatcher, onPrepare);
    prepareWatcher.data = &thread;
    ev_prepare_start(thread.loop, &prepareWatcher);
    commands.start();
    if (thread.settings.threadIndex == 0) drain.watchSignals();  // a signal is watched by one loop only
}

void Listener::run() {
    Impl &m = *impl_;
    NetworkThreadState &t = m.thread;
    ev_run(t.loop, 0);
    // Anything still open after the drain deadline is closed now; lws reports each as CLOSED, which
    // queues its $disconnect.
    m.commands.stop();
    ev_prepare_stop(t.loop, &m.prepareWatcher);
    m.drain.stop();
    std::vector<Session *> rest;
    for (auto &[id, s] : t.sessions) rest.push_back(s.get());
    for (Session *s : rest) {
        if (s->state == Session::State::ReadingHead || s->state == Session::State::Connecting) m.upgradeReader.dropUnaccepted(s, nullptr);
    }
    if (t.context) {
        lws_context_destroy(t.context);
        t.context = nullptr;
    }
    rest.clear();
    for (auto &[id, s] : t.sessions) rest.push_back(s.get());
    for (Session *s : rest) m.closer.finish(s);
}

void Listener::sendFrame(const std::string &connectionId, std::string data, bool binary) {
    impl_->commands.post(Command{Command::Kind::Send, InlineId(connectionId), std::move(data), binary, 0});
}

void Listener::sendFrame(const std::shared_ptr<LiveConnection> &conn, std::string data, bool binary) {
    if (impl_->commands.sendDirect(*conn, data, binary)) return;  // an inline handler's answer
    // Without its ID: the command reaches the session through `live` (CommandQueue::run), and a worker reading
    // the ID's bytes (a heap block of their own) would take a cache miss per answer with many connections.
    Command c{Command::Kind::Send, InlineId(), std::move(data), binary, 0};
    c.live = conn;
    impl_->commands.post(std::move(c));
}

void Listener::sendShared(const std::string &connectionId, std::shared_ptr<const std::string> payload, bool binary) {
    impl_->commands.post(Command{Command::Kind::Send, InlineId(connectionId), {}, binary, 0, std::move(payload)});
}

void Listener::resumeReading(const std::string &connectionId) {
    impl_->commands.post(Command{Command::Kind::Resume, InlineId(connectionId), {}, false, 0});
}

void Listener::closeConnection(const std::string &connectionId, int code, std::string reason) {
    impl_->commands.post(Command{Command::Kind::Close, InlineId(connectionId), std::move(reason), false, code});
}

void Listener::connectDecided(const std::string &connectionId, int status, std::string body) {
    impl_->commands.post(Command{Command::Kind::ConnectDecided, InlineId(connectionId), std::move(body), false, status});
}

}  // namespace wsgw
