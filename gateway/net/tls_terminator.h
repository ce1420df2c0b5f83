// TLS for the public listener (wss://) and the management listener (https://). Each connection's handshake
// runs on the listener's handshake thread (tls_handshaker.h), with the certificate of the moment
// (tls_credentials.h). After the handshake the connection's descriptor itself comes back to the listener's
// loop, carrying its TLS session (tls_socket.h), into the same path a plain connection takes (the upgrade
// head check, $connect on a worker, then libwebsockets; or the management HTTP server). So every rule of
// the plain listener applies to wss:// unchanged, and a wss:// connection costs one descriptor, as a ws://
// one does.
#pragma once

#include "tls_credentials.h"
#include "tls_handshaker.h"
#include "tls_socket.h"

#include <ev.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

namespace wsgw {

class TlsTerminator {
public:
    // Called on the listener's loop with the socket, its TLS established (its recv/send now carry plaintext).
    using PlainConnection = std::function<void(AcceptedSocket &&socket)>;
    // Called when a handshake fails or times out (on the handshake thread), or its descriptor cannot be taken
    // (on the listener's loop); its socket is closed.
    using HandshakeFailed = std::function<void(const AcceptedSocket &socket)>;

    // Loads the certificate chain and key (PEM); the message names the file and what is wrong. From the
    // loop's thread, or before the loop runs.
    static std::variant<std::unique_ptr<TlsTerminator>, std::string> create(struct ev_loop *loop, const std::string &certFile,
                                                                           const std::string &keyFile, PlainConnection onPlain,
                                                                           HandshakeFailed onFailed = {});
    ~TlsTerminator();
    TlsTerminator(const TlsTerminator &) = delete;
    TlsTerminator &operator=(const TlsTerminator &) = delete;

    // Takes an accepted TCP socket and has its TLS handshake done.
    // Its handshake must be done by socket.handshakeDeadline; the rest is handed back as given.
    void adopt(AcceptedSocket &&socket);

private:
    TlsTerminator(struct ev_loop *loop, std::shared_ptr<TlsCredentials> credentials, PlainConnection onPlain,
                  HandshakeFailed onFailed);
    void takeEstablished();
    static void onEstablished(struct ev_loop *loop, ev_async *w, int events);

    struct Established {
        AcceptedSocket socket;
        SSL *ssl;
    };

    struct ev_loop *loop_;
    PlainConnection onPlain_;
    HandshakeFailed onFailed_;
    TlsPendingReads pendingReads_;  // its destructor ends the sockets still open
    ev_async established_{};        // on loop_: handshakes came back
    std::mutex mutex_;
    std::vector<Established> done_;  // under mutex_
    std::unique_ptr<TlsHandshaker> handshaker_;
};

}  // namespace wsgw
