#include "tls_terminator.h"

#include "log.h"

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <vector>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr double kHandshakeSeconds = 10.0;

}  // namespace

struct TlsTerminator::Handshake {
    TlsTerminator *owner = nullptr;
    int fd = -1;
    SSL *ssl = nullptr;
    std::string peer;
    ev_io io{};
    ev_timer timer{};
};

std::variant<std::unique_ptr<TlsTerminator>, std::string> TlsTerminator::create(struct ev_loop *loop, const std::string &certFile,
                                                                               const std::string &keyFile, PlainConnection onPlain) {
    auto credentials = TlsCredentials::forFiles(certFile, keyFile);
    if (auto *error = std::get_if<std::string>(&credentials)) return *error;
    return std::unique_ptr<TlsTerminator>(
        new TlsTerminator(loop, std::move(std::get<std::shared_ptr<TlsCredentials>>(credentials)), std::move(onPlain)));
}

TlsTerminator::TlsTerminator(struct ev_loop *loop, std::shared_ptr<TlsCredentials> credentials, PlainConnection onPlain)
    : loop_(loop), credentials_(std::move(credentials)), onPlain_(std::move(onPlain)), pendingReads_(loop) {}

TlsTerminator::~TlsTerminator() {
    std::vector<Handshake *> all;
    for (auto &[h, owned] : handshakes_) all.push_back(h);
    for (Handshake *h : all) destroy(h, true);
}

void TlsTerminator::onIo(struct ev_loop *, ev_io *w, int) {
    auto *h = static_cast<Handshake *>(w->data);
    h->owner->step(h);
}

void TlsTerminator::adopt(int fd, const std::string &peer) {
    // Without it OpenSSL's second TLS 1.3 session ticket waited for the client's delayed ACK of the first
    // (Nagle): every wss upgrade took about 40 ms, 20 connects/s on one connection.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto owned = std::make_unique<Handshake>();
    Handshake *h = owned.get();
    h->owner = this;
    h->fd = fd;
    h->peer = peer;
    SSL_CTX *ctx = credentials_->acquire();  // the certificate of the moment: a SIGHUP may replace it
    h->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);  // the SSL holds its own reference
    if (!h->ssl || SSL_set_fd(h->ssl, fd) != 1) {
        log::warn("TLS: cannot set up a connection", {log::Field("error", opensslError())});
        if (h->ssl) SSL_free(h->ssl);
        ::close(fd);
        return;
    }
    SSL_set_accept_state(h->ssl);
    ev_io_init(&h->io, onIo, fd, EV_READ);
    h->io.data = h;
    ev_timer_init(&h->timer, [](struct ev_loop *, ev_timer *w, int) {
        auto *hs = static_cast<Handshake *>(w->data);
        log::info("TLS handshake timeout", {log::Field("sourceIp", hs->peer)});
        hs->owner->destroy(hs, true);
    }, kHandshakeSeconds, 0.);
    h->timer.data = h;
    ev_timer_start(loop_, &h->timer);
    handshakes_.emplace(h, std::move(owned));
    step(h);
}

void TlsTerminator::destroy(Handshake *h, bool closeSocket) {
    ev_io_stop(loop_, &h->io);
    ev_timer_stop(loop_, &h->timer);
    if (closeSocket) {
        if (h->ssl) SSL_free(h->ssl);
        if (h->fd >= 0) ::close(h->fd);
    }
    handshakes_.erase(h);
}

// One more step of the handshake; when it is done the descriptor, with its TLS, goes on to onPlain_.
void TlsTerminator::step(Handshake *h) {
    ERR_clear_error();
    int n = SSL_do_handshake(h->ssl);
    if (n != 1) {
        int e = SSL_get_error(h->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int events = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
            if (!ev_is_active(&h->io) || (h->io.events & (EV_READ | EV_WRITE)) != events) {
                ev_io_stop(loop_, &h->io);
                ev_io_set(&h->io, h->fd, events);
                ev_io_start(loop_, &h->io);
            }
            return;
        }
        log::info("TLS handshake failed", {log::Field("sourceIp", h->peer), log::Field("error", opensslError())});
        destroy(h, true);
        return;
    }
    int fd = h->fd;
    std::string peer = std::move(h->peer);
    auto *socket = new TlsSocket(h->ssl, fd, &pendingReads_);
    destroy(h, false);  // its watchers stop; the SSL and the descriptor now belong to the socket
    if (!TlsSocket::attach(socket)) {
        ::close(fd);
        return;
    }
    // Bytes the client sent right after its last handshake message (its upgrade request) may have been
    // read ahead into OpenSSL with the handshake: the socket need not be readable again for them. (Before
    // onPlain_, which may close the descriptor and so free the socket.)
    pendingReads_.afterRead(socket, socket->hasPendingPlaintext());
    onPlain_(fd, peer);
}

}  // namespace wsgw
