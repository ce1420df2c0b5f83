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

constexpr size_t kMaxBuffered = 256u << 10;  // per direction: beyond it the other side is not read
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

struct TlsTerminator::Relay {
    TlsTerminator *owner = nullptr;
    int tls = -1, plain = -1;
    SSL *ssl = nullptr;
    std::string peer;
    bool handshaking = true, tlsEof = false, plainEof = false, plainShut = false;
    bool tlsWantsRead = false, tlsWantsWrite = false;  // what OpenSSL asked for last
    std::string toPlain, toTls;
    ev_io tlsIo{}, plainIo{};
    ev_timer handshakeTimer{};
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
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
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
    : loop_(loop), ctx_(ctx), onPlain_(std::move(onPlain)) {}

TlsTerminator::~TlsTerminator() {
    std::vector<Relay *> all;
    for (auto &[r, owned] : relays_) all.push_back(r);
    for (Relay *r : all) destroy(r);
    SSL_CTX_free(ctx_);
}

void TlsTerminator::onIo(struct ev_loop *, ev_io *w, int) { pump(static_cast<Relay *>(w->data)); }

void TlsTerminator::adopt(int fd, const std::string &peer) {
    // Without it OpenSSL's second TLS 1.3 session ticket waited for the client's delayed ACK of the first
    // (Nagle): every wss upgrade took about 40 ms, 20 connects/s on one connection.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto owned = std::make_unique<Relay>();
    Relay *r = owned.get();
    r->owner = this;
    r->tls = fd;
    r->peer = peer;
    r->ssl = SSL_new(ctx_);
    if (!r->ssl || SSL_set_fd(r->ssl, fd) != 1) {
        log::warn("TLS: cannot set up a connection", {log::Field("error", opensslError())});
        if (r->ssl) SSL_free(r->ssl);
        ::close(fd);
        return;
    }
    SSL_set_accept_state(r->ssl);
    ev_io_init(&r->tlsIo, onIo, fd, EV_READ);
    r->tlsIo.data = r;
    ev_timer_init(&r->handshakeTimer, [](struct ev_loop *, ev_timer *w, int) {
        auto *relay = static_cast<Relay *>(w->data);
        log::info("TLS handshake timeout", {log::Field("sourceIp", relay->peer)});
        relay->owner->destroy(relay);
    }, kHandshakeSeconds, 0.);
    r->handshakeTimer.data = r;
    ev_timer_start(loop_, &r->handshakeTimer);
    relays_.emplace(r, std::move(owned));
    pump(r);
}

void TlsTerminator::destroy(Relay *r) {
    ev_io_stop(loop_, &r->tlsIo);
    ev_io_stop(loop_, &r->plainIo);
    ev_timer_stop(loop_, &r->handshakeTimer);
    if (r->ssl) SSL_free(r->ssl);
    if (r->tls >= 0) ::close(r->tls);
    if (r->plain >= 0) ::close(r->plain);
    relays_.erase(r);
}

namespace {

// Sets a watcher's events, restarting it only when they change.
void watch(struct ev_loop *loop, ev_io *io, int fd, int events) {
    if (fd < 0) return;
    if (events == 0) {
        ev_io_stop(loop, io);
        return;
    }
    if (ev_is_active(io) && (io->events & (EV_READ | EV_WRITE)) == events) return;
    ev_io_stop(loop, io);
    ev_io_set(io, fd, events);
    ev_io_start(loop, io);
}

}  // namespace

// Moves every byte it can in both directions, then asks libev for exactly what would let it move more.
void TlsTerminator::pump(Relay *r) {
    TlsTerminator *t = r->owner;
    struct ev_loop *loop = t->loop_;
    char buf[16384];
    if (r->handshaking) {
        ERR_clear_error();
        int n = SSL_do_handshake(r->ssl);
        if (n != 1) {
            int e = SSL_get_error(r->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                watch(loop, &r->tlsIo, r->tls, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
                return;
            }
            log::info("TLS handshake failed", {log::Field("sourceIp", r->peer), log::Field("error", opensslError())});
            t->destroy(r);
            return;
        }
        r->handshaking = false;
        ev_timer_stop(loop, &r->handshakeTimer);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
            log::error("TLS: socketpair failed", {log::Field("error", std::strerror(errno))});
            t->destroy(r);
            return;
        }
        r->plain = sv[0];
        ev_io_init(&r->plainIo, onIo, r->plain, EV_READ);
        r->plainIo.data = r;
        t->onPlain_(sv[1], r->peer);
    }

    // TLS -> plaintext side.
    while (!r->tlsEof && r->toPlain.size() < kMaxBuffered) {
        ERR_clear_error();
        int n = SSL_read(r->ssl, buf, sizeof buf);
        if (n > 0) {
            r->toPlain.append(buf, static_cast<size_t>(n));
            continue;
        }
        int e = SSL_get_error(r->ssl, n);
        r->tlsWantsRead = e == SSL_ERROR_WANT_READ;
        r->tlsWantsWrite = e == SSL_ERROR_WANT_WRITE;
        if (!r->tlsWantsRead && !r->tlsWantsWrite) r->tlsEof = true;  // close_notify, reset or a TLS error
        break;
    }
    while (!r->toPlain.empty()) {
        ssize_t n = ::write(r->plain, r->toPlain.data(), r->toPlain.size());
        if (n > 0) {
            r->toPlain.erase(0, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        t->destroy(r);  // the gateway side is gone
        return;
    }
    if (r->tlsEof && r->toPlain.empty() && !r->plainShut) {
        ::shutdown(r->plain, SHUT_WR);  // the gateway sees the client leave
        r->plainShut = true;
    }

    // Plaintext side -> TLS.
    while (!r->plainEof && r->toTls.size() < kMaxBuffered) {
        ssize_t n = ::read(r->plain, buf, sizeof buf);
        if (n > 0) {
            r->toTls.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        r->plainEof = true;
    }
    bool tlsBlocked = false;
    while (!r->toTls.empty() && !r->tlsEof) {
        ERR_clear_error();
        int n = SSL_write(r->ssl, r->toTls.data(), static_cast<int>(std::min<size_t>(r->toTls.size(), 1 << 20)));
        if (n > 0) {
            r->toTls.erase(0, static_cast<size_t>(n));
            continue;
        }
        int e = SSL_get_error(r->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            tlsBlocked = true;
            r->tlsWantsWrite = r->tlsWantsWrite || e == SSL_ERROR_WANT_WRITE;
            r->tlsWantsRead = r->tlsWantsRead || e == SSL_ERROR_WANT_READ;
            break;
        }
        r->tlsEof = true;
        r->toTls.clear();
    }
    if (r->plainEof && r->toTls.empty()) {
        if (!r->tlsEof) SSL_shutdown(r->ssl);  // close_notify, best effort
        t->destroy(r);
        return;
    }
    if (r->tlsEof && r->plainShut && r->toPlain.empty() && r->plainEof) {
        t->destroy(r);
        return;
    }

    int tlsEvents = 0;
    if ((!r->tlsEof && r->toPlain.size() < kMaxBuffered) || (tlsBlocked && r->tlsWantsRead)) tlsEvents |= EV_READ;
    if ((tlsBlocked && r->tlsWantsWrite) || (r->tlsWantsWrite && !r->tlsEof)) tlsEvents |= EV_WRITE;
    if (r->tlsEof && r->toTls.empty()) tlsEvents = 0;
    watch(loop, &r->tlsIo, r->tls, tlsEvents);
    int plainEvents = 0;
    if (!r->plainEof && r->toTls.size() < kMaxBuffered) plainEvents |= EV_READ;
    if (!r->toPlain.empty()) plainEvents |= EV_WRITE;
    watch(loop, &r->plainIo, r->plain, plainEvents);
}

}  // namespace wsgw
