// Owns: receiving, limits, UTF-8, throttles and dispatch of messages (message_receiver.h).
#include "message_receiver.h"

#include "command_queue.h"
#include "connection_id.h"
#include "network_thread_state.h"
#include "proxy_relay.h"
#include "session_closer.h"
#include "session_timers.h"
#include "session_writer.h"
#include "utf8.h"
#include "webpubsub_endpoint.h"

#include <algorithm>
#include <cstring>

namespace wsgw {

namespace {

constexpr double kTouchIntervalSeconds = 1;      // lastActiveAt is written at most this often per connection
constexpr size_t kMaxDiscardBytes = 16u << 20;  // of an oversized message, before closing regardless

}  // namespace

int MessageReceiver::receive(Session *s, lws *wsi, const char *in, size_t len) {
    if (s->state != Session::State::Open) return 0;
    if (lws_is_first_fragment(wsi)) {
        s->rx.clear();
        s->rxBinary = lws_frame_is_binary(wsi) != 0;
    }
    size_t frameLeft = lws_remaining_packet_payload(wsi);
    bool frameStarts = !s->inFrame;
    s->inFrame = frameLeft != 0;
    bool messageEnds = lws_is_final_fragment(wsi) && frameLeft == 0;
    const RouteTable *table = t_.table.get();
    // With permessage-deflate `len` is inflated bytes and only what is left of the frame counts the wire.
    size_t wireBytes = frameLeft + (s->deflate ? 0 : len);
    if (frameStarts && !s->rxTooBig && table && wireBytes > table->config.limits.maxFrameBytes) {
        // Over the frame limit on the wire (AWS: 32 KiB): the same 1009 as an oversized message.
        s->rxTooBig = true;
        s->rxDiscarded = len;
        std::string().swap(s->rx);
        return messageEnds ? closeTooBig(s, wsi) : 0;
    }
    if (s->rxTooBig) {
        if (s->closeRequested) return 0;  // closing: what libwebsockets still inflates is dropped
        s->rxDiscarded += len;
        return messageEnds || s->rxDiscarded > kMaxDiscardBytes ? closeTooBig(s, wsi) : 0;
    }
    size_t limit = table ? table->config.limits.maxMessageBytes : 131072;
    if (s->rx.size() + len > limit) {
        // The rest of the message is read and dropped before closing: a socket closed with unread
        // bytes sends a TCP reset, and the client would see 1006 instead of our 1009.
        s->rxTooBig = true;
        s->rxDiscarded = s->rx.size() + len;
        std::string().swap(s->rx);
        // A compressed message closes at once: its remaining wire bytes are few, but inflating them (a
        // "deflate bomb" of up to 16 MiB) would hold this thread's other connections back.
        return messageEnds || s->deflate ? closeTooBig(s, wsi) : 0;
    }
    // A message's first chunk takes a reused buffer when it does not fit the one it has (after a message
    // the session's buffer is an empty string's inline one), and reserves its whole frame: at most one
    // allocation, and no copies while it grows.
    if (s->rx.empty()) {
        size_t frameBytes = std::min(limit, len + frameLeft);
        if (frameBytes > s->rx.capacity() && !t_.spareBuffers.empty()) s->rx = t_.takeSpareBuffer();
        if (frameLeft) s->rx.reserve(frameBytes);
    }
    s->rx.append(in, len);
    t_.host.metrics.bytesIn.fetch_add(len, std::memory_order_relaxed);
    return messageEnds ? messageEnded(s, wsi) : 0;
}

bool MessageReceiver::takesWhole(const Session *s, size_t len) const {
    const RouteTable *table = t_.table.get();
    return table && s->state == Session::State::Open && s->wsi && !s->deflate && !s->backend && !s->backendConnect &&
           !s->wps && !s->closeRequested && !s->closing && !s->rxFlowOff && !s->rxTooBig && !s->inFrame && s->rx.empty() &&
           len <= table->config.limits.maxFrameBytes && len <= table->config.limits.maxMessageBytes;
}

bool MessageReceiver::takeWhole(Session *s, const char *payload, size_t len, bool binary) {
    s->rxBinary = binary;
    if (len > s->rx.capacity() && !t_.spareBuffers.empty()) s->rx = t_.takeSpareBuffer();
    s->rx.append(payload, len);
    t_.host.metrics.bytesIn.fetch_add(len, std::memory_order_relaxed);
    outsideCallback_ = true;
    closeAtOnce_ = false;
    messageEnded(s, s->wsi);
    outsideCallback_ = false;
    return closeAtOnce_;
}

int MessageReceiver::messageEnded(Session *s, lws *wsi) {
    s->clientFrames.messageDelivered();
    if (s->inflateInput) s->inflateInput->trim();  // nothing is left to inflate once a message has ended
    // UTF-8 is checked here, over the whole message, rather than by libwebsockets byte by byte (which
    // cost a fifth of the time of a 16 KiB echo); a character split across frames is then fine too.
    // A JSON body is checked by the route selector in the same pass that selects its route.
    bool proxied = s->backend != nullptr;
    bool scannedAsUtf8 = false;
    const RouteTable *table = t_.table.get();
    if (s->wps && s->wps->subprotocol != WpsSubprotocol::None && !proxied) {  // Azure Web PubSub's protocol
        if (!s->rxBinary && !isValidUtf8(s->rx.data(), s->rx.size())) return closeInvalidUtf8(s, wsi);
        const CompiledRoute *eventRoute = nullptr;
        WpsReceive received = wpsReceive(t_, s, &eventRoute);
        if (received == WpsReceive::Dispatch) dispatchMessage(s, eventRoute);
        if (received == WpsReceive::Queued && table) {
            const Limits &limits = table->config.limits;
            if (s->live->pendingAtBound(limits.maxPendingMessages, limits.maxPendingBytes)) pauseReading(s, limits);
        }
        if (s->clientFrames.failed()) t_.closer->failBadClientFrame(s);  // this may have been the last before it
        return 0;
    }
    const CompiledRoute *route = table && !proxied ? table->route(s->rx, s->rxBinary, scratchKey_, &scannedAsUtf8) : nullptr;
    if (!s->rxBinary && !scannedAsUtf8 && !isValidUtf8(s->rx.data(), s->rx.size())) return closeInvalidUtf8(s, wsi);
    dispatchMessage(s, route);
    if (s->clientFrames.failed()) t_.closer->failBadClientFrame(s);  // this may have been the last before it
    return 0;
}

int MessageReceiver::closeInvalidUtf8(Session *s, lws *wsi) {
    static const char kReason[] = "Invalid UTF-8 in a text message";
    std::string().swap(s->rx);
    return closeFromReceive(s, wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, kReason);
}

int MessageReceiver::closeTooBig(Session *s, lws *wsi) {
    return closeFromReceive(s, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "Message too big");
}

// Closes from inside LWS_CALLBACK_RECEIVE. Returning -1 there closes at once; but while libwebsockets
// is still inflating a compressed message it drops that return, and the connection would hang. So a
// permessage-deflate connection closes from its next WRITEABLE instead, as requestClose does. A message
// taken whole from the frame screen (takeWhole) has no callback to return -1 from: its read fails instead.
int MessageReceiver::closeFromReceive(Session *s, lws *wsi, lws_close_status code, const char *reason) {
    t_.closer->requestCloseNow(s, static_cast<int>(code), reason);
    if (s->deflate) {
        lws_rx_flow_control(wsi, 0);  // nothing more is read from a connection that is closing
        lws_callback_on_writable(wsi);
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);  // a peer that never reads is dropped
        t_.timers->armCloseDeadline(s);  // and by us, should libwebsockets not get to it (it may still be inflating)
        return 0;
    }
    lws_close_reason(wsi, code, reinterpret_cast<unsigned char *>(const_cast<char *>(reason)), std::strlen(reason));
    if (outsideCallback_) closeAtOnce_ = true;  // takeWhole: its read fails instead (client_frame_guard.cpp)
    return -1;
}

// `route` is what the table selected (nullptr for a proxied connection, or no route and no $default).
void MessageReceiver::dispatchMessage(Session *s, const CompiledRoute *route) {
    // The loop's times, each read once per iteration, not per message: the wall clock (ev_now) for the
    // lastActiveAt timestamp, the monotonic one for how long since the last write and the idle timeout.
    auto now = static_cast<int64_t>(ev_now(t_.loop) * 1000.0);
    double loopNow = t_.loopSeconds();
    s->live->lastActiveAtMs.store(now, std::memory_order_relaxed);
    if (loopNow - s->lastTouchAt >= kTouchIntervalSeconds) {
        s->lastTouchAt = loopNow;
        t_.store.touch(s->id, now);
    }
    bool proxied = s->backend != nullptr;
    std::string requestId = newRequestId();
    s->lastActivity = loopNow;
    if (t_.table && !withinThrottles(s, route)) {
        if (s->wpsRequest) wpsAnswerRefused(t_, s, "Too Many Requests: over the API's, the route's or this connection's throttle");
        else answerThrottled(s, route, requestId);
        return;
    }
    if (proxied) {
        t_.proxyRelay->forwardToBackend(s);
        return;
    }
    if (!route) {
        if (s->wpsRequest) wpsAnswerRefused(t_, s, "no route for this event and no $default route in routes.json");
        else answerNoRoute(s, requestId);
        return;
    }
    submitMessage(s, route, std::move(requestId), now);
}

void MessageReceiver::answerThrottled(Session *s, const CompiledRoute *route, const std::string &requestId) {
    RouteMetrics *m = route ? route->metrics : t_.defaultMetrics;
    t_.writer->queueOwnFrame(s, awsErrorFrame("Too Many Requests", s->id, requestId), false);
    s->rx.clear();
    RouteMetrics::add(m->messagesIn);
    RouteMetrics::add(m->clientErrors);
    RouteMetrics::add(m->messagesOut);
    t_.logGatewayAnswer("MESSAGE", s->id, route ? std::string_view(route->key) : std::string_view("$default"), 429,
                        s->live->info.sourceIp, s->live->info.userAgent, "Too Many Requests", requestId);
}

void MessageReceiver::answerNoRoute(Session *s, const std::string &requestId) {
    t_.writer->queueOwnFrame(s, awsErrorFrame("Forbidden", s->id, requestId), false);
    s->rx.clear();
    RouteMetrics::add(t_.defaultMetrics->messagesIn);
    RouteMetrics::add(t_.defaultMetrics->clientErrors);
    RouteMetrics::add(t_.defaultMetrics->messagesOut);
    t_.logGatewayAnswer("MESSAGE", s->id, "$default", 403, s->live->info.sourceIp, s->live->info.userAgent, "Forbidden",
                        requestId);
}

void MessageReceiver::submitMessage(Session *s, const CompiledRoute *route, std::string &&requestId, int64_t now) {
    RouteMetrics::add(route->metrics->messagesIn);
    // An "inline" handler runs here and now when its connection has nothing with the workers, its answer
    // straight onto the send queue. Web PubSub events are answered with their ack (webpubsub_clients.h) on a worker.
    bool runsHere = route->runsInline && !s->wpsRequest && Invoker::laneIdle(s->lane);
    Invocation inv(t_.turnReceivedAt());
    inv.route = route;
    inv.connection = s->live;
    inv.type = WSGW_MESSAGE;
    inv.body = std::move(s->rx);
    s->rx = std::string();
    inv.binary = s->rxBinary;
    inv.requestId = std::move(requestId);
    inv.messageId = newRequestId();
    inv.requestTimeMs = now;
    if (runsHere) {
        // Not counted against the pending bounds (it is handled before anything more is read) and not holding
        // the route table: this thread's holds it, and a reload swaps that only between events of the loop.
        CommandQueue::DirectSends direct(*t_.commands);
        t_.invoker().runInline(std::move(inv));
        return;
    }
    inv.table = t_.table;  // keeps the route and its plugin alive on the worker
    inv.pendingBytes = inv.body.size();
    inv.pendingCounted = true;
    if (s->wpsRequest) {
        inv.wpsClient = s->wps;
        inv.wpsRequest = std::move(s->wpsRequest);
    }
    s->live->addPending(inv.pendingBytes);
    t_.host.metrics.pendingBytes.fetch_add(static_cast<int64_t>(inv.pendingBytes), std::memory_order_relaxed);
    t_.invoker().submit(t_.laneOf(s), std::move(inv), false);  // woken once per loop iteration (onPrepare)
    if (t_.table) {
        const Limits &limits = t_.table->config.limits;
        if (s->live->pendingAtBound(limits.maxPendingMessages, limits.maxPendingBytes)) pauseReading(s, limits);
    }
}

// The pending bounds, receive side: the lane is at a bound, so the socket is not read and TCP holds the client
// back. The worker that brings the lane below half asks for the resume (Command::Kind::Resume).
void MessageReceiver::pauseReading(Session *s, const Limits &limits) {
    if (s->rxFlowOff || !s->wsi) return;
    s->rxFlowOff = true;
    s->live->readPaused.store(true, std::memory_order_release);
    lws_rx_flow_control(s->wsi, 0);
    t_.host.metrics.readsPaused.fetch_add(1, std::memory_order_relaxed);
    // The workers may have emptied the lane before the flag was up: then nobody else would resume.
    if (s->live->pendingBelowHalf(limits.maxPendingMessages, limits.maxPendingBytes) &&
        s->live->readPaused.exchange(false, std::memory_order_acq_rel))
        resumeReading(s);
}

void MessageReceiver::resumeReading(Session *s) {
    // An unmasked frame was found: the messages before it are answered, then it closes (session_closer.h).
    if (s->clientFrames.failed()) t_.closer->failBadClientFrame(s);
    if (!s->rxFlowOff || s->live->readPaused.load(std::memory_order_acquire) || !s->wsi) return;
    s->rxFlowOff = false;
    if (!s->closeRequested) lws_rx_flow_control(s->wsi, 1);
}

// The API's, the route's and this connection's token buckets, in that order; false: over a limit.
bool MessageReceiver::withinThrottles(Session *s, const CompiledRoute *route) {
    double now = t_.loopSeconds();
    if (!t_.table->throttle.take(now)) return false;
    if (!route) return true;
    if (!route->throttle.take(now)) return false;
    if (!route->connectionThrottle.enabled()) return true;
    if (!s->routeBuckets) s->routeBuckets = std::make_unique<std::unordered_map<std::string, TokenBucket>>();
    auto it = s->routeBuckets->find(route->key);
    if (it == s->routeBuckets->end()) it = s->routeBuckets->emplace(route->key, TokenBucket(route->connectionThrottle)).first;
    return it->second.take(now);
}

}  // namespace wsgw
