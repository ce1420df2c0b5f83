// Owns: TLS on a connection's own descriptor once its handshake is done (TlsSocket), and the plaintext
// OpenSSL holds that no readiness event would announce (TlsPendingReads).
//
// Everything that reads or writes the connection (the upgrade reader, libwebsockets, our frame writer, the
// management server) keeps using recv/send/shutdown/close on the descriptor; socket_calls.h routes those
// calls here for a descriptor that carries TLS. So a wss:// connection is one descriptor, as a ws:// one
// is, and its bytes are encrypted and decrypted where they are read and written, with no relay between.
//
// A read asks OpenSSL for at most what the caller's buffer holds; the rest of a record (up to 16 KB) then
// waits inside OpenSSL, where the loop's epoll cannot see it. TlsPendingReads lists such connections and,
// before the loop sleeps, feeds their watchers a read event — only the watchers that want reads, so a
// connection whose reading is paused keeps its plaintext until it reads again and costs no spinning.
#pragma once

#include <cstddef>
#include <sys/uio.h>
#include <unordered_set>

struct ev_loop;
struct ev_prepare;
struct ev_idle;
typedef struct ssl_st SSL;

namespace wsgw {

class TlsPendingReads;

class TlsSocket {
public:
    // Takes ownership of `ssl` (handshake done, non-blocking, on `fd`).
    TlsSocket(SSL *ssl, int fd, TlsPendingReads *pending);
    ~TlsSocket();
    TlsSocket(const TlsSocket &) = delete;
    TlsSocket &operator=(const TlsSocket &) = delete;

    // Puts `socket` on its descriptor's slot: from now on recv/send/shutdown/close of the descriptor go
    // through it, and close() frees it. False (and `socket` deleted) when the descriptor is beyond the table.
    static bool attach(TlsSocket *socket);
    // close(): the slot has been cleared; frees the socket.
    static void release(TlsSocket *socket);

    // recv(2)'s contract: plaintext bytes, 0 at the client's end (close_notify or the TCP connection's end),
    // -1 with errno EAGAIN when nothing is there yet, or another errno when the connection failed.
    long read(void *buf, size_t len, int flags);
    // send(2)'s contract for plaintext. A write that returned EAGAIN (or fewer bytes than given) must be
    // retried with the same bytes first: libwebsockets and our frame writer both do (OpenSSL requires it).
    long write(const void *buf, size_t len);
    long writeGathered(const iovec *iov, size_t count);
    // close_notify, once, best effort (a shutdown of the write side).
    void sendCloseNotify();

    int fd() const { return fd_; }
    bool hasPendingPlaintext() const;
    // The owner of the pending list goes away first (a thread's end): reads give 0 and writes EPIPE from now
    // on, and close() still frees the socket.
    void detach();

private:
    SSL *ssl_;
    int fd_;
    TlsPendingReads *pending_;
    bool readEnded_ = false;   // close_notify or the TCP connection's end was read
    int readError_ = 0;        // the errno a failed read reports from then on
    bool writeFailed_ = false;
    bool closeNotifySent_ = false;
};

// One per event loop that owns TLS sockets (each network thread, the management thread).
class TlsPendingReads {
public:
    explicit TlsPendingReads(struct ev_loop *loop);
    ~TlsPendingReads();  // detaches the sockets still open
    TlsPendingReads(const TlsPendingReads &) = delete;
    TlsPendingReads &operator=(const TlsPendingReads &) = delete;

    void opened(TlsSocket *s) { open_.insert(s); }
    void closed(TlsSocket *s);
    // After a read: whether OpenSSL still holds bytes of this socket.
    void afterRead(TlsSocket *s, bool pending);

private:
    static void onPrepare(struct ev_loop *loop, ev_prepare *w, int events);
    static void onIdle(struct ev_loop *loop, ev_idle *w, int events);

    struct ev_loop *loop_;
    ev_prepare *prepare_;
    ev_idle *idle_;
    std::unordered_set<TlsSocket *> open_;
    std::unordered_set<TlsSocket *> pending_;
};

}  // namespace wsgw
