// Owns: a message's way in on an open connection. Reassembling frames into messages (LWS_CALLBACK_RECEIVE),
// the frame and message limits (1009, reading the rest of an oversized message first), UTF-8 of text
// messages, the API's, route's and connection's throttles (429), route selection and handing the message
// to the Invoker (or the proxy backend; an "inline" handler's message is run here when its connection has
// nothing with the workers), and pausing and resuming reading at the pending bounds
// (limits.maxPendingMessages and maxPendingBytes).
#pragma once

#include "route_table.h"

#include <libwebsockets.h>

#include <cstddef>
#include <string>

namespace wsgw {

struct NetworkThreadState;
struct Session;

class MessageReceiver {
public:
    explicit MessageReceiver(NetworkThreadState &thread) : t_(thread) {}

    // LWS_CALLBACK_RECEIVE: `in` is the next chunk of the current message (inflated with permessage-deflate).
    // Returns what the callback returns (-1 closes at once).
    int receive(Session *s, lws *wsi, const char *in, size_t len);
    // Whether a message that came whole in one frame of `len` payload bytes may be taken straight from the
    // frame screen (takeWhole) instead of through libwebsockets: an open, plain connection (no
    // permessage-deflate, proxy or Web PubSub protocol) that is not closing, not paused, between messages,
    // and a frame within the limits. Anything else goes the usual way, and libwebsockets decides.
    bool takesWhole(const Session *s, size_t len) const;
    // Such a message (client_frame_guard.h): handled as receive() handles a message's one chunk. Called inside
    // libwebsockets' read, outside its callback. Returns true when it decided to close the connection at once
    // (1007): the read must then fail (recv -1, not EAGAIN), which closes as a -1 from the callback would,
    // with the reason given to lws_close_reason and reading left on for the client's close.
    bool takeWhole(Session *s, const char *payload, size_t len, bool binary);
    // A worker brought the lane below half of its bounds (Command::Kind::Resume).
    void resumeReading(Session *s);

private:
    int messageEnded(Session *s, lws *wsi);
    int closeInvalidUtf8(Session *s, lws *wsi);
    int closeTooBig(Session *s, lws *wsi);
    int closeFromReceive(Session *s, lws *wsi, lws_close_status code, const char *reason);
    void dispatchMessage(Session *s, const CompiledRoute *route);
    void answerThrottled(Session *s, const CompiledRoute *route, const std::string &requestId);
    void answerNoRoute(Session *s, const std::string &requestId);
    void submitMessage(Session *s, const CompiledRoute *route, std::string &&requestId, int64_t now);
    bool withinThrottles(Session *s, const CompiledRoute *route);
    void pauseReading(Session *s, const Limits &limits);

    NetworkThreadState &t_;
    std::string scratchKey_;  // route selection's, reused for every message
    bool outsideCallback_ = false;  // in takeWhole: a close is reported to the read, not returned as -1
    bool closeAtOnce_ = false;      // takeWhole's message closes the connection (closeFromReceive)
};

}  // namespace wsgw
