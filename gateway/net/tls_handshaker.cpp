#include "tls_handshaker.h"

#include "thread_shortage.h"

#include "log.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace wsgw {

namespace {

constexpr uint64_t kWakeKey = 0;

}  // namespace

TlsHandshaker::TlsHandshaker(std::shared_ptr<TlsCredentials> credentials, Established established, Failed failed)
    : credentials_(std::move(credentials)), established_(std::move(established)), failed_(std::move(failed)) {
    auto closeAll = [this] {
        if (epollFd_ >= 0) ::close(epollFd_);
        if (wakeFd_ >= 0) ::close(wakeFd_);
    };
    epollFd_ = epoll_create1(EPOLL_CLOEXEC);
    wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeKey;
    if (epollFd_ < 0 || wakeFd_ < 0 || epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) {
        std::string why = std::string("TLS handshakes: ") + std::strerror(errno);
        closeAll();
        throw std::runtime_error(why);
    }
    try {
        thread_ = std::thread([this] {
            pthread_setname_np(pthread_self(), "wsgw-tls");  // so top, perf and /proc tell it from the others
            try {
                run();
            } catch (const std::exception &e) {  // out of memory: the handshakes end, the gateway goes on
                log::error("TLS handshakes stop", {log::Field("error", e.what())});
            }
            abandonAll();
        });
    } catch (const std::system_error &e) {
        closeAll();
        throw std::runtime_error(threadShortage("the TLS handshake thread", e));
    } catch (...) {
        closeAll();
        throw;
    }
}

TlsHandshaker::~TlsHandshaker() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    uint64_t one = 1;
    (void)!::write(wakeFd_, &one, sizeof one);
    thread_.join();
    ::close(wakeFd_);
    ::close(epollFd_);
}

void TlsHandshaker::submit(AcceptedSocket &&socket) {
    {
        std::lock_guard lock(mutex_);
        if (!stopping_) {
            submitted_.push_back(std::move(socket));
            socket.fd = -1;
        }
    }
    if (socket.fd >= 0) {  // stopping: the socket is not taken
        ::close(socket.fd);
        if (failed_) failed_(socket);
        return;
    }
    uint64_t one = 1;
    (void)!::write(wakeFd_, &one, sizeof one);
}

void TlsHandshaker::run() {
    epoll_event events[64];
    for (;;) {
        int timeoutMs = -1;
        if (!deadlines_.empty()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadlines_.top().first - Clock::now()).count();
            timeoutMs = static_cast<int>(std::max<int64_t>(0, left) + 1);
        }
        int n = epoll_wait(epollFd_, events, 64, timeoutMs);
        if (n < 0 && errno != EINTR) {
            log::error("TLS handshakes stop: epoll_wait failed", {log::Field("error", std::strerror(errno))});
            return;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 != kWakeKey) {
                step(events[i].data.u64);
                continue;
            }
            uint64_t count;
            (void)!::read(wakeFd_, &count, sizeof count);
            {
                std::lock_guard lock(mutex_);
                if (stopping_) return;
            }
            takeSubmitted();
        }
        expire();
    }
}

void TlsHandshaker::takeSubmitted() {
    std::vector<AcceptedSocket> batch;
    {
        std::lock_guard lock(mutex_);
        batch.swap(submitted_);
    }
    for (AcceptedSocket &s : batch) start(std::move(s));
}

void TlsHandshaker::start(AcceptedSocket &&socket) {
    int fd = socket.fd;
    SSL_CTX *ctx = credentials_->acquire();  // the certificate of the moment: a SIGHUP may replace it
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);  // the SSL holds its own reference
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        log::warn("TLS: cannot set up a connection", {log::Field("error", opensslError())});
        if (ssl) SSL_free(ssl);
        ::close(fd);
        if (failed_) failed_(socket);
        return;
    }
    SSL_set_accept_state(ssl);
    uint64_t key = nextKey_++;
    deadlines_.emplace(socket.handshakeDeadline, key);
    handshakes_.emplace(key, Handshake{std::move(socket), ssl, 0});
    step(key);
}

// One more step of the handshake; when it is done the socket and its session go to established_.
void TlsHandshaker::step(uint64_t key) {
    auto it = handshakes_.find(key);
    if (it == handshakes_.end()) return;  // ended earlier in this batch of events
    Handshake &h = it->second;
    ERR_clear_error();
    int n = SSL_do_handshake(h.ssl);
    if (n != 1) {
        int e = SSL_get_error(h.ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            uint32_t want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
            if (want != h.events) {
                epoll_event ev{};
                ev.events = want;
                ev.data.u64 = key;
                if (epoll_ctl(epollFd_, h.events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, h.socket.fd, &ev) != 0) {
                    log::warn("TLS: cannot watch a connection", {log::Field("sourceIp", h.socket.peer), log::Field("error", std::strerror(errno))});
                    fail(key);
                    return;
                }
                h.events = want;
            }
            return;
        }
        log::info("TLS handshake failed", {log::Field("sourceIp", h.socket.peer), log::Field("error", opensslError())});
        fail(key);
        return;
    }
    // Out of this thread's set before another thread owns the descriptor (and may close and reuse it).
    if (h.events) epoll_ctl(epollFd_, EPOLL_CTL_DEL, h.socket.fd, nullptr);
    AcceptedSocket socket = std::move(h.socket);
    SSL *ssl = h.ssl;
    handshakes_.erase(it);
    established_(std::move(socket), ssl);
}

void TlsHandshaker::fail(uint64_t key) {
    auto it = handshakes_.find(key);
    if (it == handshakes_.end()) return;
    // Out of the set first: a child process between its fork and exec holds the descriptor too, and the
    // close alone would then leave it in the set, reporting its hang-up under a key nobody has.
    if (it->second.events) epoll_ctl(epollFd_, EPOLL_CTL_DEL, it->second.socket.fd, nullptr);
    SSL_free(it->second.ssl);
    ::close(it->second.socket.fd);
    AcceptedSocket socket = std::move(it->second.socket);
    handshakes_.erase(it);
    if (failed_) failed_(socket);
}

// The thread's end (a stop, or a failure): nothing more is taken, and every socket it holds is closed as a
// failed handshake, so that what the sockets count (their address's pending sockets) is given back.
void TlsHandshaker::abandonAll() {
    std::vector<AcceptedSocket> waiting;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        waiting.swap(submitted_);
    }
    std::vector<uint64_t> keys;
    for (auto &[key, h] : handshakes_) keys.push_back(key);
    for (uint64_t key : keys) fail(key);
    for (AcceptedSocket &s : waiting) {
        ::close(s.fd);
        if (failed_) failed_(s);
    }
}

void TlsHandshaker::expire() {
    Clock::time_point now = Clock::now();
    while (!deadlines_.empty() && deadlines_.top().first <= now) {
        uint64_t key = deadlines_.top().second;
        deadlines_.pop();
        auto it = handshakes_.find(key);
        if (it == handshakes_.end()) continue;  // finished or failed before its time
        log::info("TLS handshake timeout", {log::Field("sourceIp", it->second.socket.peer)});
        fail(key);
    }
}

}  // namespace wsgw
