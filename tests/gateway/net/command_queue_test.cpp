// Tests gateway/net/command_queue on a real libev loop, with the network thread's state around it but no
// libwebsockets: commands posted from several threads reach their sessions in each sender's order, a post
// wakes a sleeping loop, a command carrying its connection never reaches a later session of the same ID,
// sessions not yet open or finished get nothing, a reload's table is swapped in between two events (its
// limits applied) and answered at once after stop(), and the sink posts nothing once detached.
#include "command_queue.h"

#include "network_thread_state.h"
#include "session_writer.h"

#include <doctest/doctest.h>

#include <ev.h>

#include <chrono>
#include <future>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace wsgw;

namespace {

class DiscardingStore final : public ConnectionStore {
public:
    void insert(ConnectionRow) override {}
    void touch(const std::string &, int64_t) override {}
    void remove(const std::string &) override {}
    void flush() override {}
    size_t queueDepth() const override { return 0; }
    bool writable() const override { return true; }
    std::vector<ConnectionRow> rowsLeftByNode(const std::string &, std::string *) override { return {}; }
    std::optional<ConnectionRow> find(const std::string &) override { return std::nullopt; }
};

void onQueueTestGuard(struct ev_loop *, ev_timer *w, int) { *static_cast<bool *>(w->data) = true; }

// One network thread's state with its own loop, the session writer (where Send commands end) and the queue.
struct QueueRig {
    ConnectionRegistry registry;
    DiscardingStore store;
    HostContext host;
    Invoker *noInvoker = nullptr;
    NetworkThreadState t{ListenerSettings{}, registry, store, host, noInvoker};
    SessionWriter writer{t};
    CommandQueue queue{t};

    QueueRig() {
        t.loop = ev_loop_new(EVFLAG_AUTO);
        REQUIRE(t.loop);
        t.writer = &writer;
        t.commands = &queue;
        queue.start();
    }
    ~QueueRig() {
        queue.stop();
        t.sessions.clear();
        ev_loop_destroy(t.loop);
    }

    // A session past its upgrade whose frames stay queued (not Open: nothing is written to a socket).
    Session *addSession(const std::string &id, Session::State state = Session::State::Connecting) {
        auto s = std::make_unique<Session>();
        s->id = id;
        s->thread = &t;
        s->state = state;
        s->attach(std::make_shared<LiveConnection>());
        Session *raw = s.get();
        t.sessions.emplace(raw->id, std::move(s));
        return raw;
    }

    // One loop iteration that does not sleep: takes whatever the wake-up has signalled.
    void turn() { ev_run(t.loop, EVRUN_NOWAIT); }

    // Sleeps in the loop until an event comes; false when the 5 s guard ended the wait instead.
    bool sleepUntilWoken() {
        ev_timer guard;
        bool fired = false;
        ev_timer_init(&guard, onQueueTestGuard, 5., 0.);
        guard.data = &fired;
        ev_timer_start(t.loop, &guard);
        ev_run(t.loop, EVRUN_ONCE);
        ev_timer_stop(t.loop, &guard);
        return !fired;
    }
};

Command sendCommand(const std::string &id, std::string payload) {
    Command c{};
    c.kind = Command::Kind::Send;
    c.connectionId = InlineId(id);
    c.data = std::move(payload);
    return c;
}

// The payloads of a session's queued frames, in queue order (short text frames: a 2-byte header each).
std::vector<std::string> queuedPayloads(Session *s) {
    std::vector<std::string> out;
    FrameWriter writer;
    while (!s->out.empty()) {
        SendBatch batch;
        size_t frames = writer.gather(s->out, batch);
        REQUIRE(frames > 0);
        iovec iov[SendBatch::kMaxPieces];
        FrameWriter::toIovecs(batch, writer.staging(), iov);
        std::string wire;
        for (int i = 0; i < batch.count; ++i) wire.append(static_cast<const char *>(iov[i].iov_base), iov[i].iov_len);
        for (size_t at = 0; at < wire.size();) {
            size_t len = static_cast<unsigned char>(wire[at + 1]) & 0x7f;
            REQUIRE(len < 126);
            out.push_back(wire.substr(at + 2, len));
            at += 2 + len;
        }
        s->out.commit(batch, static_cast<int>(frames), [](std::string &&) {});
    }
    return out;
}

}  // namespace

TEST_SUITE("command_queue") {
    TEST_CASE("commands posted from several threads reach their sessions, each sender's in the order it sent them") {
        QueueRig rig;
        Session *a = rig.addSession("conn-a");
        Session *b = rig.addSession("conn-b");
        constexpr int kPerSender = 40;
        std::vector<std::thread> senders;
        for (int sender = 0; sender < 4; ++sender) {
            senders.emplace_back([&rig, sender] {
                for (int i = 0; i < kPerSender; ++i)
                    rig.queue.post(sendCommand(sender % 2 ? "conn-b" : "conn-a", std::to_string(sender) + ":" + std::to_string(i)));
            });
        }
        for (auto &th : senders) th.join();
        rig.turn();
        for (Session *s : {a, b}) {
            std::vector<std::string> got = queuedPayloads(s);
            CHECK(got.size() == 2 * kPerSender);
            int next[4] = {0, 0, 0, 0};
            for (const std::string &p : got) {
                int sender = p[0] - '0';
                CHECK((sender % 2 == 1) == (s == b));
                CHECK(p == std::to_string(sender) + ":" + std::to_string(next[sender]++));
            }
        }
    }

    TEST_CASE("a post from another thread wakes the loop sleeping in ev_run") {
        QueueRig rig;
        Session *a = rig.addSession("conn-a");
        std::thread poster([&rig] { rig.queue.post(sendCommand("conn-a", "wake")); });
        bool woken = rig.sleepUntilWoken();
        poster.join();
        CHECK(woken);
        CHECK(queuedPayloads(a) == std::vector<std::string>{"wake"});
    }

    TEST_CASE("a command carrying its connection reaches that connection's session only, never a later one of its ID") {
        QueueRig rig;
        Session *s = rig.addSession("conn-a");
        auto earlier = std::make_shared<LiveConnection>();  // the connection a sender reserved on, now gone
        Command stale = sendCommand("conn-a", "for the earlier connection");
        stale.live = earlier;
        rig.queue.post(std::move(stale));
        Command current = sendCommand("wrong-id", "for this one");  // found through `live`, not the ID
        current.live = s->live;
        rig.queue.post(std::move(current));
        rig.turn();
        CHECK(queuedPayloads(s) == std::vector<std::string>{"for this one"});
    }

    TEST_CASE("sends to an unknown ID, a session still reading its head or a finished one are dropped") {
        QueueRig rig;
        Session *reading = rig.addSession("reading", Session::State::ReadingHead);
        Session *finished = rig.addSession("finished", Session::State::Finished);
        Session *open = rig.addSession("connecting");
        for (const char *id : {"reading", "finished", "nobody", "connecting"}) rig.queue.post(sendCommand(id, id));
        rig.turn();
        CHECK(reading->out.empty());
        CHECK(finished->out.empty());
        CHECK(queuedPayloads(open) == std::vector<std::string>{"connecting"});
    }

    TEST_CASE("a reload's table is swapped in by the loop, its limits applied, and the old one handed back") {
        QueueRig rig;
        auto old = std::make_shared<RouteTable>();
        rig.t.table = old;
        auto next = std::make_shared<RouteTable>();
        next->config.limits.maxMessageBytes = 4242;
        next->config.limits.maxSendQueueBytes = 777777;
        auto handedBack = std::async(std::launch::async, [&rig, next] { return rig.queue.replaceTable(next); });
        CHECK(rig.sleepUntilWoken());
        REQUIRE(handedBack.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
        CHECK(handedBack.get() == old);
        CHECK(rig.t.table == next);
        CHECK(rig.host.maxMessageBytes.load() == 4242);
        CHECK(rig.host.maxSendQueueBytes.load() == 777777);
    }

    TEST_CASE("after stop() a reload is answered at once that its table was not taken") {
        QueueRig rig;
        auto old = std::make_shared<RouteTable>();
        rig.t.table = old;
        rig.queue.stop();
        auto next = std::make_shared<RouteTable>();
        auto before = std::chrono::steady_clock::now();
        CHECK(rig.queue.replaceTable(next) == next);  // returned, not installed
        CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(2));  // not replaceTable's 10 s
        CHECK(rig.t.table == old);
    }

    TEST_CASE("the sink posts to the queue until it is detached, and nothing after") {
        QueueRig rig;
        Session *a = rig.addSession("conn-a");
        std::shared_ptr<CommandSink> sink = rig.queue.sink();
        CHECK(sink->alive());
        sink->post(sendCommand("conn-a", "before"));
        rig.queue.detachSink();
        CHECK_FALSE(sink->alive());
        sink->post(sendCommand("conn-a", "after"));
        rig.turn();
        CHECK(queuedPayloads(a) == std::vector<std::string>{"before"});
    }
}
