// Owns: the end of an accepted connection. Asking for a close (after the queued frames, or at once from the
// receive side), the client's close frame (echoed when valid, failed with 1002/1007 when not), and finishing
// a connection that is gone: forgetting it everywhere, telling a proxy backend, and running its
// $disconnect with the close code that wins (the peer's, then ours, then the code of a client frame that
// fails the connection, else 1006). And failing a connection whose client sent such a frame (client_frame_guard.h:
// 1002, or 1009/1008 for the size limits and the control frame budget), once the messages before it are answered.
#pragma once

#include <ev.h>
#include <libwebsockets.h>

#include <cstddef>
#include <string>
#include <vector>

namespace wsgw {

struct NetworkThreadState;
struct Session;

class SessionCloser {
public:
    explicit SessionCloser(NetworkThreadState &thread);

    // Closes after the frames already queued have been written, or drops the connection when they have not
    // been within SessionTimers::kCloseDeadlineSeconds.
    void requestClose(Session *s, int code, std::string reason);
    // Ends the socket without a close frame, as the network dropping it would (kDropTransportCode).
    void dropTransport(Session *s);
    // Drops what is queued and marks the close; the caller (the receive side) closes.
    void requestCloseNow(Session *s, int code, std::string reason);
    // LWS_CALLBACK_WS_PEER_INITIATED_CLOSE; returns what the callback returns.
    int peerClosed(Session *s, lws *wsi, const unsigned char *p, size_t len);
    // The connection is gone: forget it everywhere and run its $disconnect (it was accepted).
    void finish(Session *s);

    // Its client sent a frame that fails the connection (unmasked, reserved opcode ...); called inside libwebsockets' read (or before adoption), so this
    // only notes it: the loop's next iteration, once the frames read before it have been dispatched, goes on
    // (if the connection is open by then; else established() calls this again).
    void badClientFrameFound(Session *s);
    // Outside libwebsockets' read: closes with the frame's code once the messages before the frame are delivered and
    // answered (their answers are queued first), or now when none is pending. Called again as each of them
    // is delivered (MessageReceiver::messageEnded) and by each Resume a worker posts on answering one
    // (MessageReceiver::resumeReading).
    void failBadClientFrame(Session *s);

private:
    void runDisconnect(Session *s, int code, const std::string &reason);
    static void onBadClientFrames(struct ev_loop *loop, ev_timer *w, int);

    NetworkThreadState &t_;
    ev_timer badFrameTimer_{};                // 0 s: the loop's next iteration
    std::vector<std::string> badFrameFound_;  // connection IDs, until it fires
};

}  // namespace wsgw
