// Owns: the way in. The listening socket and its accept watcher (with back-off when descriptors run out, and
// the TLS terminator in front for wss://), reading each upgrade request ourselves within the handshake
// timeout, admission (Origin, connections per address, subprotocol) and the refusals the gateway answers
// itself; and dropping a connection that never became a WebSocket. A request that passes goes to the
// $connect flow (connect_flow.h).
#pragma once

#include "accept_backoff.h"
#include "handshake.h"
#include "tls_terminator.h"

#include <ev.h>

#include <memory>
#include <string>

namespace wsgw {

struct NetworkThreadState;
struct Session;

class UpgradeReader {
public:
    static constexpr size_t kMaxHeadBytes = 8192;

    explicit UpgradeReader(NetworkThreadState &thread);

    // Opens the listening socket (and the TLS terminator when settings ask for wss://). Returns "" or what
    // went wrong.
    std::string open();
    void startAccepting();  // on the thread's loop
    void stopAccepting();   // the drain: the listening socket is closed
    bool listening() const { return listenFd_ >= 0; }
    bool tlsEnabled() const { return tls_ != nullptr; }
    void closeTls() { tls_.reset(); }  // its relays' watchers live on the loop
    void closeListeningSocket();

    // A refusal the gateway makes itself (no handler runs): counted, logged and sent.
    void refuseUpgrade(Session *s, int status, const std::string &reason);
    // Completes the handshake (101, with `subprotocol` when not empty) and closes the WebSocket at once with
    // `code` and `reason`, no handler running: a refusal for clients that act only on a close code (Azure's
    // reliable clients stop retrying a recovery on 1008, and retry an HTTP refusal for 30 s).
    void closeAfterUpgrade(Session *s, const UpgradeRequest &request, const std::string &subprotocol, int code,
                           const std::string &reason);
    // Drops a connection that never became a WebSocket: nothing of it is in the registry or the table.
    void dropUnaccepted(Session *s, const std::string *response);
    void stopHandshakeWatchers(Session *s);

private:
    static void onAccept(struct ev_loop *, ev_io *w, int);
    static void onHandshakeTimeout(struct ev_loop *, ev_timer *w, int);
    static void onHeadReadable(struct ev_loop *, ev_io *w, int);
    void beginHandshake(AcceptedSocket &&socket);
    // Whether a new socket from `peer` may be taken; true with `*counted` set when it now counts.
    bool pendingAdmitted(const std::string &peer, bool *counted);
    void readHead(Session *s);
    bool admitted(Session *s, const UpgradeRequest &request);  // Origin and per-address: false has refused
    bool subprotocolChosen(Session *s, HeadParse &parsed);      // false has refused

    NetworkThreadState &t_;
    int listenFd_ = -1;
    ev_io acceptWatcher_{};
    AcceptBackoff acceptBackoff_;
    std::unique_ptr<TlsTerminator> tls_;  // wss://: accepted sockets go through it first
};

}  // namespace wsgw
