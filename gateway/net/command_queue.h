// Owns: the queue through which other threads reach a network thread (pushes, closes, $connect decisions,
// resumes, drains, rows the store could not commit, Web PubSub REST answers made on the cluster's executor)
// and the route table a reload hands over with it; the wake-up (ev_async) that makes the loop take them, and
// running each command on the loop's thread.
#pragma once

#include "route_table.h"

#include <ev.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

struct LiveConnection;
struct NetworkThreadState;
struct Session;
struct Payload;

// A connection ID held by value without a heap allocation: every push by ID or close queued to a network
// thread carries one (a route's response carries its connection instead). IDs the gateway issues are 22 characters; a longer one (which no session has) is kept as
// the empty ID, which matches nothing.
class InlineId {
public:
    InlineId() = default;
    explicit InlineId(std::string_view id) {
        if (id.size() > sizeof bytes_) return;
        len_ = static_cast<uint8_t>(id.size());
        std::memcpy(bytes_, id.data(), id.size());
    }
    std::string_view view() const { return {bytes_, len_}; }

private:
    char bytes_[30];
    uint8_t len_ = 0;
};

// A Close command with this code ends the socket as a network failure would (no close frame), so the
// connection takes a drop's path: a reliable Web PubSub client's recovery window opens.
inline constexpr int kDropTransportCode = -1;

struct Command {
    enum class Kind { Send, Close, ConnectDecided, Drain, Resume, RowNotDurable, WpsRestAnswered, BackendResolved } kind;
    InlineId connectionId;  // empty on a Send that carries `live` (a route's response)
    // Send: the payload; Close: reason; ConnectDecided: body; WpsRestAnswered: the HTTP response;
    // BackendResolved: the proxy backend's numeric addresses (one a line), or why its lookup failed
    std::string data;
    bool binary = false;
    int code = 0;      // Close: close code; ConnectDecided: HTTP status (0 accepts); BackendResolved: 0 found, 1 failed
    std::shared_ptr<const std::string> shared = {};  // Send: a fan-out payload instead of `data`
    std::shared_ptr<LiveConnection> live = {};  // when set, its session is found through it, not by the ID
};

class CommandQueue;

// Lets another thread (the connection table's writer) post to a listener for as long as it exists: the store
// may answer after the listener is gone.
struct CommandSink {
    std::mutex mutex;
    CommandQueue *queue = nullptr;
    void post(Command &&c);
    bool alive() {
        std::lock_guard lock(mutex);
        return queue != nullptr;
    }
};

class CommandQueue {
public:
    // Closes begun per turn of the loop. libwebsockets 4.1.6 (as Debian builds it) scans its whole descriptor
    // table when it frees a connection, so a close costs the thread ~100 us with a few thousand connections
    // open: 6,000 closes of one call (a user's connections, a group's) held it for 1.5 s, and every other
    // connection on it waited. The rest wait for later turns, after the loop has polled, while the other
    // commands (pushes, answers to other connections) do not wait behind them.
    static constexpr size_t kMaxClosesPerTurn = 32;

    explicit CommandQueue(NetworkThreadState &thread) : t_(thread) { sink_->queue = this; }
    // First at teardown, before the loop goes: the store's late answers then reach nothing.
    void detachSink();

    void start();  // the wake-up watcher, on the thread's loop
    void stop();   // once the loop has returned: a pending or later replaceTable returns its table untaken
    // From any thread.
    void post(Command &&c);
    // A Send to `conn` made while a DirectSends lives on this queue's thread and nothing is queued: run at
    // once, without making a Command (true); otherwise false, and the caller posts it.
    bool sendDirect(LiveConnection &conn, std::string &data, bool binary);

    // While one lives on the loop's thread (around an inline handler, MessageReceiver), a Send that thread
    // posts here runs at once, onto its connection's send queue, instead of waiting for the wake-up: unless
    // commands of other threads are waiting, which came first (a worker's answer to the connection's previous
    // message may be among them), or the loop is running commands already. Other kinds are queued as ever
    // (a close or a resume from inside a libwebsockets callback would act on the connection being read).
    class DirectSends {
    public:
        explicit DirectSends(CommandQueue &queue) : previous_(directHere_) { directHere_ = &queue; }
        ~DirectSends() { directHere_ = previous_; }
        DirectSends(const DirectSends &) = delete;
        DirectSends &operator=(const DirectSends &) = delete;

    private:
        CommandQueue *previous_;
    };
    // From another thread while the loop runs: installs `table` between two events and returns the table it
    // replaced (or `table` itself when the loop did not take it within 10 s, or has stopped).
    std::shared_ptr<const RouteTable> replaceTable(std::shared_ptr<const RouteTable> table);
    const std::shared_ptr<CommandSink> &sink() const { return sink_; }

private:
    static void onWake(struct ev_loop *, ev_async *w, int);
    void drainCommands();
    // Runs `c`, or keeps it in closesWaiting_ when it is a close beyond this turn's `closeBudget`.
    void runOrDefer(Command &c, size_t &closeBudget);
    void run(Command &c);
    bool directHere() const;
    void send(Session *s, Payload &&payload, bool binary);

    static thread_local CommandQueue *directHere_;  // DirectSends': the queue whose Sends this thread runs at once

    NetworkThreadState &t_;
    bool runningCommands_ = false;  // drainCommands is running them (the loop's thread only)
    ev_async wakeWatcher_{};
    std::mutex mutex_;
    std::vector<Command> commands_;
    std::atomic<bool> queued_{false};  // commands_ is not empty (written under mutex_; read without it by post)
    std::vector<Command> inHand_;
    std::deque<Command> closesWaiting_;  // closes beyond kMaxClosesPerTurn, in the order they came (loop's thread)
    // A reload's new table, handed over with the command queue; the old one goes back to the reloader so
    // that plugin shutdown never runs on this thread.
    std::shared_ptr<const RouteTable> incomingTable_;
    std::promise<std::shared_ptr<const RouteTable>> *tableSwapped_ = nullptr;
    bool loopStopped_ = false;  // stop() ran: replaceTable answers at once (under mutex_)
    std::shared_ptr<CommandSink> sink_ = std::make_shared<CommandSink>();
};

}  // namespace wsgw
