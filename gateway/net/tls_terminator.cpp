#include "tls_terminator.h"

#include <openssl/ssl.h>

#include <exception>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsgw {

std::variant<std::unique_ptr<TlsTerminator>, std::string> TlsTerminator::create(struct ev_loop *loop, const std::string &certFile,
                                                                               const std::string &keyFile, PlainConnection onPlain,
                                                                               HandshakeFailed onFailed) {
    auto credentials = TlsCredentials::forFiles(certFile, keyFile);
    if (auto *error = std::get_if<std::string>(&credentials)) return *error;
    try {
        return std::unique_ptr<TlsTerminator>(
            new TlsTerminator(loop, std::move(std::get<std::shared_ptr<TlsCredentials>>(credentials)), std::move(onPlain),
                              std::move(onFailed)));
    } catch (const std::exception &e) {
        return std::string(e.what());
    }
}

TlsTerminator::TlsTerminator(struct ev_loop *loop, std::shared_ptr<TlsCredentials> credentials, PlainConnection onPlain,
                             HandshakeFailed onFailed)
    : loop_(loop), onPlain_(std::move(onPlain)), onFailed_(onFailed), pendingReads_(loop) {
    // First: it may throw (out of descriptors), and nothing may be on the loop then.
    handshaker_ = std::make_unique<TlsHandshaker>(std::move(credentials), [this](AcceptedSocket &&socket, SSL *ssl) {
        {
            std::lock_guard lock(mutex_);
            done_.push_back({std::move(socket), ssl});
        }
        ev_async_send(loop_, &established_);
    }, std::move(onFailed));
    ev_async_init(&established_, onEstablished);
    established_.data = this;
    ev_async_start(loop_, &established_);
}

TlsTerminator::~TlsTerminator() {
    handshaker_.reset();  // its thread ends: nothing more comes back
    ev_async_stop(loop_, &established_);
    for (Established &e : done_) {
        SSL_free(e.ssl);
        ::close(e.socket.fd);
        if (onFailed_) onFailed_(e.socket);
    }
}

void TlsTerminator::adopt(AcceptedSocket &&socket) {
    // Without it OpenSSL's second TLS 1.3 session ticket waited for the client's delayed ACK of the first
    // (Nagle): every wss upgrade took about 40 ms, 20 connects/s on one connection.
    int one = 1;
    setsockopt(socket.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    handshaker_->submit(std::move(socket));
}

void TlsTerminator::onEstablished(struct ev_loop *, ev_async *w, int) {
    static_cast<TlsTerminator *>(w->data)->takeEstablished();
}

void TlsTerminator::takeEstablished() {
    std::vector<Established> batch;
    {
        std::lock_guard lock(mutex_);
        batch.swap(done_);
    }
    for (Established &e : batch) {
        int fd = e.socket.fd;
        auto *socket = new TlsSocket(e.ssl, fd, &pendingReads_);
        if (!TlsSocket::attach(socket)) {
            ::close(fd);
            if (onFailed_) onFailed_(e.socket);
            continue;
        }
        // Bytes the client sent right after its last handshake message (its upgrade request) may have been
        // read ahead into OpenSSL with the handshake: the socket need not be readable again for them. (Before
        // onPlain_, which may close the descriptor and so free the socket.)
        pendingReads_.afterRead(socket, socket->hasPendingPlaintext());
        onPlain_(std::move(e.socket));
    }
}

}  // namespace wsgw
