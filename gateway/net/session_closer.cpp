// Owns: closes, the peer's close frame and $disconnect (session_closer.h).
#include "session_closer.h"

#include "webpubsub_endpoint.h"

#include "client_frame_guard.h"
#include "close_frame.h"
#include "command_queue.h"
#include "connection_id.h"
#include "log.h"
#include "network_thread_state.h"
#include "proxy_relay.h"
#include "session_timers.h"
#include "session_writer.h"

#include <cstring>

namespace wsgw {

namespace {

// The code and reason $disconnect reports: the peer's close frame wins, then ours, else an abnormal close.
std::pair<int, std::string> closeCodeOf(Session *s) {
    if (s->closing && s->closing->peerClosed) {
        int code = s->closing->peerCode ? s->closing->peerCode : 1005;
        return {code, s->closing->peerCode ? s->closing->peerReason : "Client-side close frame status not set"};
    }
    if (s->closeRequested) return {s->closingInfo().code, s->closingInfo().reason};
    // Failed for a bad client frame, but gone before our close was asked for (the client hung up meanwhile).
    if (s->clientFrames.failed()) return {s->clientFrames.faultCloseCode(), s->clientFrames.faultReason()};
    return {1006, "Connection closed abnormally"};
}

}  // namespace

SessionCloser::SessionCloser(NetworkThreadState &thread) : t_(thread) {
    ev_timer_init(&badFrameTimer_, onBadClientFrames, 0., 0.);
    badFrameTimer_.data = this;
}

void onBadClientFrame(Session *s) { s->thread->closer->badClientFrameFound(s); }

void SessionCloser::badClientFrameFound(Session *s) {
    badFrameFound_.push_back(s->id);
    if (!ev_is_active(&badFrameTimer_)) ev_timer_start(t_.loop, &badFrameTimer_);
}

void SessionCloser::onBadClientFrames(struct ev_loop *, ev_timer *w, int) {
    auto *closer = static_cast<SessionCloser *>(w->data);
    std::vector<std::string> found;
    found.swap(closer->badFrameFound_);
    for (const std::string &id : found) {
        Session *s = closer->t_.find(id);
        if (!s || s->state != Session::State::Open) continue;  // not open yet: established() notes it again
        log::info("client frame fails the connection",
                  {log::Field("connectionId", id), log::Field("sourceIp", s->peer),
                   log::Field("code", static_cast<int64_t>(s->clientFrames.faultCloseCode())),
                   log::Field("reason", s->clientFrames.faultReason())});
        closer->failBadClientFrame(s);
    }
}

void SessionCloser::failBadClientFrame(Session *s) {
    if (s->state != Session::State::Open || s->closeRequested || !s->live) return;
    if (!s->clientFrames.allDelivered()) return;  // messageEnded() calls again as they come
    LiveConnection &live = *s->live;
    // As a paused read waits (MessageReceiver::pauseReading): the worker that brings the pending count down
    // sees readPaused and posts a Resume, which comes back here, after the answer it posted before it.
    live.readPaused.store(true, std::memory_order_release);
    if (live.pendingMessages.load(std::memory_order_acquire) != 0) return;
    if (!live.readPaused.exchange(false, std::memory_order_acq_rel)) return;  // a worker's Resume is on its way
    // Through the command queue, so that the close comes after every answer a worker posted before.
    t_.commands->post(Command{Command::Kind::Close, InlineId(s->id), s->clientFrames.faultReason(), false,
                              s->clientFrames.faultCloseCode()});
}

void SessionCloser::requestClose(Session *s, int code, std::string reason) {
    if (s->closeRequested) return;
    s->closeRequested = true;
    s->closingInfo().code = code;
    s->closingInfo().reason = std::move(reason);
    if (s->state == Session::State::Open) {
        t_.timers->armCloseDeadline(s);
        lws_callback_on_writable(s->wsi);
    }
}

void SessionCloser::dropTransport(Session *s) {
    if (s->closeRequested || s->state != Session::State::Open || !s->wsi) return;
    // Both directions end; libwebsockets then reads the end of the stream and closes the connection, which
    // finish() takes for a drop.
    ::shutdown(lws_get_socket_fd(s->wsi), SHUT_RDWR);
}

void SessionCloser::requestCloseNow(Session *s, int code, std::string reason) {
    t_.writer->dropQueued(s);
    s->closeRequested = true;
    s->closingInfo().code = code;
    s->closingInfo().reason = std::move(reason);
}

// The client's close frame: a valid one is echoed (return 0) and reaches $disconnect; a malformed one
// fails the connection with 1002 or 1007 (close_frame.h). libwebsockets would check the reason only if it
// checked UTF-8 itself, which we do per message instead.
int SessionCloser::peerClosed(Session *s, lws *wsi, const unsigned char *p, size_t len) {
    PeerClose close = checkPeerClose(p, len);
    Session::Closing &c = s->closingInfo();
    if (close.valid) {
        c.peerClosed = true;
        c.peerCode = close.code;
        c.peerReason = std::move(close.reason);
        return 0;
    }
    // $disconnect reports the failure we answered with, not the peer's malformed frame.
    s->closeRequested = true;
    c.code = close.failWith;
    c.reason = close.fault;
    lws_close_reason(wsi, static_cast<lws_close_status>(close.failWith),
                     reinterpret_cast<unsigned char *>(const_cast<char *>(close.fault)), std::strlen(close.fault));
    return -1;
}

void SessionCloser::finish(Session *s) {
    s->clientFrames.unwatch();  // before libwebsockets closes the socket (LWS_CALLBACK_CLOSED comes first)
    if (s->state == Session::State::Finished) return;
    s->state = Session::State::Finished;
    t_.timers->stop(s);
    t_.writer->dropQueued(s);
    if (s->backendConnect) ev_timer_stop(t_.loop, &s->backendConnect->timer);
    if (t_.adopting == s) t_.adopting = nullptr;  // lws may still call back for this wsi; it is no longer ours
    if (wpsDetachForRecovery(t_, s)) {  // a reliable Web PubSub client may come back: $disconnect waits
        t_.eraseSession(s);             // (its address's count goes with it: wpsDetachForRecovery)
        return;
    }
    t_.releaseIp(s);
    t_.registry.remove(s->id);
    forgetConnectionGroups(t_.host, s->id);
    wpsClientFinished(t_, s);
    const bool ranElsewhere = s->live && s->live->disconnectRanElsewhere.load();
    bool disconnectRuns = t_.table && t_.table->disconnect && !ranElsewhere;
    // Else once $disconnect has run (Invocation::removeRowAfter). A connection whose $disconnect ran elsewhere
    // has its row adopted by the node that reaped this one, which deletes it after running it: deleting it here
    // would leave nothing to reap from that node if it died first.
    if (!disconnectRuns && !ranElsewhere) t_.store.remove(s->id);
    auto [code, reason] = closeCodeOf(s);
    if (s->backend) {  // the client left: the backend hears the same close
        bool sendable = code >= 1000 && code != 1005 && code != 1006 && code != 1015 && code < 5000;
        t_.proxyRelay->closeBackend(s, sendable ? code : 1001, sendable ? reason : std::string("Going away"));
    }
    if (!ranElsewhere) runDisconnect(s, code, reason);
    log::debug("disconnected", {log::Field("connectionId", s->id), log::Field("code", code), log::Field("reason", reason)});
    t_.eraseSession(s);
    if (t_.draining && t_.sessions.empty()) ev_break(t_.loop, EVBREAK_ALL);
}

void SessionCloser::runDisconnect(Session *s, int code, const std::string &reason) {
    const std::shared_ptr<const RouteTable> &table = t_.table;
    if (table && table->disconnect) {
        Invocation inv;
        inv.table = table;
        inv.route = table->disconnect;
        inv.connection = s->live;
        inv.type = WSGW_DISCONNECT;
        inv.requestId = newRequestId();
        inv.requestTimeMs = nowEpochMs();
        inv.disconnectCode = code;
        inv.disconnectReason = reason;
        inv.removeRowAfter = &t_.store;
        t_.invoker().submit(t_.laneOf(s), std::move(inv), false);
    } else {
        t_.logGatewayAnswer("DISCONNECT", s->id, "$disconnect", 200, s->live->info.sourceIp, s->live->info.userAgent, {}, {},
                            code);
    }
}

}  // namespace wsgw
