// Owns: the end of an accepted connection. Asking for a close (after the queued frames, or at once from the
// receive side), the client's close frame (echoed when valid, failed with 1002/1007 when not), and finishing
// a connection that is gone: forgetting it everywhere, telling a proxy backend, and running its
// $disconnect with the close code that wins (the peer's, then ours, else 1006).
#pragma once

#include <libwebsockets.h>

#include <cstddef>
#include <string>

namespace wsgw {

struct NetworkThreadState;
struct Session;

class SessionCloser {
public:
    explicit SessionCloser(NetworkThreadState &thread) : t_(thread) {}

    // Closes after the frames already queued have been written, or drops the connection when they have not
    // been within SessionTimers::kCloseDeadlineSeconds.
    void requestClose(Session *s, int code, std::string reason);
    // Drops what is queued and marks the close; the caller (the receive side) closes.
    void requestCloseNow(Session *s, int code, std::string reason);
    // LWS_CALLBACK_WS_PEER_INITIATED_CLOSE; returns what the callback returns.
    int peerClosed(Session *s, lws *wsi, const unsigned char *p, size_t len);
    // The connection is gone: forget it everywhere and run its $disconnect (it was accepted).
    void finish(Session *s);

private:
    void runDisconnect(Session *s, int code, const std::string &reason);

    NetworkThreadState &t_;
};

}  // namespace wsgw
