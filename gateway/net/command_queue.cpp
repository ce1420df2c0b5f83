// Owns: the command queue from other threads to a network thread (command_queue.h).
#include "command_queue.h"

#include "connect_flow.h"
#include "drain.h"
#include "message_receiver.h"
#include "network_thread_state.h"
#include "proxy_relay.h"
#include "session.h"
#include "session_closer.h"
#include "session_writer.h"
#include "webpubsub_endpoint.h"

#include <chrono>

namespace wsgw {

void CommandSink::post(Command &&c) {
    std::lock_guard lock(mutex);
    if (queue) queue->post(std::move(c));
}

void CommandQueue::detachSink() {
    std::lock_guard lock(sink_->mutex);
    sink_->queue = nullptr;
}

void CommandQueue::start() {
    ev_async_init(&wakeWatcher_, onWake);
    wakeWatcher_.data = this;
    ev_async_start(t_.loop, &wakeWatcher_);
}

// The loop has stopped turning (the gateway is stopping): a reload waiting to hand over its table, or one
// that comes later, is answered at once that the table was not taken. Waiting out replaceTable's 10 s for
// each network thread held a SIGTERM that came right after a SIGHUP for 10 s per core.
void CommandQueue::stop() {
    ev_async_stop(t_.loop, &wakeWatcher_);
    std::lock_guard lock(mutex_);
    loopStopped_ = true;
    if (tableSwapped_) {
        tableSwapped_->set_value(std::move(incomingTable_));
        tableSwapped_ = nullptr;
    }
}

thread_local CommandQueue *CommandQueue::directHere_ = nullptr;

// directHere_ is this queue only on its loop's thread, so runningCommands_ is read there. `queued_` is
// written under the mutex: a worker's answer to a connection's previous message was posted before that worker
// let go of the connection's lane, and the inline call was made only after its lane was seen idle, so that
// answer is seen here without taking the mutex.
bool CommandQueue::directHere() const {
    return directHere_ == this && !runningCommands_ && !queued_.load(std::memory_order_acquire);
}

bool CommandQueue::sendDirect(LiveConnection &conn, std::string &data, bool binary) {
    if (!directHere()) return false;
    send(conn.networkSession, Payload(std::move(data)), binary);
    return true;
}

void CommandQueue::post(Command &&c) {
    if (c.kind == Command::Kind::Send && directHere()) {
        run(c);
        return;
    }
    bool wasEmpty;
    {
        std::lock_guard lock(mutex_);
        wasEmpty = commands_.empty();
        commands_.push_back(std::move(c));
        queued_.store(true, std::memory_order_release);
    }
    if (wasEmpty) ev_async_send(t_.loop, &wakeWatcher_);
}

std::shared_ptr<const RouteTable> CommandQueue::replaceTable(std::shared_ptr<const RouteTable> table) {
    std::promise<std::shared_ptr<const RouteTable>> swapped;
    auto old = swapped.get_future();
    {
        std::lock_guard lock(mutex_);
        if (loopStopped_) return table;  // never installed: the caller keeps the old table
        incomingTable_ = std::move(table);
        tableSwapped_ = &swapped;
    }
    ev_async_send(t_.loop, &wakeWatcher_);
    // The loop answers within one turn; it stops turning only when the gateway stops, and stop() answers then.
    if (old.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        std::lock_guard lock(mutex_);
        if (tableSwapped_ == &swapped) {
            tableSwapped_ = nullptr;
            return std::move(incomingTable_);  // never installed: the caller keeps the old table
        }
    }
    return old.get();
}

void CommandQueue::onWake(struct ev_loop *, ev_async *w, int) { static_cast<CommandQueue *>(w->data)->drainCommands(); }

void CommandQueue::drainCommands() {
    std::shared_ptr<const RouteTable> swapIn;
    std::promise<std::shared_ptr<const RouteTable>> *swapped = nullptr;
    {
        std::lock_guard lock(mutex_);
        inHand_.swap(commands_);
        queued_.store(false, std::memory_order_relaxed);
        swapIn = std::move(incomingTable_);
        std::swap(swapped, tableSwapped_);
    }
    if (swapped) {
        std::swap(t_.table, swapIn);
        applyLimits(t_.host, t_.table->config.limits);
        t_.clientFrameLimits = clientFrameLimitsOf(t_.table->config.limits);
        swapped->set_value(std::move(swapIn));
    }
    runningCommands_ = true;
    size_t closeBudget = kMaxClosesPerTurn;
    for (; closeBudget > 0 && !closesWaiting_.empty(); --closeBudget) {
        Command c = std::move(closesWaiting_.front());
        closesWaiting_.pop_front();
        run(c);
    }
    for (size_t i = 0; i < inHand_.size(); ++i) {
        bool answer = inHand_[i].kind == Command::Kind::Send && inHand_[i].live;  // a route's response (Listener::sendFrame)
        runOrDefer(inHand_[i], closeBudget);
        // Written now, while its connection is in the cache, unless the next command is for it too (a
        // worker's batch of one connection's answers comes in a row, and goes out in one write). With
        // thousands of connections a drain holds hundreds of answers, and at the end of the turn each
        // connection would be cold again. Pushes by ID (fan-outs) wait for the turn's end as before, so
        // that several to one connection still share a write.
        if (answer && (i + 1 == inHand_.size() || inHand_[i + 1].live != inHand_[i].live))
            if (Session *s = inHand_[i].live->networkSession; s && t_.writer) t_.writer->flushListedNow(s);
    }
    inHand_.clear();
    runningCommands_ = false;
    if (!closesWaiting_.empty()) ev_async_send(t_.loop, &wakeWatcher_);  // next turn, after a poll that does not block
}

// A close waits behind the closes that came before it. What comes after it for the same connection (a push)
// may then run first: it is queued before the close frame, as it would have been had it come a moment earlier.
void CommandQueue::runOrDefer(Command &c, size_t &closeBudget) {
    if (c.kind == Command::Kind::Close) {
        if (closeBudget == 0 || !closesWaiting_.empty()) {
            closesWaiting_.push_back(std::move(c));
            return;
        }
        --closeBudget;
    }
    run(c);
}

void CommandQueue::run(Command &c) {
    if (c.kind == Command::Kind::Drain) {
        t_.drain->beginDrain();
        return;
    }
    if (c.kind == Command::Kind::ConnectDecided) {
        t_.connectFlow->decideConnect(c.connectionId.view(), c.code, c.data);
        return;
    }
    if (c.kind == Command::Kind::RowNotDurable) {
        t_.connectFlow->rowNotDurable(c.connectionId.view());
        return;
    }
    if (c.kind == Command::Kind::BackendResolved) {
        t_.proxyRelay->backendResolved(c.connectionId.view(), c.code == 0, std::move(c.data));
        return;
    }
    if (c.kind == Command::Kind::WpsRestAnswered) {
        wpsRestAnswered(t_, c.connectionId.view(), c.data);
        return;
    }
    // A command that carries its connection reaches that connection's session or none: by ID it could find a
    // later session of the same ID (a Web PubSub client that resumed), whose queue this was not reserved on.
    Session *s = c.live ? c.live->networkSession : t_.find(c.connectionId.view());
    if (c.kind == Command::Kind::Send) {
        send(s, c.shared ? Payload(std::move(c.shared)) : Payload(std::move(c.data)), c.binary);
        return;
    }
    if (!s) return;
    if (s->state == Session::State::Finished || s->state == Session::State::ReadingHead) return;
    if (c.kind == Command::Kind::Resume) {
        t_.receiver->resumeReading(s);
    } else if (c.code == kDropTransportCode) {
        t_.closer->dropTransport(s);
    } else {
        t_.closer->requestClose(s, c.code, std::move(c.data));
    }
}

void CommandQueue::send(Session *s, Payload &&payload, bool binary) {
    if (!s) return;  // closed meanwhile: the push is dropped, as GONE would say (its reservation went with the connection)
    if (s->state == Session::State::Finished || s->state == Session::State::ReadingHead) return;
    t_.writer->queueReserved(s, std::move(payload), binary);
}

}  // namespace wsgw
