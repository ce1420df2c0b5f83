#include "tls_terminator.h"

#include "log.h"

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <vector>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr double kHandshakeSeconds = 10.0;

std::string opensslError() {
    unsigned long e = ERR_get_error();
    if (!e) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

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
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return "TLS: " + opensslError();
    auto fail = [&](const std::string &what) -> std::variant<std::unique_ptr<TlsTerminator>, std::string> {
        SSL_CTX_free(ctx);
        return what + ": " + opensslError();
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    options |= SSL_OP_IGNORE_UNEXPECTED_EOF;  // a client that just closes its TCP connection has left, as over ws://
#endif
    SSL_CTX_set_options(ctx, options);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    // One read(2) takes what the socket has (up to a record's worth and more) instead of two per record,
    // header then body. What it takes beyond the record being read waits inside OpenSSL, which
    // TlsPendingReads covers (SSL_has_pending sees it).
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, certFile.c_str()) != 1)
        return fail("cannot use " + certFile + " as a PEM certificate chain");
    if (SSL_CTX_use_PrivateKey_file(ctx, keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            return fail("the key in " + keyFile + " does not match the certificate in " + certFile);
        return fail("cannot use " + keyFile + " as a PEM private key");
    }
    if (SSL_CTX_check_private_key(ctx) != 1) return fail("the key in " + keyFile + " does not match the certificate in " + certFile);
    return std::unique_ptr<TlsTerminator>(new TlsTerminator(loop, ctx, std::move(onPlain)));
}

TlsTerminator::TlsTerminator(struct ev_loop *loop, SSL_CTX *ctx, PlainConnection onPlain)
    : loop_(loop), ctx_(ctx), onPlain_(std::move(onPlain)), pendingReads_(loop) {}

TlsTerminator::~TlsTerminator() {
    std::vector<Handshake *> all;
    for (auto &[h, owned] : handshakes_) all.push_back(h);
    for (Handshake *h : all) destroy(h, true);
    SSL_CTX_free(ctx_);  // the sockets still open hold their own reference to it
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
    h->ssl = SSL_new(ctx_);
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
