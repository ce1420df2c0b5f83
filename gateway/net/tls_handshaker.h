// Owns: the TLS handshakes of one listener, on a thread of their own. A full handshake costs the server
// 0.3-0.6 ms of CPU (key exchange and signature), and a client can ask for one with a ClientHello that
// costs it almost nothing. On the network thread a flood of them held up every open connection's
// messages; here they compete with the network thread only through the kernel's scheduler, and the
// network thread keeps moving bytes.
//
// A socket is submitted from any thread; its handshake runs with OpenSSL in non-blocking mode on this
// thread's loop, until the socket's handshake deadline; the established session (or nothing, when the handshake fails or times out:
// the socket is then closed here) is reported to `Established`, on this thread.
#pragma once

#include "accepted_socket.h"
#include "tls_credentials.h"

#include <chrono>
#include <cstdint>
#include <queue>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

typedef struct ssl_st SSL;

namespace wsgw {

// Its own epoll loop rather than libev's: libev keeps a stopped descriptor in its epoll set until an event
// comes for it, which here would be the traffic of a connection another thread owns by then. A socket
// handed on leaves this thread's set first.
class TlsHandshaker {
public:
    // Called on the handshake thread with the socket and its established session (ownership of both passes).
    using Established = std::function<void(AcceptedSocket &&socket, SSL *ssl)>;
    // Called on the handshake thread when a handshake fails or times out; its socket is closed.
    using Failed = std::function<void(const AcceptedSocket &socket)>;

    // Throws std::runtime_error when its epoll or eventfd cannot be made (out of descriptors).
    TlsHandshaker(std::shared_ptr<TlsCredentials> credentials, Established established, Failed failed = {});
    // Stops the thread; sockets still in their handshake (or not yet taken) are closed.
    ~TlsHandshaker();
    TlsHandshaker(const TlsHandshaker &) = delete;
    TlsHandshaker &operator=(const TlsHandshaker &) = delete;

    // From any thread: the accepted socket is this thread's from now on.
    void submit(AcceptedSocket &&socket);

private:
    using Clock = std::chrono::steady_clock;
    struct Handshake {
        AcceptedSocket socket;
        SSL *ssl = nullptr;
        uint32_t events = 0;  // what epoll watches for it; 0 before it is in the set
    };
    using Deadline = std::pair<Clock::time_point, uint64_t>;

    void run();
    void takeSubmitted();
    void start(AcceptedSocket &&socket);
    void step(uint64_t key);
    void fail(uint64_t key);
    void expire();
    void abandonAll();

    std::shared_ptr<TlsCredentials> credentials_;
    Established established_;
    Failed failed_;
    int epollFd_ = -1;
    int wakeFd_ = -1;  // eventfd: a submit or the stop
    std::mutex mutex_;
    std::vector<AcceptedSocket> submitted_;  // under mutex_
    bool stopping_ = false;                               // under mutex_
    // The handshake thread's only. Keys, not pointers, in epoll's data: an event that comes in the same
    // batch as its handshake's end finds nothing.
    std::unordered_map<uint64_t, Handshake> handshakes_;
    // Earliest first (a reload may shorten handshakeTimeoutSeconds, so they do not arrive in order).
    std::priority_queue<Deadline, std::vector<Deadline>, std::greater<Deadline>> deadlines_;
    uint64_t nextKey_ = 1;  // 0 is the wake-up
    std::thread thread_;    // last: started once everything above exists
};

}  // namespace wsgw
