// TLS for the public listener (wss://) and the management listener (https://): each connection's
// handshake, with the certificate of the moment (tls_credentials.h), on the listener's own loop with
// OpenSSL in non-blocking mode, within 10 s. After the handshake the connection's descriptor itself is
// handed on, carrying its TLS session (tls_socket.h),
// into the same path a plain connection takes (the upgrade head check, $connect on a worker, then
// libwebsockets; or the management HTTP server). So every rule of the plain listener applies to wss://
// unchanged, and a wss:// connection costs one descriptor, as a ws:// one does.
#pragma once

#include "tls_credentials.h"
#include "tls_socket.h"

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>

struct ev_loop;
struct ev_io;

namespace wsgw {

class TlsTerminator {
public:
    // Called with the connection's descriptor, its TLS established (its recv/send now carry plaintext), and
    // the client's address.
    using PlainConnection = std::function<void(int fd, const std::string &peer)>;

    // Loads the certificate chain and key (PEM); the message names the file and what is wrong.
    static std::variant<std::unique_ptr<TlsTerminator>, std::string> create(struct ev_loop *loop, const std::string &certFile,
                                                                           const std::string &keyFile, PlainConnection onPlain);
    ~TlsTerminator();
    TlsTerminator(const TlsTerminator &) = delete;
    TlsTerminator &operator=(const TlsTerminator &) = delete;

    // Takes an accepted TCP socket and starts the TLS handshake on it.
    void adopt(int fd, const std::string &peer);

    struct Handshake;

private:
    TlsTerminator(struct ev_loop *loop, std::shared_ptr<TlsCredentials> credentials, PlainConnection onPlain);
    void destroy(Handshake *h, bool closeSocket);
    void step(Handshake *h);
    static void onIo(struct ev_loop *loop, struct ev_io *w, int events);

    struct ev_loop *loop_;
    std::shared_ptr<TlsCredentials> credentials_;
    PlainConnection onPlain_;
    std::unordered_map<Handshake *, std::unique_ptr<Handshake>> handshakes_;
    TlsPendingReads pendingReads_;  // its destructor ends the sockets still open
};

}  // namespace wsgw
