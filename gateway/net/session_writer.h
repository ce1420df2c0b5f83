// Owns: a message's way out to an open connection. Queueing frames (ours, reserved here, and those other
// threads reserved in LiveConnection::sendQueueBytes), closing a slow consumer whose queue crosses
// maxSendQueueBytes (1008), writing the queue onto the socket at WRITEABLE (FrameWriter) with the bytes
// libwebsockets still holds counted against the queue, sending our close frame once the queue is out, and
// dropping the connection when its close deadline passes (5 s: docs/limits.md, "Every close has a deadline").
//
// A frame queued on an idle connection is not written through a WRITEABLE callback: asking libwebsockets
// for one costs two epoll_ctl calls (POLLOUT on, then off) and a loop turn per message, a fifth of the
// network thread's time with one message in flight per connection. The connection is put on a list
// instead, and flushScheduled() writes each listed queue straight to its socket before the loop sleeps,
// several frames in one sendmsg() when several came in the same turn; only what the kernel does not take
// waits for WRITEABLE. A connection whose read was answered whole on this thread, or whose answers from a
// worker were just taken from the command queue, is written at once instead (flushListedNow), while it is
// still in the cache: with thousands of connections, by the end of the turn it would be cold again.
#pragma once

#include "frame_writer.h"
#include "send_queue.h"

#include <libwebsockets.h>

#include <cstddef>
#include <string>
#include <vector>

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
    // Before the loop sleeps (ev_prepare): the queues of connections that got frames this turn, written.
    void flushScheduled();
    // The queue of a listed connection, written now rather than before the loop sleeps: a read whose messages
    // were all answered on this thread (inline handlers), or a worker's answers taken from the command queue.
    // The connection is in the cache now; with thousands of connections a turn handles hundreds of them, and
    // by its end each one is cold again. Nothing listed: nothing to do.
    void flushListedNow(Session *s);
    // The close frame was not taken in time (a client that does not read): the TCP connection is dropped;
    // libwebsockets reports it CLOSED, which runs $disconnect with the close code we chose.
    void dropAtDeadline(Session *s);

private:
    void closeSlowConsumer(Session *s);
    void scheduleFlush(Session *s);
    void flushNow(Session *s);
    // The head of the queue onto the socket; false when the socket failed.
    bool writeQueued(Session *s, lws *wsi);
    void holdForLibwebsockets(Session *s, size_t bytes);
    void releaseHeldByLws(Session *s);

    NetworkThreadState &t_;
    FrameWriter writer_;  // a connection's queued frames onto its socket
    std::vector<Session *> flushList_;  // sessions whose flushListSlot is set, in the order they were listed
};

}  // namespace wsgw
