// Owns: failing a client frame that must fail the connection (an unmasked one, RFC 6455 5.1, and the other
// faults client_frame_scanner.h lists) before libwebsockets sees it. libwebsockets 4.1.6
// unmasks with whatever mask a frame carries and never reports a missing one, and has no hook for it; but
// it reads every server socket with recv(2), which this binary defines itself (socket_calls.h). A
// descriptor registered here — an open connection from its adoption by libwebsockets until its socket is
// closed — has what each read returned (plaintext: below the screen, TLS is already taken off) run through
// a ClientFrameScanner, which also takes the frames' masks off in place (libwebsockets then skips its own
// byte-at-a-time unmasking: ClientFrameScanner::scanUnmasking). The bytes before an unmasked frame's header
// are returned (EAGAIN when there are none) and libwebsockets never sees that frame or anything after it;
// onBadClientFrame() is told, to fail the connection from the loop (1002; 1009 or 1008 for the limits:
// client_frame_scanner.h).
// From then on a read of that descriptor drains what the client sent and discards it (EAGAIN), or reports
// its end (0): the socket does not stay readable (a level-triggered watcher would spin), the client's close
// and FIN still end the connection at once, and no unread bytes turn our close into a reset.
//
// A read that holds only whole messages, each one text or binary frame (the common case), between messages
// on an open plain connection (MessageReceiver::takesWhole), is handed to the receiver here, frame by frame,
// and libwebsockets is told EAGAIN: its frame parser, which walks each header byte by byte, never runs for
// them. It is at a frame boundary then (everything it was given ended at one) and holds nothing buffered
// (it drains its buffer before it reads). Any other read goes to libwebsockets whole; if the receiver
// pauses reading part-way, the frames left are handed to libwebsockets, which keeps them until it resumes;
// if it closes the connection at once (1007), the read fails, and libwebsockets closes as it would have.
#pragma once

#include "client_frame_scanner.h"
#include "config.h"

#include <cstddef>
#include <cstdint>

namespace wsgw {

struct Session;

// The limits a network thread's screen checks, from the route table's (control frames: fixed budget).
ClientFrameLimits clientFrameLimitsOf(const Limits &limits);

// Called on the network thread inside libwebsockets' read, the first time a session's client sends an
// unmasked frame (or when its pipelined bytes hold one): it must not call libwebsockets (session_closer.cpp).
void onBadClientFrame(Session *s);

class ClientFrameGuard {
public:
    ClientFrameGuard() = default;
    ClientFrameGuard(const ClientFrameGuard &) = delete;
    ClientFrameGuard &operator=(const ClientFrameGuard &) = delete;
    ~ClientFrameGuard() { unwatch(); }

    // The bytes the client sent after its upgrade request in the same reads (handed to libwebsockets as a
    // preloaded buffer, not read through recv): returns how many of them may be handed on (all of them
    // unless an unmasked frame is among them; then onBadClientFrame has been called). Once watch() has
    // succeeded their frames are unmasked in place, as a read's are (ClientFrameScanner::scanUnmasking).
    size_t screenPreloaded(Session *s, char *bytes, size_t len);
    // From here every read of `fd` on this thread is screened, until unwatch(). False (and not watched) when
    // `fd` is beyond the table (a descriptor limit raised past the hard limit seen at start-up).
    bool watch(int fd, Session *s);
    // Before the socket is closed (descriptors are reused at once, by any thread).
    void unwatch();
    // The handshake is answered (LWS_CALLBACK_ESTABLISHED): whether it negotiated permessage-deflate decides
    // whether RSV1 may be set on the frames read from then on.
    void handshakeDone(bool deflate) {
        scanner_.setDeflateNegotiation(deflate ? DeflateNegotiation::Negotiated : DeflateNegotiation::NotNegotiated);
    }
    // The network thread's limits (NetworkThreadState::clientFrameLimits), from before the first bytes.
    void setLimits(const ClientFrameLimits *limits) { scanner_.setLimits(limits); }
    bool failed() const { return scanner_.failed(); }
    // The close code and reason of the frame it failed on ("" while not failed).
    int faultCloseCode() const { return clientFrameFaultCloseCode(scanner_.fault()); }
    const char *faultReason() const { return clientFrameFaultReason(scanner_.fault()); }
    // A message reached the receiver (MessageReceiver::messageEnded). Once failed, all the messages before
    // the unmasked frame have when this equals what the scanner saw end: libwebsockets may hold some back
    // in its own buffer (pipelined with the request, or read while reading was paused) and deliver them on
    // a later loop iteration.
    void messageDelivered() { ++messagesDelivered_; }
    bool allDelivered() const { return static_cast<int32_t>(scanner_.messagesEnded() - messagesDelivered_) <= 0; }

    // recv()'s screened path (client_frame_guard.cpp).
    long screenedRecv(int fd, void *buf, size_t len, int flags);

private:
    // The read's whole messages to the receiver (above); returns what recv returns to libwebsockets.
    long takeWholeMessages(uint8_t *buf, size_t n);

    ClientFrameScanner scanner_;
    int fd_ = -1;
    uint32_t messagesDelivered_ = 0;
    Session *session_ = nullptr;
};

}  // namespace wsgw
