// Owns: the send queue of open connections and writing it out (session_writer.h).
#include "session_writer.h"

#include "log.h"
#include "network_thread_state.h"
#include "proxy_relay.h"
#include "session_closer.h"

#include <sys/socket.h>

namespace wsgw {

void SessionWriter::queueOwnFrame(Session *s, std::string bytes, bool binary) {
    if (s->closeRequested) return;
    switch (s->live->reserveSend(queuedFrameCost(bytes.size()), t_.host.maxSendQueueBytes.load(std::memory_order_relaxed))) {
    case LiveConnection::Reserve::Queued:
        queueReserved(s, Payload(std::move(bytes)), binary);
        break;
    case LiveConnection::Reserve::Overflowed:
        closeSlowConsumer(s);
        break;
    case LiveConnection::Reserve::Gone:
        break;
    }
}

void SessionWriter::queueReserved(Session *s, Payload &&payload, bool binary) {
    size_t len = payload.size();
    if (s->closeRequested) {  // closing: the frame is not sent, and its reservation is given back
        s->live->releaseSend(queuedFrameCost(len));
        return;
    }
    s->lastActivity = t_.loopSeconds();
    // The gauge sums what the connections' queues are charged (limits.maxSendQueueBytes), frame overhead
    // included, so an operator sees the same numbers maxSendQueueBytes is checked against.
    t_.host.metrics.sendQueueBytes.fetch_add(static_cast<int64_t>(queuedFrameCost(len)), std::memory_order_relaxed);
    s->out.push(OutFrame{std::move(payload), binary});
    if (s->state == Session::State::Open && s->out.frames() == 1) scheduleFlush(s);
}

void SessionWriter::scheduleFlush(Session *s) {
    if (s->flushListSlot) return;
    flushList_.push_back(s);
    s->flushListSlot = static_cast<uint32_t>(flushList_.size());
}

void SessionWriter::flushScheduled() {
    // flushNow() never finishes a session (a failed socket is closed from WRITEABLE), so the list holds.
    for (size_t i = 0; i < flushList_.size(); ++i) {
        Session *s = flushList_[i];
        if (!s) continue;  // finished meanwhile (dropQueued)
        s->flushListSlot = 0;
        flushNow(s);
    }
    flushList_.clear();
}

void SessionWriter::flushListedNow(Session *s) {
    if (!s->flushListSlot) return;  // nothing queued this turn (answers from workers come later)
    flushList_[s->flushListSlot - 1] = nullptr;
    s->flushListSlot = 0;
    flushNow(s);
}

void SessionWriter::flushNow(Session *s) {
    lws *wsi = s->wsi;
    if (s->state != Session::State::Open || !wsi || s->out.empty()) return;
    // libwebsockets holds bytes of ours (they go first), or our close frame is due: WRITEABLE does it.
    if (s->closeRequested || lws_partial_buffered(wsi) || !writeQueued(s, wsi) || !s->out.empty()) {
        lws_callback_on_writable(wsi);
        return;
    }
    if (s->backendPaused) t_.proxyRelay->resumeBackendIfDrained(s);
}

void SessionWriter::dropQueued(Session *s) {
    if (s->flushListSlot) {  // the session is about to go: off the flush list
        flushList_[s->flushListSlot - 1] = nullptr;
        s->flushListSlot = 0;
    }
    releaseHeldByLws(s);
    size_t frames = s->out.frames();
    size_t charged = s->out.clear() + frames * kQueuedFrameOverheadBytes;
    if (!frames) return;
    t_.host.metrics.sendQueueBytes.fetch_sub(static_cast<int64_t>(charged), std::memory_order_relaxed);
    if (s->live) s->live->releaseSend(charged);
}

void SessionWriter::closeSlowConsumer(Session *s) {
    t_.host.metrics.slowConsumerCloses.fetch_add(1, std::memory_order_relaxed);
    log::warn("slow consumer: send queue over maxSendQueueBytes, closing",
              {log::Field("connectionId", s->id), log::Field("queuedBytes", static_cast<uint64_t>(s->out.bytes()))});
    t_.closer->requestClose(s, 1008, kSlowConsumerReason);
}

void SessionWriter::dropAtDeadline(Session *s) {
    if (!s->wsi) return;
    log::info("close deadline passed: dropping the connection",
              {log::Field("connectionId", s->id), log::Field("queuedBytes", static_cast<uint64_t>(s->out.bytes()))});
    dropQueued(s);
    // A reset, not a FIN: a FIN would wait behind the bytes the client is not reading, and the kernel
    // would hold them (and the client would see an open connection) for minutes.
    int fd = lws_get_socket_fd(s->wsi);
    if (fd >= 0) {
        linger hard{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        // Shut both ways: the socket reports a hang-up even while its reading is paused, so
        // libwebsockets closes it (with the linger above, as a reset) even if its own timeout does not.
        ::shutdown(fd, SHUT_RDWR);
    }
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

// Bytes libwebsockets keeps for a connection still count against its send queue (limits.maxSendQueueBytes)
// until libwebsockets has written them, which it has when it calls WRITEABLE again with nothing held.
void SessionWriter::holdForLibwebsockets(Session *s, size_t bytes) {
    s->heldByLws += bytes;
    s->live->sendQueueBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    t_.host.metrics.sendQueueBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}

void SessionWriter::releaseHeldByLws(Session *s) {
    if (!s->heldByLws) return;
    if (s->live) s->live->releaseSend(s->heldByLws);
    t_.host.metrics.sendQueueBytes.fetch_sub(static_cast<int64_t>(s->heldByLws), std::memory_order_relaxed);
    s->heldByLws = 0;
}

bool SessionWriter::writeQueued(Session *s, lws *wsi) {
    if (s->heldByLws && !lws_partial_buffered(wsi)) releaseHeldByLws(s);
    if (s->out.empty()) return true;
    SendBatch batch;
    writer_.gather(s->out, batch);
    FrameWriter::Outcome outcome = writer_.send(wsi, batch);
    if (outcome.failed) return false;
    SendQueue::Sent sent = s->out.commit(batch, outcome.framesSent, [this](std::string &&buffer) { t_.recycle(std::move(buffer)); });
    t_.host.metrics.bytesOut.fetch_add(sent.payloadBytes, std::memory_order_relaxed);
    size_t charged = sent.payloadBytes + sent.messages * kQueuedFrameOverheadBytes;  // each was reserved with its overhead
    if (charged) {
        t_.host.metrics.sendQueueBytes.fetch_sub(static_cast<int64_t>(charged), std::memory_order_relaxed);
        s->live->releaseSend(charged);
    }
    if (outcome.handed > 0) {
        holdForLibwebsockets(s, outcome.handed);
        if (s->out.empty()) lws_callback_on_writable(wsi);  // to learn when libwebsockets has sent it
    }
    return true;
}

int SessionWriter::writeable(Session *s, lws *wsi) {
    if (!writeQueued(s, wsi)) return -1;
    if (s->backendPaused) t_.proxyRelay->resumeBackendIfDrained(s);
    if (!s->out.empty()) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->closeRequested) {
        Session::Closing &c = s->closingInfo();
        lws_close_reason(wsi, static_cast<lws_close_status>(c.code), reinterpret_cast<unsigned char *>(c.reason.data()),
                         c.reason.size());
        return -1;
    }
    return 0;
}

}  // namespace wsgw
