// Owns: the management listener on the network thread's event loop. Its accept loop (paused by AcceptBackoff
// when descriptors run out; handed to the TlsTerminator first for https://), at most kMaxConnections open
// connections (at the most, a new one takes the place of the one idle the longest), and each keep-alive HTTP/1.1 connection: requests read by HttpRequestReader (Content-Length or
// chunked bodies, Expect: 100-continue), answered in order, the bound on answers the client has not read,
// the idle and request timeouts, the linger after the last answer; and answers that wait on the cluster
// (defer), brought back to their connection. What a request is answered is ManagementRoutes' business.
#pragma once

#include "management_response.h"
#include "management_routes.h"

#include "accept_backoff.h"
#include "options.h"
#include "refusal_log.h"

#include <ev.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace wsgw {

class TlsTerminator;
struct ManagementConnection;
struct DeferredManagementAnswers;

class ManagementServer {
public:
    ManagementServer(HostContext &host, ManagementRoutes &routes);
    ~ManagementServer();
    ManagementServer(const ManagementServer &) = delete;
    ManagementServer &operator=(const ManagementServer &) = delete;

    // Before start(): serve https:// with this PEM certificate chain and key.
    void setTls(std::string certFile, std::string keyFile);
    // Before start(): how long a request may take to arrive whole (then 408), and a connection may stay open
    // without one (then it is closed). 15 s unless set (--management-request-timeout).
    void setRequestTimeout(int seconds) { requestTimeoutSeconds_ = seconds; }
    // Binds `listen` and starts serving on `loop`. Returns "" or what went wrong.
    std::string start(struct ev_loop *loop, const HostPort &listen);
    const std::string &boundAddress() const { return boundAddress_; }
    // Stops accepting and closes every management connection; answers still being computed are dropped.
    void stop();

    // Runs `work` on the cluster's executor and answers the request being handled with its result when it is
    // done: nothing more is read or answered on that connection until then (HTTP/1.1's order).
    ManagementResponse defer(std::function<ManagementResponse()> work);

private:
    static void onAccept(struct ev_loop *, ev_io *w, int);
    static void onIdle(struct ev_loop *, ev_timer *w, int);
    static void onReadable(struct ev_loop *, ev_io *w, int);
    static void onWritable(struct ev_loop *, ev_io *w, int);
    static void onDeferredAnswers(struct ev_loop *, ev_async *w, int);

    void serve(int fd, const std::string &peer);
    void closeConnection(ManagementConnection *c);
    bool closeLongestIdle();
    void timedOut(ManagementConnection *c);
    void readFrom(ManagementConnection *c);
    void refuse(ManagementConnection *c, const ManagementResponse &r, const std::string &reason);
    void processInput(ManagementConnection *c);
    bool sendSome(ManagementConnection *c);
    void flush(ManagementConnection *c);
    void lingerThenClose(ManagementConnection *c);

    HostContext &host_;
    ManagementRoutes &routes_;
    struct ev_loop *loop_ = nullptr;
    int listenFd_ = -1;
    std::string boundAddress_;
    ev_io acceptWatcher_{};
    // Out of descriptors, accept() fails at once and the socket stays readable: pause instead of spinning.
    AcceptBackoff acceptBackoff_;
    std::unordered_map<ManagementConnection *, std::unique_ptr<ManagementConnection>> connections_;
    std::unordered_map<uint64_t, ManagementConnection *> bySerial_;
    uint64_t nextSerial_ = 1;
    ManagementConnection *current_ = nullptr;  // the connection whose request is being answered
    std::shared_ptr<DeferredManagementAnswers> deferred_;
    ev_async deferredWake_{};
    std::string tlsCert_, tlsKey_;
    std::unique_ptr<TlsTerminator> tls_;
    int requestTimeoutSeconds_ = 15;
    ev_tstamp refusedLoggedAt_ = -1e9;  // the last "too many open" warning (one per 10 s)
    ev_tstamp evictedLoggedAt_ = -1e9;  // the last "closed the longest idle" warning (one per 10 s)
    uint64_t evictedSinceLogged_ = 0;
    RefusalLog refusalLog_;  // "management request refused": at most 10 lines a second (refusal_log.h)
};

}  // namespace wsgw
