// Owns: what the network thread keeps per connection (Session), what only its upgrade needs (PendingUpgrade,
// freed once it is open) and how it closed (Session::Closing, made at the first close). Plain data: the
// parts of the listener (see README.md here) read and change it, on the connection's network thread only.
#pragma once

#include "backend_link.h"
#include "host_resolver.h"
#include "client_frame_guard.h"
#include "connection_registry.h"
#include "http_message.h"
#include "invoker.h"
#include "permessage_deflate.h"
#include "send_queue.h"
#include "throttle.h"

#include <ev.h>
#include <libwebsockets.h>

#include <cstdint>
#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>

namespace wsgw {

struct NetworkThreadState;

// What only the upgrade needs. It is freed once the connection is open, so that the many idle connections
// of a gateway do not carry it.
struct PendingUpgrade {
    ev_io io{};
    ev_timer handshakeTimer{};
    std::string head;
    std::string subprotocol;  // chosen from the client's offers; lws is handed the head without them
    std::string path;         // the request path, for a proxy backend
    std::string offers;       // the client's subprotocol offers, passed on to a proxy backend
    // A Web PubSub REST request whose operation runs on the cluster's executor (webpubsub_endpoint.h): its
    // socket is not read meanwhile, and it is answered when the result comes back, or 503 if it is dropped first.
    bool restPending = false;
    bool restHead = false;    // the request was HEAD: the answer has no body
    // A Web PubSub REST request being read: its parser, kept from read to read (it goes on where it stopped,
    // so a body that arrives in many small reads is parsed once, not again at each).
    std::unique_ptr<HttpMessageParser> restParser;
};

struct alignas(64) Session {
    enum class State { ReadingHead, Connecting, Adopting, Open, Finished };

    Session() = default;
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;
    // Commands still queued with its connection then find no session through it (CommandQueue::run), and are dropped.
    ~Session() {
        if (live && live->networkSession == this) live->networkSession = nullptr;
    }
    // The connection it serves from now on (live is set only through this).
    void attach(std::shared_ptr<LiveConnection> connection) {
        if (live && live->networkSession == this) live->networkSession = nullptr;
        live = std::move(connection);
        live->networkSession = this;
    }

    // ---- What a message touches, first and together: with 10,000 connections each message finds its
    // session cold in the cache, and these fields then cost a few cache lines instead of one per field
    // (they were spread over nine). Kept in the order the receive and send paths read them.
    NetworkThreadState *thread = nullptr;  // the network thread that owns it (its watchers' callbacks start here)
    lws *wsi = nullptr;
    std::shared_ptr<LiveConnection> live;  // set by attach()
    State state = State::ReadingHead;
    int fd = -1;
    bool rxBinary = false;
    bool closeRequested = false;
    bool rxFlowOff = false;   // reading paused because its pending messages reached a bound (limits)
    bool rxTooBig = false;    // over the message limit: the rest of the message is read and dropped
    bool inFrame = false;     // the last chunk lws delivered left part of its frame to come
    bool deflate = false;     // permessage-deflate: lws hands us inflated bytes
    BackendLink *backend = nullptr;  // "proxy": the backend connection (it lives in lws)
    std::shared_ptr<Invoker::Lane> lane;  // made by the first invocation: an idle connection may never need it
    std::unique_ptr<CompressedInput> inflateInput;  // permessage-deflate: compressed bytes zlib reads from
    struct BackendConnect;
    std::unique_ptr<BackendConnect> backendConnect;  // while a proxy backend is being reached (below)
    struct Closing;
    std::unique_ptr<Closing> closing;  // how it closed (below); allocated at the first close
    size_t heldByLws = 0;     // bytes handed to libwebsockets that it has not written yet
    // 1 + its place in SessionWriter's flush list (its queue is written before the loop next sleeps); 0: not listed.
    uint32_t flushListSlot = 0;
    double lastTouchAt = 0;   // loop time (monotonic) of the last lastActiveAt write queued
    double lastActivity = 0;  // loop time of the last message in or frame out, for the idle timeout
    // An Azure Web PubSub client (/client/hubs/{hub}, docs/webpubsub.md; webpubsub_endpoint.h): its state, and
    // the event being handed to its route.
    std::shared_ptr<WpsClientState> wps;
    std::shared_ptr<const WpsClientMessage> wpsRequest;
    std::unique_ptr<std::unordered_map<std::string, TokenBucket>> routeBuckets;  // connectionThrottle, by route key
    std::string rx;
    SendQueue out;            // frames towards the client (their bytes are reserved in live->sendQueueBytes)
    // Screens what libwebsockets reads from the client for unmasked frames (RFC 6455 5.1), from adoption until
    // the socket is closed (client_frame_guard.h).
    ClientFrameGuard clientFrames;

    // ---- The rest: the upgrade, the proxy, the row, the close and the timers.
    std::string id;
    std::unique_ptr<PendingUpgrade> upgrade = std::make_unique<PendingUpgrade>();
    std::string peer;         // the client's address (a TLS connection arrives over a local socketpair)
    bool awaitingBackend = false, clientPaused = false, backendPaused = false;
    struct BackendConnect {  // while a proxy backend is being reached, and its event sink for the link's life
        std::unique_ptr<BackendEvents> events;
        ev_timer timer{};
        ev_tstamp startedAt = 0;
        // While the backend's host name is looked up (host_resolver.h): the request (dropped with the
        // session, which cancels it) and the target that waits for its address.
        HostResolver::Ticket lookup;
        std::unique_ptr<BackendTarget> resolving;
        // Once looked up: the name's other addresses, tried in order when one cannot be reached, and the
        // target they are tried for.
        std::vector<std::string> moreAddresses;
        std::unique_ptr<BackendTarget> target;
        int addressesTried = 1;
    };
    bool rowStored = false;   // its row is in (or queued for) the connection table
    bool awaitingRow = false; // $connect waits for its row to be committed
    // Taken once, by whichever comes first: the store's commit (which then submits $connect) or the row's
    // deadline (which refuses the upgrade). Shared with the store's thread.
    std::shared_ptr<std::atomic<bool>> rowClaim;
    // How it closed: ours (requestClose) and the peer's close frame, which wins in $disconnect. Allocated at
    // the first close, so an open connection does not carry it.
    struct Closing {
        int code = 0;
        std::string reason;
        bool peerClosed = false;
        int peerCode = 0;
        std::string peerReason;
    };
    Closing &closingInfo() {
        if (!closing) closing = std::make_unique<Closing>();
        return *closing;
    }
    size_t rxDiscarded = 0;
    bool ipCounted = false;  // its source address (peer) counts against maxConnectionsPerIp
    bool pendingIpCounted = false;  // it counts among its address's sockets not yet upgraded (pendingIpCounts)
    // When its connection record was made here (fillInfo): the loop time, and the wall clock it wrote as
    // connectedAt. The lifetime of a connection opened here counts from the loop time, which a step of the
    // wall clock between the upgrade and ESTABLISHED does not move.
    double openedAt = 0;
    int64_t openedAtEpochMs = 0;
    // One timer for the idle timeout, the lifetime and a credential's expiry: it fires at the earliest and
    // is set again for what is left (one timer instead of three per connection).
    ev_timer deadlineTimer{};
    double lifetimeEndsAt = 0;  // loop time
    double expiresAt = 0;       // loop time; 0 when the credential does not expire
    std::unique_ptr<std::vector<std::string>> wpsGroups;  // a Web PubSub client's groups of its token until it is open
    std::shared_ptr<LiveConnection> wpsResumeFrom;  // a reliable client coming back: the connection it resumes
    bool wpsResumed = false;
};

// Asks the cache for what handling a message of `s` reads: its session's fields up to `id` (the ones that come
// first) and its connection's counters. Called before the read's system call, so that with many connections
// (each message finding its connection cold) these lines arrive while the kernel copies the bytes, instead of
// one miss after another as the receive path reaches each field.
inline void prefetchForMessage(const Session *s) {
    const char *at = reinterpret_cast<const char *>(s);
    const char *end = reinterpret_cast<const char *>(&s->id);
    for (; at < end; at += 64) __builtin_prefetch(at);
    if (const LiveConnection *live = s->live.get()) {
        __builtin_prefetch(reinterpret_cast<const char *>(live) - 16);  // make_shared's counts sit just before it
        __builtin_prefetch(reinterpret_cast<const char *>(live) + 48);
    }
    if (const Invoker::Lane *lane = s->lane.get()) __builtin_prefetch(lane);  // its mutex: every message takes it
}

}  // namespace wsgw
