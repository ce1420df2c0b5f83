// Owns: a connection's way from an admitted upgrade request to an open WebSocket: registering it, making its
// row durable before $connect when a $disconnect will be owed, $connect's decision (accept, or refuse with
// the handler's status and body), reaching a proxy backend first when there is one (proxy_relay.h), handing
// the socket to libwebsockets (adopt) and, once the 101 is out, what an open connection starts with.
#pragma once

#include "connection_store.h"
#include "handshake.h"
#include "invoker.h"

#include <ev.h>
#include <libwebsockets.h>

#include <string>
#include <string_view>

namespace wsgw {

struct NetworkThreadState;
struct Session;

// The Invocation of `connection`'s $connect or $disconnect (`type` is WSGW_CONNECT or WSGW_DISCONNECT) in
// `table`, whose route for it the caller has found set: the route follows from the type, with a new request
// ID and the event's time. What else the event carries (a close code, the row to remove) the caller adds.
Invocation lifecycleInvocation(const std::shared_ptr<const RouteTable> &table, wsgw_event_type type,
                               std::shared_ptr<LiveConnection> connection, int64_t requestTimeMs);

class ConnectFlow {
public:
    explicit ConnectFlow(NetworkThreadState &thread) : t_(thread) {}

    // Takes the parsed request: its headers move into the connection's info instead of being copied.
    void startConnect(Session *s, UpgradeRequest &&req);
    // The store could not commit the row: the upgrade is refused ($connect did not run).
    void rowNotDurable(std::string_view id);
    // $connect's answer (status 0 accepts).
    void decideConnect(std::string_view id, int status, std::string &body);
    // libwebsockets takes the socket with the head we read; the 101 follows.
    void adopt(Session *s);
    // LWS_CALLBACK_ESTABLISHED: the connection is open.
    void established(Session *s, lws *wsi);

private:
    void fillInfo(Session *s, UpgradeRequest &&req);
    void admit(Session *s);  // $connect said yes: complete the upgrade, or first reach the proxy backend
    // The row was not committed within handshakeTimeoutSeconds (a full disk, a lock held for long): 503.
    static void onRowDeadline(struct ev_loop *, ev_timer *w, int);
    void stopRowDeadline(Session *s);
    ConnectionRow rowOf(Session *s);

    NetworkThreadState &t_;
};

}  // namespace wsgw
