// TLS for the public listener (wss://) and the management listener (https://). TLS is terminated here, on
// the network thread, with OpenSSL in non-blocking mode; after the handshake each connection's plaintext
// is relayed over a socketpair into the same path a plain connection takes (the upgrade head check,
// $connect on a worker, then libwebsockets; or the management HTTP server). So every rule of the plain
// listener applies to wss:// unchanged, at the price of one extra local copy per direction. Each relay has
// bounded buffers in both directions: a side that does not read stops the other from being read.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>

struct ev_loop;
struct ev_io;
typedef struct ssl_ctx_st SSL_CTX;

namespace wsgw {

class TlsTerminator {
public:
    // Called with the plaintext end of a socketpair (non-blocking, close-on-exec) and the client's address.
    using PlainConnection = std::function<void(int fd, const std::string &peer)>;

    // Loads the certificate chain and key (PEM); the message names the file and what is wrong.
    static std::variant<std::unique_ptr<TlsTerminator>, std::string> create(struct ev_loop *loop, const std::string &certFile,
                                                                           const std::string &keyFile, PlainConnection onPlain);
    ~TlsTerminator();
    TlsTerminator(const TlsTerminator &) = delete;
    TlsTerminator &operator=(const TlsTerminator &) = delete;

    // Takes an accepted TCP socket and starts the TLS handshake on it.
    void adopt(int fd, const std::string &peer);
    size_t relays() const { return relays_.size(); }

    struct Relay;

private:
    TlsTerminator(struct ev_loop *loop, SSL_CTX *ctx, PlainConnection onPlain);
    void destroy(Relay *r);
    static void pump(Relay *r);
    static void onIo(struct ev_loop *loop, struct ev_io *w, int events);

    struct ev_loop *loop_;
    SSL_CTX *ctx_;
    PlainConnection onPlain_;
    std::unordered_map<Relay *, std::unique_ptr<Relay>> relays_;
};

}  // namespace wsgw
