// Owns: the proxy relay. For a proxied API (or a connection whose $connect handler chose a backend) it reaches
// the backend first (within kBackendConnectSeconds, refusing the upgrade with 502/504 when it cannot; a host
// name is looked up off this thread first, by host_resolver, within kDnsLookupSeconds), then
// relays messages both ways, holding back whichever side reads slowly, and carries a close from either side
// to the other. The backend's WebSocket client is BackendLink (backend_link.h).
#pragma once

#include "backend_link.h"

#include <ev.h>

#include <string>
#include <string_view>

namespace wsgw {

struct NetworkThreadState;
struct Session;

class ProxyRelay {
public:
    explicit ProxyRelay(NetworkThreadState &thread) : t_(thread) {}

    void startBackend(Session *s);        // the API's proxy backend, with the client's path (and query)
    void startChosenBackend(Session *s);  // the one a $connect handler named (Azure's SignalR pattern)
    // The client's message (in s->rx) goes to the backend; a backend that reads slowly stops us reading the client.
    void forwardToBackend(Session *s);
    // The client's send queue has gone down: a backend held back for it is read again.
    void resumeBackendIfDrained(Session *s);
    // The resolver's answer for a session's backend host (a command from its thread): connect, or refuse with 502.
    void backendResolved(std::string_view connectionId, bool found, std::string addressesOrError);
    // After a failed attempt: connects to the next address of the backend's name, if any is left and the
    // deadline has not passed. False: none is left.
    bool nextBackendAddress(Session *s);
    // Detaches the backend from the session and closes it with `code`.
    void closeBackend(Session *s, int code, const std::string &reason);

private:
    struct Events;
    static void onBackendTimeout(struct ev_loop *, ev_timer *w, int);
    void connectBackend(Session *s, BackendTarget target);
    void lookUpBackend(Session *s, BackendTarget target);
    void openLink(Session *s, const BackendTarget &target);
    void refuseBackend(Session *s, int status, const std::string &reason);

    NetworkThreadState &t_;
};

}  // namespace wsgw
