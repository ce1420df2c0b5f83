// Owns: a message's way out to an open connection. Queueing frames (ours, reserved here, and those other
// threads reserved in LiveConnection::sendQueueBytes), closing a slow consumer whose queue crosses
// maxSendQueueBytes (1008), writing the queue onto the socket at WRITEABLE (FrameWriter) with the bytes
// libwebsockets still holds counted against the queue, sending our close frame once the queue is out, and
// dropping the connection when its close deadline passes (SPEC section 10).
#pragma once

#include "frame_writer.h"
#include "send_queue.h"

#include <libwebsockets.h>

#include <cstddef>
#include <string>

namespace wsgw {

struct NetworkThreadState;
struct Session;

class SessionWriter {
public:
    explicit SessionWriter(NetworkThreadState &thread) : t_(thread) {}

    // A frame made on this thread (an error frame, a proxied backend message): reserved here.
    void queueOwnFrame(Session *s, std::string bytes, bool binary);
    // A frame whose bytes the sender has reserved in live->sendQueueBytes (LiveConnection::reserveSend).
    void queueReserved(Session *s, Payload &&payload, bool binary);
    // The frames still queued are dropped with the connection: their bytes leave the gauges.
    void dropQueued(Session *s);
    // LWS_CALLBACK_SERVER_WRITEABLE; returns what the callback returns (-1 closes).
    int writeable(Session *s, lws *wsi);
    // The close frame was not taken in time (a client that does not read): the TCP connection is dropped;
    // libwebsockets reports it CLOSED, which runs $disconnect with the close code we chose.
    void dropAtDeadline(Session *s);

private:
    void closeSlowConsumer(Session *s);
    void holdForLibwebsockets(Session *s, size_t bytes);
    void releaseHeldByLws(Session *s);

    NetworkThreadState &t_;
    FrameWriter writer_;  // a connection's queued frames onto its socket
};

}  // namespace wsgw
