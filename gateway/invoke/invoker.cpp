#include "invoker.h"

#include "webpubsub_clients.h"

#include "fifo_queue.h"

#include "log.h"
#include "utf8.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>
#include <optional>
#include <pthread.h>
#include <sched.h>

namespace wsgw {

std::string awsErrorFrame(std::string_view message, std::string_view connectionId, std::string_view requestId) {
    std::string s;
    s.reserve(64 + message.size() + connectionId.size() + requestId.size());
    s += "{\"message\": \"";
    s += message;
    s += "\", \"connectionId\":\"";
    s += connectionId;
    s += "\", \"requestId\":\"";
    s += requestId;
    s += "\"}";
    return s;
}

struct Invoker::Lane {
    std::mutex mutex;
    FifoQueue<Invocation> queue;
    bool scheduled = false;
};

// What the watchdog needs to know about the invocation a worker is running.
struct Invoker::WorkerSlot {
    std::thread thread;
    std::mutex mutex;
    std::shared_ptr<Lane> lane;  // the lane this worker is draining
    bool busy = false;
    bool timedOut = false;
    bool isolated = false;
    RouteMetrics *metrics = nullptr;
    bool retired = false;  // timed out: its lane went to another worker; it ends when the handler returns
    std::atomic<bool> exited{false};  // workerLoop has returned (read by stop() without the mutex)
    const void *handlerId = nullptr;  // the in-process PluginInstance running, for the stuck count
    Invocation *invocation = nullptr; // the one being run (the worker's), for the write-off
    std::chrono::steady_clock::time_point deadline;
    wsgw_event_type type = WSGW_MESSAGE;
    std::string connectionId, requestId, routeKey, handler;
};

namespace {
constexpr int kLaneBatch = 32;  // invocations of one lane before yielding the worker to other lanes
constexpr auto kSpawnRetry = std::chrono::milliseconds(100);   // after a thread could not be created
constexpr auto kWarningInterval = std::chrono::seconds(10);   // one warning per interval for repeated trouble
}

Invoker::Invoker(unsigned threads, ConnectionControl &control, HostContext &host, unsigned maxStuckThreads)
    : control_(control), host_(host), maxStuckThreads_(maxStuckThreads), stuck_(maxStuckThreads) {
    if (threads == 0) threads = 1;
    threads_ = threads;
    for (unsigned i = 0; i < threads; ++i) startWorker();  // a failure is retried by the watchdog
    watchdog_ = std::thread([this] { watchdogLoop(); });
}

Invoker::~Invoker() { stop(); }

size_t Invoker::stop(std::chrono::milliseconds grace) {
    {
        std::lock_guard lock(readyMutex_);
        if (stopped_) return abandoned_;
        stopped_ = true;
        stopping_ = true;
    }
    readyCv_.notify_all();
    watchdogCv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();  // first: it is the one that adds workers
    // Workers finish the invocation in hand and leave; one stuck in a handler is never joined.
    {
        std::unique_lock lock(idleMutex_);
        idleCv_.wait_for(lock, grace, [this] {
            for (auto &slot : slots_)
                if (!slot->exited.load(std::memory_order_acquire)) return false;
            return true;
        });
    }
    size_t abandoned = 0;
    for (auto &slot : slots_) {
        if (slot->exited.load(std::memory_order_acquire)) {
            slot->thread.join();
            continue;
        }
        // Still inside a handler: it keeps its slot (leaked on purpose, it may still touch it) and runs on
        // until the process leaves.
        slot->thread.detach();
        (void)slot.release();
        ++abandoned;
    }
    slots_.clear();
    abandoned_ = abandoned;
    if (abandoned)
        log::warn("stop: handler threads still running; they are abandoned", {log::Field("threads", static_cast<uint64_t>(abandoned))});
    // Never run: their rows stay, so the next start's clean-up runs them (a stuck thread returning from
    // now on finds stopped_ and drops what it would have released).
    if (size_t parked = stuck_.takeParked().size())
        log::warn("stop: $disconnects not run (their route's handler is stuck); their rows stay for the next start's clean-up",
                  {log::Field("disconnects", static_cast<uint64_t>(parked))});
    return abandoned;
}

// Called by the constructor and then only by the watchdog, the two owners of slots_.
bool Invoker::startWorker() {
    auto slot = std::make_unique<WorkerSlot>();
    WorkerSlot *s = slot.get();
    try {
        s->thread = std::thread([this, s] { workerLoop(*s); });
    } catch (const std::system_error &e) {
        // EAGAIN from a pids cgroup or RLIMIT_NPROC: the process runs on with the workers it has.
        ++spawnFailures_;
        auto now = std::chrono::steady_clock::now();
        nextSpawnRetry_ = now + kSpawnRetry;
        if (now >= nextSpawnWarning_) {
            nextSpawnWarning_ = now + kWarningInterval;
            log::error("cannot start a handler worker thread; retrying every 100 ms",
                       {log::Field("error", e.what()), log::Field("failures", static_cast<uint64_t>(spawnFailures_)),
                        log::Field("stuckThreads", static_cast<uint64_t>(stuckThreads()))});
        }
        return false;
    }
    slots_.push_back(std::move(slot));
    return true;
}

void Invoker::removeRowIfOwed(Invocation &inv) {
    if (!inv.removeRowAfter) return;
    inv.removeRowAfter->remove(inv.connection->info.connectionId);
    inv.removeRowAfter = nullptr;
}

void Invoker::invocationDone() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(idleMutex_);
        idleCv_.notify_all();
    }
}

std::shared_ptr<Invoker::Lane> Invoker::newLane() { return std::make_shared<Lane>(); }

void Invoker::submit(const std::shared_ptr<Lane> &lane, Invocation &&inv, bool wakeNow) {
    pending_.fetch_add(1, std::memory_order_relaxed);
    enqueue(lane, std::move(inv), wakeNow);
}

// $disconnects released by a returning stuck thread: still pending (waitIdle waits for them), each on a
// lane of its own (it is its connection's last event). After stop() they are dropped, rows kept.
void Invoker::requeue(std::vector<Invocation> invocations) {
    if (invocations.empty()) return;
    {
        std::lock_guard lock(readyMutex_);
        if (stopped_) return;
    }
    for (Invocation &inv : invocations) enqueue(newLane(), std::move(inv), true);
}

void Invoker::enqueue(const std::shared_ptr<Lane> &lane, Invocation &&inv, bool wakeNow) {
    bool schedule = false;
    {
        std::lock_guard lock(lane->mutex);
        lane->queue.push_back(std::move(inv));
        if (!lane->scheduled) {
            lane->scheduled = true;
            schedule = true;
        }
    }
    if (!schedule) return;
    {
        std::lock_guard lock(readyMutex_);
        ready_.push_back(lane);
        if (!wakeNow) {
            ++deferredWakes_;
            return;
        }
    }
    readyCv_.notify_one();
}

void Invoker::wakeDeferred() {
    size_t lanes;
    {
        std::lock_guard lock(readyMutex_);
        lanes = deferredWakes_;
        deferredWakes_ = 0;
    }
    if (lanes == 0) return;
    // One worker per 8 ready lanes: a worker drains lane after lane without sleeping, so waking one per
    // lane would only add context switches; a few keep every core busy under load.
    size_t wake = std::min<size_t>(threads_, 1 + lanes / 8);
    if (wake >= threads_) {
        readyCv_.notify_all();
        return;
    }
    for (size_t i = 0; i < wake; ++i) readyCv_.notify_one();
}

void Invoker::wakeAnotherIfReady() {
    bool queued;
    {
        std::lock_guard lock(readyMutex_);
        queued = !ready_.empty();
    }
    if (queued) readyCv_.notify_one();
}

bool Invoker::waitIdle(std::chrono::milliseconds timeout) {
    std::unique_lock lock(idleMutex_);
    return idleCv_.wait_for(lock, timeout, [this] { return pending_.load() == 0; });
}

void Invoker::workerLoop(WorkerSlot &slot) {
    // SCHED_BATCH: a worker woken by the network thread does not preempt it. On a shared core the network
    // thread then reads and queues everything ready before the workers run, instead of being switched
    // out once per message; on idle cores nothing changes.
    sched_param param{};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    runLanes(slot);
    slot.exited.store(true, std::memory_order_release);
    std::lock_guard lock(idleMutex_);  // stop() waits for `exited` on idleCv_
    idleCv_.notify_all();
}

void Invoker::runLanes(WorkerSlot &slot) {
    for (;;) {
        std::shared_ptr<Lane> lane;
        {
            std::unique_lock lock(readyMutex_);
            readyCv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
            if (stopping_) return;  // what is still queued is dropped: the caller has drained
            lane = std::move(ready_.front());
            ready_.pop_front();
        }
        {
            std::lock_guard lock(slot.mutex);
            slot.lane = lane;
        }
        for (int n = 0;; ++n) {
            if (stopping_.load(std::memory_order_relaxed)) return;
            // Moved straight out of the queue: a default-constructed Invocation would read the clock
            // (Invocation::receivedAt) once per message for nothing.
            std::optional<Invocation> next;
            {
                std::lock_guard lock(lane->mutex);
                if (lane->queue.empty()) {
                    lane->scheduled = false;
                    break;
                }
                if (n == kLaneBatch) {
                    std::lock_guard rlock(readyMutex_);
                    ready_.push_back(lane);  // still scheduled; let other lanes run first
                    readyCv_.notify_one();
                    break;
                }
                next.emplace(std::move(lane->queue.front()));
                lane->queue.pop_front();
            }
            Invocation &inv = *next;
            {
                std::lock_guard lock(slot.mutex);
                slot.invocation = &inv;
            }
            bool finished = run(slot, inv);  // false: a $disconnect parked, still pending
            if (finished) {
                if (inv.pendingCounted) releasePending(inv);
                removeRowIfOwed(inv);
            }
            bool retired;
            StuckRoutes::Route route;
            {
                std::lock_guard lock(slot.mutex);
                retired = slot.retired;
                slot.invocation = nullptr;
                if (retired) route = {slot.handlerId, slot.routeKey};
            }
            if (retired) {  // the watchdog ended this invocation; the lane belongs to another worker now
                requeue(stuck_.returned(route));
                return;
            }
            if (finished) invocationDone();
        }
        std::lock_guard lock(slot.mutex);
        slot.lane.reset();
    }
}

// The message's handler returned: it no longer counts against its connection's pending bounds, and the
// network thread reads the socket again if this brought a paused lane below half.
void Invoker::releasePending(const Invocation &inv) {
    host_.metrics.pendingBytes.fetch_sub(static_cast<int64_t>(inv.pendingBytes), std::memory_order_relaxed);
    if (inv.connection->donePending(inv.pendingBytes, host_.maxPendingMessages.load(std::memory_order_relaxed),
                                    host_.maxPendingBytes.load(std::memory_order_relaxed)))
        control_.resumeReading(inv.connection->info.connectionId);
}

namespace {

const char *routeKeyOf(const Invocation &inv) {
    if (inv.route) return inv.route->key.c_str();
    return inv.type == WSGW_CONNECT ? "$connect" : inv.type == WSGW_DISCONNECT ? "$disconnect" : "$default";
}

}  // namespace

// What an HTTP backend gets beside the event JSON, so that a simple one can dispatch without parsing it.
std::vector<std::pair<std::string, std::string>> Invoker::backendHeaders(const Invocation &inv, const char *routeKey) {
    const char *type = inv.type == WSGW_CONNECT ? "CONNECT" : inv.type == WSGW_DISCONNECT ? "DISCONNECT" : "MESSAGE";
    return {{"X-Wsgw-Connection-Id", inv.connection->info.connectionId},
            {"X-Wsgw-Event-Type", type},
            {"X-Wsgw-Route-Key", routeKey},
            {"X-Wsgw-Request-Id", inv.requestId}};
}

// The $connect authorizer, before any handler: false when it refused (the refusal is already sent).
bool Invoker::authorizeConnect(Invocation &inv) {
    ConnectionInfo &info = inv.connection->info;
    AuthorizerOutcome outcome = inv.route->authorizer->authorize(info, nowEpochMs() / 1000);
    if (!outcome.ok) {
        RouteMetrics::add(inv.route->metrics->clientErrors);
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        w.StartObject();
        w.Key("message");
        w.String(outcome.reason);
        w.EndObject();
        control_.connectDecided(info.connectionId, outcome.status, std::string(buf.GetString(), buf.GetSize()));
        logAccess(inv, "$connect", outcome.status, -1, outcome.reason);
        return false;
    }
    // Written before the upgrade is accepted, so the table row and every event of the connection see it.
    info.authorizerJson = std::move(outcome.contextJson);
    auto admission = std::make_shared<ConnectionInfo::Admission>();
    admission->apiKeyId = std::move(outcome.apiKeyId);
    admission->principalId = std::move(outcome.principalId);
    admission->authorizerType = inv.route->authorizer->type();
    admission->expiresAt = outcome.expiresAt;
    info.admission = std::move(admission);
    return true;
}

bool Invoker::run(WorkerSlot &slot, Invocation &inv) {
    const std::string &connectionId = inv.connection->info.connectionId;
    const char *routeKey = routeKeyOf(inv);
    PluginInstance *handler = inv.route->handler;
    // An Azure Web PubSub client was admitted by its access token (SPEC section 12): the route's authorizer,
    // written for the API's other clients, does not run for it.
    bool admittedByToken = inv.type == WSGW_CONNECT && inv.connection->info.admission &&
                           inv.connection->info.admission->authorizerType == "webPubSub";
    if (inv.type == WSGW_CONNECT && inv.route->authorizer) {
        if (!admittedByToken && !authorizeConnect(inv)) return true;
        if (!handler && !inv.route->http) {  // an authorizer and no $connect integration: admitted
            control_.connectDecided(connectionId, 0, {});
            inv.route->metrics->latency.observeMicros(static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - inv.receivedAt).count()));
            logAccess(inv, routeKey, 200, -1, {});
            return true;
        }
    }

    // Past the cap on written-off threads, an in-process handler with stuck invocations on this route is
    // not called: a message or $connect is answered now, a $disconnect waits until one returns.
    if (handler && !handler->isolated && !handler->lambda && stuck_.anyAtCap()) {
        if (inv.type == WSGW_DISCONNECT ? parkWhenStuck(inv, routeKey) : failFastWhenStuck(inv, routeKey))
            return inv.type != WSGW_DISCONNECT;
    }

    InvocationEvent ie;
    ie.ev.size = sizeof(wsgw_event);
    ie.ev.type = inv.type;
    ie.ev.route_key = routeKey;
    ie.ev.connection_id = connectionId.c_str();
    if (inv.type == WSGW_MESSAGE) {
        ie.ev.body = inv.body.data();
        ie.ev.body_len = inv.body.size();
        ie.ev.is_binary = inv.binary ? 1 : 0;
    }
    ie.connection = &inv.connection->info;
    ie.fields.type = inv.type;
    ie.fields.routeKey = routeKey;
    ie.fields.requestId = inv.requestId;
    ie.fields.messageId = inv.messageId;
    ie.fields.requestTimeEpochMs = inv.requestTimeMs;
    ie.fields.body = inv.body;
    ie.fields.isBinary = inv.binary;
    ie.fields.disconnectStatusCode = inv.disconnectCode;
    ie.fields.disconnectReason = inv.disconnectReason;
    RunningEvent running(ie);  // event_json answers for this event while it runs

    wsgw_response resp{};
    resp.size = sizeof(wsgw_response);
    resp.status_code = 200;
    const std::string &integrationName = handler ? handler->name : inv.route->http->url().text;

    auto invokedAt = std::chrono::steady_clock::now();
    auto deadline = invokedAt + std::chrono::milliseconds(inv.route->timeoutMs);
    {
        std::lock_guard lock(slot.mutex);
        slot.busy = true;
        slot.timedOut = false;
        // A lambda function's own timeout is its error ("Internal server error", SPEC 11) and it returns at
        // the deadline by itself; the watchdog answers only if it somehow does not, a second later.
        slot.deadline = handler && handler->lambda ? deadline + std::chrono::seconds(1) : deadline;
        slot.type = inv.type;
        slot.connectionId = connectionId;
        slot.requestId = inv.requestId;
        slot.routeKey = routeKey;
        slot.handler = integrationName;
        slot.isolated = (handler && (handler->isolated || handler->lambda)) || inv.route->http;  // all return at the deadline
        slot.metrics = inv.route->metrics;
        slot.handlerId = handler;
    }
    wakeIdleWatchdog();  // after slot.mutex: the watchdog takes its mutex first, then each slot's

    // An out-of-process integration blocks this worker until its answer: lanes queued behind it (woken
    // one worker per 8 lanes, see wakeDeferred) get another worker now rather than after this one.
    if (inv.route->http || handler->isolated || handler->lambda) wakeAnotherIfReady();

    int rc = 0;
    std::string failure;
    IsolatedReply byValue;  // what an isolated worker or an HTTP backend answered
    bool deadlinePassed = false;   // an out-of-process integration gave up at the deadline
    bool executionFailed = false;  // the integration could not be run at all (AWS's ExecutionError)
    int backendStatus = 0;
    if (inv.route->http) {
        HttpReply r = inv.route->http->post(buildEventJson(*ie.connection, ie.fields), backendHeaders(inv, routeKey), deadline);
        if (!r.failure.empty()) {
            rc = -1;
            failure = std::move(r.failure);
            deadlinePassed = r.timedOut;
            executionFailed = !r.timedOut;
        } else {
            byValue.body = std::move(r.body);
            backendStatus = r.status;
            resp.status_code = r.status;
            resp.body = byValue.body.empty() ? nullptr : byValue.body.data();  // an empty HTTP body sends nothing
            resp.body_len = byValue.body.size();
            resp.is_binary = isValidUtf8(byValue.body.data(), byValue.body.size()) ? 0 : 1;
        }
    } else if (handler->isolated || handler->lambda) {
        byValue = handler->isolated ? handler->isolated->invoke(ie, deadline) : handler->lambda->invoke(ie, deadline);
        rc = byValue.rc;
        failure = std::move(byValue.failure);
        deadlinePassed = byValue.timedOut;
        executionFailed = byValue.workerDied;
        resp.status_code = byValue.status;
        resp.body = byValue.hasBody ? byValue.body.data() : nullptr;
        resp.body_len = byValue.body.size();
        resp.is_binary = byValue.binary ? 1 : 0;
    } else {
        rc = callHandler(handler->descriptor, handler->state, &ie.ev, &resp, failure);
    }

    auto returnedAt = std::chrono::steady_clock::now();
    RouteMetrics &metrics = *inv.route->metrics;
    metrics.integrationLatency.observeMicros(
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(returnedAt - invokedAt).count()));
    bool timedOut;
    {
        std::lock_guard lock(slot.mutex);
        slot.busy = false;
        // An isolated invocation may hit its deadline a moment before the watchdog looks: answer it here.
        if (deadlinePassed && !slot.timedOut) {
            slot.timedOut = true;
            answerTimeout(slot);
        }
        timedOut = slot.timedOut;
    }
    int64_t integrationMs = std::chrono::duration_cast<std::chrono::milliseconds>(returnedAt - invokedAt).count();
    if (timedOut) {  // the watchdog already answered; this late result is dropped
        RouteMetrics::add(metrics.executionErrors);
        logAccess(inv, routeKey, 504, integrationMs, "Endpoint request timed out");
        return true;
    }
    // A route response is a message the gateway is asked to send, bounded like a push (SPEC section 10):
    // over maxMessageBytes it is the handler's error, never a frame of any size.
    if (rc == 0 && inv.type == WSGW_MESSAGE && inv.route->routeResponse && resp.body &&
        resp.body_len > host_.maxMessageBytes.load(std::memory_order_relaxed)) {
        rc = 1;
        failure = "the route response is " + std::to_string(resp.body_len) + " bytes, over limits.maxMessageBytes (" +
                  std::to_string(host_.maxMessageBytes.load(std::memory_order_relaxed)) +
                  " bytes): answer with less, or raise the limit in routes.json";
    }
    // A worker process that died is the gateway failing to run the handler; anything else is the handler's.
    if (rc != 0) RouteMetrics::add(executionFailed ? metrics.executionErrors : metrics.integrationErrors);
    int accessStatus = rc != 0 ? (inv.type == WSGW_CONNECT ? 502 : 500) : 200;
    if (inv.type != WSGW_CONNECT && backendStatus >= 400) {  // the backend's error body is still the response
        RouteMetrics::add(metrics.integrationErrors);
        accessStatus = backendStatus;
    }

    if (rc != 0) {
        log::warn("integration error", {log::Field("connectionId", connectionId), log::Field("requestId", inv.requestId),
                                        log::Field("routeKey", routeKey), log::Field("handler", integrationName),
                                        log::Field("error", failure)});
    }
    switch (inv.type) {
    case WSGW_CONNECT: {
        int status = 0;
        std::string body;
        if (rc != 0) {
            status = 502;
        } else if (resp.status_code < 200 || resp.status_code > 299) {
            status = resp.status_code >= 100 && resp.status_code <= 599 ? resp.status_code : 502;
            if (resp.body && resp.body_len) body.assign(resp.body, resp.body_len);
        }
        if (rc == 0 && status == 0 && resp.backend_url) {  // the handler chose this connection's backend
            inv.connection->chosenBackend = std::make_unique<LiveConnection::ChosenBackend>();
            inv.connection->chosenBackend->url = resp.backend_url;
            if (resp.backend_headers) inv.connection->chosenBackend->headers = resp.backend_headers;
        }
        if (rc == 0 && status != 0) RouteMetrics::add(metrics.integrationErrors);  // the handler answered 4XX/5XX
        if (status != 0) accessStatus = status;
        control_.connectDecided(connectionId, status, std::move(body));
        break;
    }
    case WSGW_MESSAGE:
        if (inv.wpsClient && inv.wpsRequest) {
            std::string response;
            bool respond = rc == 0 && inv.route->routeResponse && resp.body;
            if (respond) response.assign(resp.body, resp.body_len);
            wpsAnswerEvent(host_, *inv.wpsClient, *inv.wpsRequest, rc != 0, rc != 0 ? "the event's integration failed" : "",
                           respond ? &response : nullptr, resp.is_binary != 0);
            RouteMetrics::add(metrics.messagesOut);
        } else if (rc != 0) {
            control_.sendFrame(connectionId, awsErrorFrame("Internal server error", connectionId, inv.requestId), false);
            RouteMetrics::add(metrics.messagesOut);
        } else if (inv.route->routeResponse && resp.body) {  // NULL: nothing; length 0: an empty message (SPEC 9)
            // A handler that answers with the message's own bytes (an echo) hands them back without a copy.
            bool ownBody = resp.body == inv.body.data() && resp.body_len == inv.body.size();
            control_.sendFrameTo(inv.connection, ownBody ? std::move(inv.body) : std::string(resp.body, resp.body_len),
                                 resp.is_binary != 0);
            RouteMetrics::add(metrics.messagesOut);
        }
        break;
    case WSGW_DISCONNECT:
        break;
    }
    // End to end up to the handler's return (the answer is queued right after): one clock read fewer.
    metrics.latency.observeMicros(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(returnedAt - inv.receivedAt).count()));
    logAccess(inv, routeKey, accessStatus, integrationMs, rc != 0 ? std::string_view(failure) : std::string_view());
    return true;
}

void Invoker::logAccess(const Invocation &inv, const char *routeKey, int status, int64_t integrationMs, std::string_view error) {
    if (!host_.accessLog) return;
    const ConnectionInfo &info = inv.connection->info;
    AccessEntry e;
    e.eventType = inv.type == WSGW_CONNECT ? "CONNECT" : inv.type == WSGW_DISCONNECT ? "DISCONNECT" : "MESSAGE";
    e.requestId = inv.requestId;
    e.connectionId = info.connectionId;
    e.routeKey = routeKey;
    e.messageId = inv.messageId;
    e.sourceIp = info.sourceIp;
    e.userAgent = info.userAgent;
    e.error = error;
    e.status = status;
    e.integrationLatencyMs = integrationMs;
    e.requestTimeEpochMs = inv.requestTimeMs;
    e.disconnectStatusCode = inv.disconnectCode;
    host_.accessLog->write(e);
}

void Invoker::answerTimeout(WorkerSlot &slot) {
    log::warn("integration timeout", {log::Field("connectionId", slot.connectionId), log::Field("requestId", slot.requestId),
                                      log::Field("routeKey", slot.routeKey), log::Field("handler", slot.handler)});
    if (slot.type == WSGW_CONNECT) {
        control_.connectDecided(slot.connectionId, 504, {});
    } else if (slot.type == WSGW_MESSAGE) {
        control_.sendFrame(slot.connectionId, awsErrorFrame("Endpoint request timed out", slot.connectionId, slot.requestId), false);
        if (slot.metrics) RouteMetrics::add(slot.metrics->messagesOut);
    }
}

// An idle gateway's watchdog sleeps kWatchdogIdleSleep instead of ticking every 5 ms (~400 wake-ups a
// second for nothing); the first invocation after a quiet spell wakes it (wakeIdleWatchdog).
void Invoker::wakeIdleWatchdog() {
    // watchdogIdle_ is set before the watchdog looks at the slots, under watchdogMutex_ which it holds until
    // it waits: a slot made busy before it looked is seen, and one made busy after sees the flag, and its
    // notify (under the mutex) cannot come before the wait.
    if (!watchdogIdle_.load()) return;
    std::lock_guard lock(watchdogMutex_);
    watchdogCv_.notify_one();
}

void Invoker::watchdogLoop() {
    std::unique_lock lock(watchdogMutex_);
    bool idle = false;
    for (;;) {
        watchdogCv_.wait_for(lock, idle ? kWatchdogIdleSleep : std::chrono::milliseconds(5));
        watchdogIdle_.store(true);
        idle = true;
        {
            std::lock_guard rlock(readyMutex_);
            if (stopping_) return;
        }
        auto now = std::chrono::steady_clock::now();
        for (auto &slotPtr : slots_) {
            WorkerSlot &slot = *slotPtr;
            std::lock_guard slock(slot.mutex);
            if (slot.busy) idle = false;
            if (!slot.busy || slot.timedOut || now < slot.deadline) continue;
            slot.timedOut = true;
            answerTimeout(slot);
            // An isolated invocation returns at its deadline by itself (its worker process is killed).
            if (slot.isolated) continue;
            // A handler cannot be stopped in process: its worker is written off until it returns. The
            // invocation ends now (its message no longer holds its lane back), the connection's later
            // messages move to another worker, and a new worker keeps the pool's size.
            slot.retired = true;
            stuck_.writtenOff({slot.handlerId, slot.routeKey});
            if (slot.invocation && slot.invocation->pendingCounted) {
                releasePending(*slot.invocation);
                slot.invocation->pendingCounted = false;  // the worker sees this under slot.mutex
            }
            if (slot.invocation) removeRowIfOwed(*slot.invocation);
            invocationDone();
            if (auto lane = slot.lane) {
                std::lock_guard llock(lane->mutex);
                if (lane->queue.empty()) {
                    lane->scheduled = false;
                } else {
                    std::lock_guard rlock(readyMutex_);
                    ready_.push_back(lane);
                    readyCv_.notify_one();
                }
            }
        }
        // Written-off workers whose handler has finished are joined and forgotten.
        size_t live = 0;
        for (auto it = slots_.begin(); it != slots_.end();) {
            if ((*it)->exited.load(std::memory_order_acquire)) {
                (*it)->thread.join();
                it = slots_.erase(it);
                continue;
            }
            std::lock_guard slock((*it)->mutex);
            if (!(*it)->retired) ++live;
            ++it;
        }
        // Keep the pool at its size; a thread that cannot be created now is retried shortly.
        while (live < threads_ && now >= nextSpawnRetry_ && startWorker()) ++live;
        if (live < threads_ || slots_.size() != live) idle = false;  // a worker to replace or to join soon
        if (live == 0) answerWithoutWorkers();
        if (!idle) watchdogIdle_.store(false);
    }
}

void Invoker::warnStuck(const char *what, const Invocation &inv, const char *routeKey, size_t stuckHere) {
    int64_t nowMs = nowEpochMs();
    int64_t warnAt = nextStuckWarningMs_.load(std::memory_order_relaxed);
    if (nowMs < warnAt || !nextStuckWarningMs_.compare_exchange_strong(warnAt, nowMs + 10000)) return;
    log::warn(what, {log::Field("handler", inv.route->handler->name), log::Field("routeKey", routeKey),
                     log::Field("stuckThreads", static_cast<uint64_t>(stuckThreads())),
                     log::Field("stuckInThisRoute", static_cast<uint64_t>(stuckHere)),
                     log::Field("maxStuckThreads", static_cast<uint64_t>(maxStuckThreads_))});
}

bool Invoker::failFastWhenStuck(const Invocation &inv, const char *routeKey) {
    size_t stuckHere = stuck_.stuckAtCap({inv.route->handler, routeKey});
    if (stuckHere == 0) return false;
    const std::string &connectionId = inv.connection->info.connectionId;
    warnStuck("handler not called: its route's stuck invocations have reached the limit; answering with the timeout",
              inv, routeKey, stuckHere);
    RouteMetrics &metrics = *inv.route->metrics;
    RouteMetrics::add(metrics.executionErrors);
    if (inv.type == WSGW_CONNECT) {
        control_.connectDecided(connectionId, 504, {});
    } else if (inv.type == WSGW_MESSAGE) {
        control_.sendFrame(connectionId, awsErrorFrame("Endpoint request timed out", connectionId, inv.requestId), false);
        RouteMetrics::add(metrics.messagesOut);
    }
    logAccess(inv, routeKey, 504, 0, "Endpoint request timed out (handler not called: too many of its route's invocations are stuck)");
    return true;
}

// A $disconnect is owed to every connection whose $connect ran: at the cap it is not answered but parked,
// still pending, until one of its route's stuck threads returns (StuckRoutes::returned hands it back).
bool Invoker::parkWhenStuck(Invocation &inv, const char *routeKey) {
    StuckRoutes::Route route{inv.route->handler, routeKey};
    size_t stuckHere = stuck_.stuckAtCap(route);
    if (stuckHere == 0) return false;
    warnStuck("$disconnect waits: its route's stuck invocations have reached the limit; it runs when one returns",
              inv, routeKey, stuckHere);
    return stuck_.parkIfAtCap(route, inv);  // rechecked with the release under one lock
}

// No worker is left (every one is stuck in a handler and no thread can be created): what is queued gets
// the integration error now instead of waiting for a worker that may never come. A $disconnect is not
// answered to anyone and is owed to its connection: it stays queued for the next worker (or, when none
// comes before stop(), its row stays for the next start's clean-up).
void Invoker::answerWithoutWorkers() {
    std::deque<std::shared_ptr<Lane>> lanes, keep;
    {
        std::lock_guard lock(readyMutex_);
        lanes.swap(ready_);
        deferredWakes_ = 0;
    }
    for (auto &lane : lanes) {
        std::vector<Invocation> taken;
        {
            std::lock_guard lock(lane->mutex);
            FifoQueue<Invocation> disconnects;
            while (!lane->queue.empty()) {
                Invocation &front = lane->queue.front();
                if (front.type == WSGW_DISCONNECT) disconnects.push_back(std::move(front));
                else taken.push_back(std::move(front));
                lane->queue.pop_front();
            }
            while (!disconnects.empty()) {
                lane->queue.push_back(std::move(disconnects.front()));
                disconnects.pop_front();
            }
            lane->scheduled = !lane->queue.empty();  // still in ready_ (below) when it is
            if (lane->scheduled) keep.push_back(lane);
        }
        for (Invocation &inv : taken) {
            const std::string &connectionId = inv.connection->info.connectionId;
            const char *routeKey = routeKeyOf(inv);
            if (inv.route) RouteMetrics::add(inv.route->metrics->executionErrors);
            if (inv.type == WSGW_CONNECT) {
                control_.connectDecided(connectionId, 502, {});
            } else {
                control_.sendFrame(connectionId, awsErrorFrame("Internal server error", connectionId, inv.requestId), false);
                if (inv.route) RouteMetrics::add(inv.route->metrics->messagesOut);
            }
            logAccess(inv, routeKey, inv.type == WSGW_CONNECT ? 502 : 500, -1, "no handler worker thread could be started");
            if (inv.pendingCounted) releasePending(inv);
            invocationDone();
        }
    }
    if (keep.empty()) return;
    std::lock_guard lock(readyMutex_);
    for (auto &lane : keep) ready_.push_back(std::move(lane));
}

}  // namespace wsgw
