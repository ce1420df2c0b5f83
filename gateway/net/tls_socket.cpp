// Owns: TLS on a connection's own descriptor and the plaintext waiting inside OpenSSL (tls_socket.h).
#include "tls_socket.h"

#include "descriptor_table.h"
#include "log.h"

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace wsgw {

namespace {

constexpr size_t kGatherKeptBytes = 256u << 10;  // a gather buffer grown past this by one huge frame is given back

// What a descriptor's slot holds after its loop ended while it was still open: reads end, writes fail, and
// its close() has nothing to free.
TlsSocket *endedSocket() {
    static TlsSocket ended(nullptr, -1, nullptr);
    return &ended;
}

}  // namespace

TlsSocket::TlsSocket(SSL *ssl, int fd, TlsPendingReads *pending) : ssl_(ssl), fd_(fd), pending_(pending) {
    if (pending_) pending_->opened(this);
}

TlsSocket::~TlsSocket() {
    if (ssl_) SSL_free(ssl_);
}

bool TlsSocket::attach(TlsSocket *socket) {
    if (!descriptorFitsTable(socket->fd_)) {
        log::error("TLS: descriptor beyond the table of descriptors; the connection is dropped (raise the hard RLIMIT_NOFILE "
                   "before starting the gateway)",
                   {log::Field("fd", static_cast<int64_t>(socket->fd_))});
        release(socket);
        return false;
    }
    descriptorSlot(socket->fd_).tls.store(socket, std::memory_order_release);
    return true;
}

void TlsSocket::release(TlsSocket *socket) {
    if (socket == endedSocket()) return;
    if (socket->pending_) socket->pending_->closed(socket);
    delete socket;
}

void TlsSocket::detach() {
    if (ssl_) SSL_free(ssl_);
    ssl_ = nullptr;
    pending_ = nullptr;
}

bool TlsSocket::hasPendingPlaintext() const { return ssl_ && SSL_has_pending(ssl_) == 1; }

long TlsSocket::read(void *buf, size_t len, int flags) {
    if (!ssl_ || readEnded_) return 0;
    if (readError_) {
        errno = readError_;
        return -1;
    }
    if (len == 0) return 0;
    auto *out = static_cast<char *>(buf);
    size_t got = 0;
    // Until the caller's buffer is full or what OpenSSL has read is taken: one call of ours may span several
    // records, as one recv() spans several segments.
    ERR_clear_error();  // SSL_get_error reads the queue; a successful call adds nothing to it
    while (got < len) {
        int want = static_cast<int>(std::min<size_t>(len - got, INT_MAX));
        int n = (flags & MSG_PEEK) ? SSL_peek(ssl_, out + got, want) : SSL_read(ssl_, out + got, want);
        if (n > 0) {
            got += static_cast<size_t>(n);
            if (flags & MSG_PEEK) break;  // a peek looks once; the bytes stay where they are
            // Nothing left inside OpenSSL: another SSL_read would only cost a read(2) that says EAGAIN.
            // What the socket still has makes it readable again (level-triggered), as a plain recv() leaves it.
            if (SSL_has_pending(ssl_) != 1) break;
            continue;
        }
        int e = SSL_get_error(ssl_, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            readEnded_ = true;  // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) the TCP connection's end
        } else if (e == SSL_ERROR_SYSCALL && errno == 0) {
            readEnded_ = true;  // the TCP connection ended without close_notify (OpenSSL 1.1's report of it)
        } else {
            readError_ = (e == SSL_ERROR_SYSCALL && errno != 0) ? errno : ECONNRESET;  // a broken record or a reset
            ERR_clear_error();
        }
        break;
    }
    if (pending_ && !(flags & MSG_PEEK)) pending_->afterRead(this, SSL_has_pending(ssl_) == 1);
    if (got > 0) return static_cast<long>(got);
    if (readEnded_) return 0;
    errno = readError_ ? readError_ : EAGAIN;
    return -1;
}

long TlsSocket::write(const void *buf, size_t len) {
    if (!ssl_ || writeFailed_) {
        errno = EPIPE;
        return -1;
    }
    if (len == 0) return 0;
    const auto *in = static_cast<const char *>(buf);
    size_t done = 0;
    // Partial-write mode: each SSL_write sends at most one record (16 KB) and says how much it took.
    ERR_clear_error();
    while (done < len) {
        int n = SSL_write(ssl_, in + done, static_cast<int>(std::min<size_t>(len - done, INT_MAX)));
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        int e = SSL_get_error(ssl_, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;  // the record waits in OpenSSL for the retry
        int error = (e == SSL_ERROR_SYSCALL && errno != 0) ? errno : EPIPE;
        ERR_clear_error();
        writeFailed_ = true;
        if (done > 0) return static_cast<long>(done);
        errno = error;
        return -1;
    }
    if (done > 0) return static_cast<long>(done);
    errno = EAGAIN;
    return -1;
}

long TlsSocket::writeGathered(const iovec *iov, size_t count) {
    if (count == 1) return write(iov[0].iov_base, iov[0].iov_len);
    // One buffer, so small frames share records (and write calls) as they share a segment over ws://.
    thread_local std::string gathered;
    gathered.clear();
    for (size_t i = 0; i < count; ++i) gathered.append(static_cast<const char *>(iov[i].iov_base), iov[i].iov_len);
    long n = write(gathered.data(), gathered.size());
    if (gathered.capacity() > kGatherKeptBytes) std::string().swap(gathered);
    return n;
}

void TlsSocket::sendCloseNotify() {
    if (!ssl_ || closeNotifySent_ || writeFailed_) return;
    closeNotifySent_ = true;
    ERR_clear_error();
    SSL_shutdown(ssl_);  // non-blocking: sent now or never; the TCP FIN that follows ends the connection anyway
    ERR_clear_error();
}

TlsPendingReads::TlsPendingReads(struct ev_loop *loop) : loop_(loop), prepare_(new ev_prepare), idle_(new ev_idle) {
    ev_prepare_init(prepare_, onPrepare);
    prepare_->data = this;
    ev_prepare_start(loop_, prepare_);
    ev_unref(loop_);  // it does not keep the loop alive by itself
    ev_idle_init(idle_, onIdle);
    idle_->data = this;
}

TlsPendingReads::~TlsPendingReads() {
    ev_ref(loop_);
    ev_prepare_stop(loop_, prepare_);
    ev_idle_stop(loop_, idle_);
    delete prepare_;
    delete idle_;
    // Descriptors still open (their owners are being torn down too): their slots end, the sockets go now.
    for (TlsSocket *s : open_) {
        TlsSocket *expected = s;
        descriptorSlot(s->fd()).tls.compare_exchange_strong(expected, endedSocket(), std::memory_order_acq_rel);
        s->detach();
        delete s;
    }
}

void TlsPendingReads::closed(TlsSocket *s) {
    open_.erase(s);
    pending_.erase(s);
}

void TlsPendingReads::afterRead(TlsSocket *s, bool pending) {
    if (!pending) {
        if (!pending_.empty()) pending_.erase(s);
        return;
    }
    pending_.insert(s);
    // It was read and more is there: the loop must come round again without sleeping (onPrepare feeds it).
    if (!ev_is_active(idle_)) ev_idle_start(loop_, idle_);
}

// Before the loop sleeps: a read event for each socket with plaintext inside OpenSSL. libev invokes the
// watchers that want reads (and only those) before it polls; a paused one keeps its bytes for later.
void TlsPendingReads::onPrepare(struct ev_loop *loop, ev_prepare *w, int) {
    auto *self = static_cast<TlsPendingReads *>(w->data);
    if (self->pending_.empty()) return;
    std::vector<int> fds;
    fds.reserve(self->pending_.size());
    for (TlsSocket *s : self->pending_) fds.push_back(s->fd());
    for (int fd : fds) ev_feed_fd_event(loop, fd, EV_READ);
}

void TlsPendingReads::onIdle(struct ev_loop *loop, ev_idle *w, int) { ev_idle_stop(loop, w); }

}  // namespace wsgw
