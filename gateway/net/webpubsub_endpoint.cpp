// Owns: Azure Web PubSub on the public listener (webpubsub_endpoint.h).
#include "webpubsub_endpoint.h"

#include "command_queue.h"
#include "connect_flow.h"
#include "connection_id.h"
#include "handshake.h"
#include "http_message.h"
#include "log.h"
#include "network_thread_state.h"
#include "text.h"
#include "upgrade_reader.h"
#include "utf8.h"
#include "webpubsub_clients.h"
#include "webpubsub_token.h"

#include <ctime>
#include <sys/resource.h>
#include <optional>

namespace wsgw {

namespace {

const WebPubSubSpec *specOf(NetworkThreadState &t) {
    if (!t.table || !t.table->config.webPubSub.enabled()) return nullptr;
    return &t.table->config.webPubSub;
}

int64_t nowSeconds() { return static_cast<int64_t>(std::time(nullptr)); }
// Recovery windows and warning spacing: durations, on the monotonic clock (monotonic_clock.h).
int64_t nowMs() { return monotonicMs(); }

std::string restResponse(int status, const std::string &body, const std::string &errorCode, bool head) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + httpReasonPhrase(status) + "\r\n";
    if (!body.empty()) r += "Content-Type: application/json; charset=utf-8\r\n";
    if (!errorCode.empty()) r += "x-ms-error-code: " + errorCode + "\r\n";
    r += "Content-Length: " + std::to_string(head ? 0 : body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head) r += body;
    return r;
}

std::string restErrorResponse(int status, const std::string &code, const std::string &message, bool head,
                              const std::string &allow = {}) {
    std::string r = restResponse(status, wpsRestErrorBody({status, code, message, allow}), code, head);
    if (!allow.empty()) r.insert(r.find("\r\n") + 2, "Allow: " + allow + "\r\n");
    return r;
}

// "/client/hubs/{hub}" (a trailing '/' allowed): the hub, percent-decoded; "" when the path is not one.
std::string hubOfClientPath(std::string_view path) {
    constexpr std::string_view prefix = "/client/hubs/";
    if (path.rfind(prefix, 0) != 0) return {};
    std::string_view hub = path.substr(prefix.size());
    if (!hub.empty() && hub.back() == '/') hub.remove_suffix(1);
    if (hub.find('/') != std::string_view::npos) return {};
    bool ok;
    std::string decoded = percentDecode(hub, &ok, {.allowNul = true});  // as the REST API reads a hub
    return ok ? decoded : std::string();
}

void appendJsonStrings(std::string &out, const std::vector<std::string> &values) {
    out += '[';
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        log::appendJsonString(out, values[i]);
    }
    out += ']';
}

}  // namespace

// ---- REST ----

namespace {

// A REST request read whole and checked on the network thread (cheap: parsing, the token's HMAC, routing).
struct CheckedRestRequest {
    bool head = false;
    std::string hostHeader;
    std::optional<WpsRestOperation> op;  // authorized, for a hub served here: to perform
    std::string answer;                  // otherwise the whole response (an error)
};

CheckedRestRequest checkRestRequest(const WebPubSubSpec &spec, HttpMessageParser &parser, HttpParseState state) {
    CheckedRestRequest out;
    out.head = parser.headComplete() && parser.head().method == "HEAD";
    if (state == HttpParseState::Error) {
        const HttpParseError &e = parser.error();
        out.answer = restErrorResponse(e.status, e.status == 413 ? "PayloadTooLarge" : "BadRequest", e.reason, out.head);
        return out;
    }
    const HttpMessageHead &req = parser.head();
    const std::string *host = req.header("Host");
    const std::string *auth = req.header("Authorization");
    const std::string *type = req.header("Content-Type");
    out.hostHeader = host ? *host : std::string();
    WpsTokenCheck check = verifyWpsServerToken(auth ? wpsBearerToken(*auth) : std::string_view(), spec.accessKeys,
                                               out.hostHeader, req.target, nowSeconds());
    if (!check.ok()) {
        out.answer = restErrorResponse(check.status, check.status == 401 ? "Unauthorized" : "Forbidden",
                                       check.status == 401 ? "no bearer token: sign the request with an access key, as the server SDK does"
                                                           : check.reason,
                                       out.head);
        return out;
    }
    auto routed = routeWpsRest({req.method, req.target, type ? std::string_view(*type) : std::string_view(), parser.body()});
    if (auto *err = std::get_if<WpsRestError>(&routed)) {
        out.answer = restErrorResponse(err->status, err->code, err->message, out.head, err->allow);
        return out;
    }
    WpsRestOperation &op = std::get<WpsRestOperation>(routed);
    if (op.op != WpsRestOp::Health && !spec.hasHub(op.hub)) {
        out.answer = restErrorResponse(404, "NotFound",
                                       "hub '" + op.hub.substr(0, 60) + "' is not served here: add it to routes.json webPubSub.hubs",
                                       out.head);
        return out;
    }
    out.op = std::move(op);
    return out;
}

// In a cluster the operation may wait on Redis: it runs on the cluster's executor and its answer comes back
// through this thread's command queue, by the session's ID (the session may be gone by then). Meanwhile the
// socket is not read (what a client pipelines waits in the kernel); the handshake timer still runs, and a
// request it ends is answered 503 (wpsRestUnansweredResponse).
void performOnClusterExecutor(NetworkThreadState &t, Session *s, const WebPubSubSpec &spec, CheckedRestRequest &&req) {
    PendingUpgrade &up = *s->upgrade;
    ev_io_stop(t.loop, &up.io);
    up.restPending = true;
    up.restHead = req.head;
    std::string().swap(up.head);  // the operation holds all it needs of the request
    up.restParser.reset();
    log::debug("webpubsub REST request waits on the cluster", {log::Field("connectionId", s->id)});
    // The spec is copied: a reload may free this table while the operation runs.
    t.host.cluster->runBlocking([host = &t.host, sink = t.commands->sink(), id = s->id, spec = spec, op = std::move(*req.op),
                                 hostHeader = std::move(req.hostHeader), head = req.head] {
        WpsRestResult r = performWpsRest(*host, spec, op, hostHeader, nowSeconds());
        sink->post(Command{Command::Kind::WpsRestAnswered, InlineId(id), restResponse(r.status, r.body, r.errorCode, head), false, 0});
    });
}

}  // namespace

bool wpsRestRequestHandled(NetworkThreadState &t, Session *s) {
    const WebPubSubSpec *spec = specOf(t);
    if (!spec) return false;
    if (s->upgrade->restPending) return true;  // its operation runs already: nothing more is taken from it
    const std::string &head = s->upgrade->head;
    size_t lineEnd = head.find("\r\n");
    if (lineEnd == std::string::npos) {
        // The request line is not all there yet. One that is already longer than any upgrade head may be
        // is refused here when it is a REST call, so that it gets the REST API's error form (with its
        // x-ms-error-code), not the upgrade's plain 431.
        size_t sp = head.find(' ');
        if (head.size() < UpgradeReader::kMaxHeadBytes || sp == std::string::npos ||
            !isWpsRestPath(std::string_view(head).substr(sp + 1, 10)))
            return false;
        std::string response = restErrorResponse(
            414, "BadRequest",
            "the request line reaches " + std::to_string(UpgradeReader::kMaxHeadBytes) +
                " bytes without ending: shorten the URL (a group, user or connection name of that length is not served)",
            head.rfind("HEAD ", 0) == 0);
        t.upgradeReader->dropUnaccepted(s, &response);
        return true;
    }
    std::string_view line(head.data(), lineEnd);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return false;
    std::string_view rest = line.substr(sp + 1);
    if (!isWpsRestPath(rest.substr(0, rest.find(' ')))) return false;

    std::unique_ptr<HttpMessageParser> &parser = s->upgrade->restParser;
    if (!parser) {
        HttpParserOptions options;
        options.maxBodyBytes = t.table->config.limits.maxMessageBytes;  // over it: the parser's 413, naming this limit
        // A chunked body with its framing: one-byte chunks with long extensions grew the request without
        // bound (4 KB on the wire per byte of body) until the handshake timeout, all of it held here.
        options.maxChunkedWireBytes = 2 * options.maxBodyBytes + 65536;
        parser = std::make_unique<HttpMessageParser>(options);
    }
    HttpParseState state = parser->feed(head);
    if (state == HttpParseState::NeedMore) return true;  // wait for more (readHead calls again)
    CheckedRestRequest req = checkRestRequest(*spec, *parser, state);
    if (req.op && t.host.cluster) {
        performOnClusterExecutor(t, s, *spec, std::move(req));
        return true;
    }
    // Without a cluster the operation only queues work for other threads: done here at once.
    std::string response = std::move(req.answer);
    if (req.op) {
        WpsRestResult r = performWpsRest(t.host, *spec, *req.op, req.hostHeader, nowSeconds());
        response = restResponse(r.status, r.body, r.errorCode, req.head);
    }
    t.upgradeReader->dropUnaccepted(s, &response);
    return true;
}

void wpsRestAnswered(NetworkThreadState &t, std::string_view connectionId, const std::string &response) {
    Session *s = t.find(connectionId);
    if (!s || !s->upgrade || !s->upgrade->restPending) {
        log::debug("webpubsub REST answer dropped: its request was answered or closed meanwhile",
                   {log::Field("connectionId", connectionId)});
        return;
    }
    s->upgrade->restPending = false;
    t.upgradeReader->dropUnaccepted(s, &response);
}

std::string wpsRestUnansweredResponse(NetworkThreadState &t, Session *s) {
    if (!s->upgrade || !s->upgrade->restPending) return {};
    s->upgrade->restPending = false;
    std::string why = t.draining
                          ? "the gateway is shutting down and the cluster had not answered yet"
                          : "the cluster (Redis) did not answer within limits.handshakeTimeoutSeconds (" +
                                std::to_string(t.table ? t.table->config.limits.handshakeTimeoutSeconds : 10) + " s)";
    log::warn("webpubsub REST request answered 503", {log::Field("connectionId", s->id), log::Field("reason", why)});
    return restErrorResponse(503, "ServiceUnavailable",
                             why + "; the operation may still take effect: check its result before retrying",
                             s->upgrade->restHead);
}

// ---- the client upgrade ----

bool isWpsClientPath(std::string_view path) { return path.rfind("/client/hubs/", 0) == 0; }

std::string wpsResumeId(const UpgradeRequest &request) {
    if (!isWpsClientPath(request.path)) return {};
    for (auto &[name, value] : parseQueryString(request.rawQuery))
        if (name == "awps_connection_id") return value;
    return {};
}

namespace {

// What a client's upgrade carries in its query (and Authorization header): its token, and for a reliable
// client coming back, the connection it recovers with that connection's reconnection token.
struct WpsClientCredentials {
    std::string token, recoverId, reconnectionToken;
};

WpsClientCredentials clientCredentialsOf(const UpgradeRequest &req) {
    WpsClientCredentials c;
    for (auto &[name, value] : parseQueryString(req.rawQuery)) {
        if (name == "access_token" && c.token.empty()) c.token = value;
        if (name == "awps_connection_id") c.recoverId = value;
        if (name == "awps_reconnection_token") c.reconnectionToken = value;
    }
    if (c.token.empty())
        if (const std::string *auth = req.header("Authorization")) c.token = std::string(wpsBearerToken(*auth));
    return c;
}

// Why the connection `existing` may not be recovered by a client of `hub` and `userId`, or nullptr.
// A close reason holds at most 123 bytes: these stay short enough to keep the advice at their end.
const char *recoveryMismatch(const std::shared_ptr<WpsClientState> &existing, const std::string &hub, const std::string &userId) {
    if (!existing || existing->hub != hub || existing->subprotocol != WpsSubprotocol::ReliableJson)
        return "is not waiting to be recovered here";
    if (existing->userId != userId) return "belongs to another user";
    if (existing->lostWhileDetached) return "lost messages while away (over maxSendQueueBytes)";
    return nullptr;
}

// The client is back on a new socket while its old one still looks alive here: a phone that changed
// networks, whose old socket's end never reached us. With the right token, the old socket is dropped as
// the network would have dropped it, which opens the recovery window; the client retries the recovery
// (reliable clients retry an HTTP refusal) and resumes then, with nothing lost. Always refuses this socket.
void takeOverStillOpenConnection(NetworkThreadState &t, Session *s, const WpsClientState &existing,
                                 const WpsClientCredentials &creds) {
    const std::string &recoverId = creds.recoverId;
    if (!wpsTokensEqual(creds.reconnectionToken, existing.reconnectionToken)) {
        t.upgradeReader->refuseUpgrade(s, 403, "connection '" + recoverId.substr(0, 40) +
                                                   "' was given a wrong awps_reconnection_token: connect without awps_connection_id");
        return;
    }
    t.host.control->closeConnection(recoverId, kDropTransportCode, "taken over by a recovering socket");
    log::info("webpubsub recovery takes over a connection whose socket is still open", {log::Field("connectionId", recoverId)});
    t.upgradeReader->refuseUpgrade(s, 503, "connection '" + recoverId.substr(0, 40) +
                                               "' is still open on its previous socket, which is being closed now: retry the recovery");
}

// A reliable client coming back after its socket dropped: the same connection, if it may. False has refused.
bool recoveryAdmitted(NetworkThreadState &t, Session *s, const UpgradeRequest &req, const std::string &hub,
                      const WpsTokenCheck &check, const WpsClientCredentials &creds) {
    PendingUpgrade &up = *s->upgrade;
    const std::string &recoverId = creds.recoverId;
    auto existing = t.host.webPubSub.find(recoverId);
    const char *refusal = recoveryMismatch(existing, hub, check.userId);
    std::shared_ptr<LiveConnection> previous;
    WpsRecoveryWindow::Resume why = WpsRecoveryWindow::Resume::Unknown;
    bool attached = false;
    if (!refusal) {
        std::lock_guard lock(existing->mutex);
        attached = !existing->detached;
    }
    if (!refusal && attached) {
        takeOverStillOpenConnection(t, s, *existing, creds);
        return false;
    }
    if (!refusal) {
        previous = t.host.webPubSub.resume(recoverId, creds.reconnectionToken, nowMs(), &why);
        if (!previous)
            refusal = why == WpsRecoveryWindow::Resume::WrongToken ? "was given a wrong awps_reconnection_token"
                                                                    : "is not waiting to be recovered (window ended)";
    }
    if (refusal) {
        std::string reason = std::string("the connection ") + refusal + ": connect without awps_connection_id";
        log::info("webpubsub recovery refused", {log::Field("connectionId", recoverId.substr(0, 40)), log::Field("reason", reason)});
        if (why == WpsRecoveryWindow::Resume::WrongToken) {
            t.upgradeReader->refuseUpgrade(s, 403, reason);
        } else {
            // Azure's answer for a connection it no longer holds: the upgrade, then close 1008, on which
            // reliable clients stop retrying the recovery (an HTTP refusal is retried for 30 s).
            t.upgradeReader->closeAfterUpgrade(s, req, up.subprotocol, 1008, reason);
        }
        return false;
    }
    s->wps = std::move(existing);
    s->wpsResumeFrom = std::move(previous);
    return true;
}

// A new client of `hub`: its state, permissions from its token's roles, and for a reliable client its outbox.
void attachNewWpsClient(NetworkThreadState &t, Session *s, const std::string &hub, WpsTokenCheck &check) {
    auto state = std::make_shared<WpsClientState>();
    state->connectionId = s->id;
    state->hub = hub;
    state->userId = check.userId;
    state->subprotocol = wpsSubprotocolOf(s->upgrade->subprotocol);
    auto unknownRoles = state->permissions.addRoles(check.roles);
    if (!unknownRoles.empty())
        log::debug("webpubsub token roles that grant nothing", {log::Field("connectionId", s->id), log::Field("role", unknownRoles.front())});
    if (state->subprotocol == WpsSubprotocol::ReliableJson) {
        state->reconnectionToken = newWpsReconnectionToken();
        state->outbox = std::make_unique<WpsReliableOutbox>(t.table->config.limits.maxSendQueueBytes);
    }
    s->wps = std::move(state);
    s->wpsGroups = std::make_unique<std::vector<std::string>>(std::move(check.groups));
}

}  // namespace

bool wpsClientAdmitted(NetworkThreadState &t, Session *s, HeadParse &parsed) {
    const WebPubSubSpec *spec = specOf(t);
    UpgradeRequest &req = parsed.request;
    std::string hub = hubOfClientPath(req.path);
    if (!spec || hub.empty() || !spec->hasHub(hub)) {
        t.upgradeReader->refuseUpgrade(s, 404, "no Web PubSub hub at " + req.path.substr(0, 80) +
                                                   (spec ? ": the hubs are those of routes.json webPubSub.hubs"
                                                         : ": this API has no \"webPubSub\" in routes.json"));
        return false;
    }
    WpsClientCredentials creds = clientCredentialsOf(req);
    const std::string *host = req.header("Host");
    WpsTokenCheck check = verifyWpsClientToken(creds.token, spec->accessKeys, hub, host ? *host : std::string(), nowSeconds());
    if (!check.ok()) {
        t.upgradeReader->refuseUpgrade(s, check.status, check.reason);
        return false;
    }
    static const std::vector<std::string> kOurs = {std::string(kWpsReliableJsonSubprotocol), std::string(kWpsJsonSubprotocol)};
    PendingUpgrade &up = *s->upgrade;
    up.subprotocol = chooseSubprotocol(req, kOurs);  // none of ours: a plain WebSocket client of the hub
    up.head = withoutHeader(up.head, req.headLength, "Sec-WebSocket-Protocol");
    if (!creds.recoverId.empty() && wpsSubprotocolOf(up.subprotocol) == WpsSubprotocol::ReliableJson)
        return recoveryAdmitted(t, s, req, hub, check, creds);
    attachNewWpsClient(t, s, hub, check);
    return true;
}

void wpsFillConnectionInfo(Session *s, ConnectionInfo &info) {
    if (!s->wps) return;
    const WpsClientState &w = *s->wps;
    std::string json = "{\"principalId\":";
    log::appendJsonString(json, w.userId);
    json += ",\"userId\":";
    log::appendJsonString(json, w.userId);
    json += ",\"hub\":";
    log::appendJsonString(json, w.hub);
    json += ",\"subprotocol\":";
    log::appendJsonString(json, wpsSubprotocolName(w.subprotocol));
    json += ",\"roles\":";
    appendJsonStrings(json, w.permissions.roles());
    json += ",\"groups\":";
    appendJsonStrings(json, s->wpsGroups ? *s->wpsGroups : std::vector<std::string>());
    json += '}';
    info.authorizerJson = std::move(json);
    auto admission = std::make_shared<ConnectionInfo::Admission>();
    admission->principalId = w.userId;
    admission->authorizerType = "webPubSub";  // the access token admitted it: a route authorizer does not run
    info.admission = std::move(admission);
}

bool wpsClientOpened(NetworkThreadState &t, Session *s) {
    if (!s->wps) return true;
    if (s->wpsResumed) {
        // "connected" again (the client SDK takes the new reconnection token from it), then every message
        // not acknowledged yet, in order; the client drops the numbers it already has.
        WpsClientState &st = *s->wps;
        wpsSendToClient(t.host, st, wpsConnectedMessage(st.connectionId, st.userId, st.reconnectionToken), false);
        std::lock_guard lock(st.mutex);
        st.detached = false;
        for (auto &frame : st.outbox->unacknowledged()) t.host.control->sendShared(st.connectionId, frame, false);
        log::info("webpubsub connection recovered", {log::Field("connectionId", st.connectionId),
                                                     log::Field("resent", static_cast<uint64_t>(st.outbox->count()))});
        return true;
    }
    std::vector<std::string> groups = s->wpsGroups ? std::move(*s->wpsGroups) : std::vector<std::string>();
    s->wpsGroups.reset();
    int rc = wsgw::wpsClientOpened(t.host, s->wps, groups);
    if (rc != WSGW_OK)
        log::warn("webpubsub client could not join its groups", {log::Field("connectionId", s->id), log::Field("code", rc)});
    return rc == WSGW_OK;
}

void wpsClientFinished(NetworkThreadState &t, Session *s) {
    if (s->wps) wpsClientClosed(t.host, s->id);
}

// ---- connection recovery ----

namespace {

// The window of a detached connection ended (or the gateway drains): it ends as a connection closed
// abnormally, and its $disconnect runs now.
// A detached connection's place in limits.maxConnectionsPerIp, given back when it resumes or ends.
void releaseDetachedIp(NetworkThreadState &t, LiveConnection &live) {
    if (live.detachedHoldsIpCount.exchange(false)) t.settings.ipCounts->release(live.info.sourceIp);
}

void finishDetached(NetworkThreadState &t, const std::shared_ptr<LiveConnection> &live) {
    releaseDetachedIp(t, *live);
    const std::string &id = live->info.connectionId;
    if (t.registry.find(id) == live) t.registry.remove(id);
    forgetConnectionGroups(t.host, id);
    wpsClientClosed(t.host, id);
    static const std::string kReason = "Connection closed abnormally; its Web PubSub recovery window ended";
    const std::shared_ptr<const RouteTable> &table = t.table;
    if (!table || !table->disconnect || !t.hasInvoker()) {
        t.store.remove(id);
        t.logGatewayAnswer("DISCONNECT", id, "$disconnect", 200, live->info.sourceIp, live->info.userAgent, {}, {}, 1006);
        return;
    }
    Invocation inv = lifecycleInvocation(table, WSGW_DISCONNECT, live, nowEpochMs());
    inv.disconnectCode = 1006;
    inv.disconnectReason = kReason;
    inv.removeRowAfter = &t.store;
    t.invoker().submit(t.invoker().newLane(), std::move(inv), true);
}

// The descriptor limit (soft RLIMIT_NOFILE, which the gateway raises at start): as many connections as it
// could serve live.
size_t maxDetachedConnections() {
    static const size_t limit = [] {
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return size_t{65536};
        return static_cast<size_t>(rl.rlim_cur);
    }();
    return limit;
}

void stopRecoveryTimer(NetworkThreadState &t) {
    if (!t.wpsRecoveryTimerOn) return;
    ev_timer_stop(t.loop, &t.wpsRecoveryTimer);
    t.wpsRecoveryTimerOn = false;
}

void onRecoveryTimer(struct ev_loop *, ev_timer *w, int) {
    auto &t = *static_cast<NetworkThreadState *>(w->data);
    // Any thread may end any window: everything finishDetached touches is shared and thread-safe.
    for (auto &live : t.host.webPubSub.expire(nowMs())) finishDetached(t, live);
    if (t.host.webPubSub.detachedCount() == 0) stopRecoveryTimer(t);
}

}  // namespace

bool wpsDetachForRecovery(NetworkThreadState &t, Session *s) {
    if (!s->wps || !s->wps->outbox || !s->live || !s->live->upgraded.load() || !t.table || t.draining) return false;
    if (s->closeRequested || (s->closing && s->closing->peerClosed)) return false;  // a close, not a drop
    int windowSeconds = t.table->config.webPubSub.recoveryWindowSeconds;
    if (windowSeconds <= 0) return false;
    // A waiting connection holds what a live one does (its unacknowledged messages, up to maxSendQueueBytes)
    // but no descriptor, so the descriptor limit no longer bounds how many there are: a client dropping
    // connections as fast as it opens them grew the gateway by 1 MB each (found by review, 1,200 of them from
    // one address). So there are never more waiting than the gateway could have live, and an address's
    // waiting connections count against its maxConnectionsPerIp until they resume or end.
    if (t.host.webPubSub.detachedCount() >= maxDetachedConnections()) {
        static std::atomic<int64_t> lastWarnMs{0};
        int64_t now = nowMs();
        if (now - lastWarnMs.load(std::memory_order_relaxed) >= 10000) {
            lastWarnMs.store(now, std::memory_order_relaxed);
            log::warn("webpubsub: as many connections wait for recovery as the descriptor limit allows; a dropped one ends at once",
                      {log::Field("waiting", static_cast<uint64_t>(t.host.webPubSub.detachedCount())),
                       log::Field("limit", static_cast<uint64_t>(maxDetachedConnections()))});
        }
        return false;
    }
    {
        std::lock_guard lock(s->wps->mutex);
        s->wps->detached = true;
    }
    s->live->detachedHoldsIpCount.store(s->ipCounted);
    s->ipCounted = false;  // the count is the detached connection's now
    t.host.webPubSub.detach(s->id, s->live, s->wps->reconnectionToken, nowMs(), static_cast<int64_t>(windowSeconds) * 1000);
    if (!t.wpsRecoveryTimerOn) {
        ev_timer_init(&t.wpsRecoveryTimer, onRecoveryTimer, 1., 1.);
        t.wpsRecoveryTimer.data = &t;
        ev_timer_start(t.loop, &t.wpsRecoveryTimer);
        t.wpsRecoveryTimerOn = true;
    }
    log::info("webpubsub connection detached", {log::Field("connectionId", s->id), log::Field("windowSeconds", windowSeconds)});
    return true;
}

bool wpsResumeConnect(NetworkThreadState &t, Session *s) {
    if (!s->wpsResumeFrom) return false;
    std::shared_ptr<LiveConnection> previous = std::move(s->wpsResumeFrom);
    releaseDetachedIp(t, *previous);  // the new socket counts for its own address
    const std::string id = previous->info.connectionId;
    // The session takes the connection's ID (the sessions are keyed by a view of it).
    auto it = t.sessions.find(s->id);
    std::unique_ptr<Session> owned = std::move(it->second);
    t.sessions.erase(it);
    s->id = id;
    t.sessions.emplace(s->id, std::move(owned));
    // A new LiveConnection for this thread (its network thread and counters are the new socket's), with the
    // connection's identity, authorizer context and connectedAt.
    auto live = std::make_shared<LiveConnection>();
    live->info = previous->info;
    live->info.sourceIp = s->peer;
    live->lastActiveAtMs.store(nowEpochMs());
    live->networkThread = t.settings.threadIndex;
    if (t.registry.find(id) == previous) t.registry.remove(id);
    t.registry.add(live);
    s->attach(std::move(live));
    s->rowStored = true;  // its row was never removed
    s->wpsResumed = true;
    s->state = Session::State::Connecting;
    t.connectFlow->adopt(s);
    return true;
}

void wpsEndRecoveryWindows(NetworkThreadState &t) {
    for (auto &live : t.host.webPubSub.expire(INT64_MAX)) finishDetached(t, live);
    stopRecoveryTimer(t);
}

// ---- a subprotocol client's messages ----

WpsReceive wpsReceive(NetworkThreadState &t, Session *s, const CompiledRoute **route) {
    WpsClientState &state = *s->wps;
    std::variant<WpsClientMessage, WpsProtocolError> parsed =
        s->rxBinary ? std::variant<WpsClientMessage, WpsProtocolError>(wpsBinaryFrameError()) : parseWpsClientMessage(s->rx);
    s->rx.clear();
    if (auto *err = std::get_if<WpsProtocolError>(&parsed)) {
        wpsAnswerProtocolError(t.host, state, *err);
        return WpsReceive::Handled;
    }
    auto msg = std::make_shared<WpsClientMessage>(std::move(std::get<WpsClientMessage>(parsed)));
    // Requests other than events change groups or send: on a single node that is queued work; in a cluster
    // a group change waits on Redis, so the cluster's executor does it (the network thread never waits).
    using Kind = WpsClientMessage::Kind;
    bool mayWait = msg->kind == Kind::JoinGroup || msg->kind == Kind::LeaveGroup || msg->kind == Kind::SendToGroup;
    // Joining, leaving and sending are messages of the API as events are: its throttle holds for them too
    // (events meet it, with their route's, in dispatchMessage). A client with the send role went past it at
    // wire speed to a whole group.
    if (mayWait && t.table && !t.table->throttle.take(t.loopSeconds())) {
        wpsAnswerThrottled(t.host, state, msg->ackId);
        return WpsReceive::Handled;
    }
    if (mayWait && t.host.cluster) {
        // Counted against the connection's pending bounds until the executor has done it, as a message waiting
        // for its handler is: a client publishing faster than Redis answers (or while it does not answer) is
        // held back by TCP, instead of its messages queueing for the executor without end (found by the
        // bounds audit: 100 kB publishes read at wire speed while Redis was stopped grew the gateway by each).
        size_t bytes = msg->data.bytes.size() + msg->group.size();
        s->live->addPending(bytes);
        t.host.metrics.pendingBytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
        t.host.cluster->runBlocking([host = &t.host, client = s->wps, live = s->live, msg, bytes] {
            wpsHandleClientMessage(*host, *client, *msg);
            host->metrics.pendingBytes.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
            if (live->donePending(bytes, host->maxPendingMessages.load(std::memory_order_relaxed),
                                  host->maxPendingBytes.load(std::memory_order_relaxed)))
                host->control->resumeReading(live->info.connectionId);
        });
        return WpsReceive::Queued;
    }
    if (wpsHandleClientMessage(t.host, state, *msg) != WpsNext::Route) return WpsReceive::Handled;
    const RouteTable *table = t.table.get();
    const CompiledRoute *r = nullptr;
    if (table) {
        // The event name is the route key; reserved ($...) names and unknown ones go to $default.
        auto it = msg->event.empty() || msg->event[0] == '$' ? table->routes.end() : table->routes.find(msg->event);
        r = it != table->routes.end() ? &it->second : table->fallback;
    }
    *route = r;
    s->rx = std::move(msg->data.bytes);
    msg->data.bytes.clear();
    s->rxBinary = msg->data.type == WpsDataType::Binary;
    s->wpsRequest = std::move(msg);
    return WpsReceive::Dispatch;
}

void wpsAnswerRefused(NetworkThreadState &t, Session *s, const std::string &why) {
    if (!s->wps || !s->wpsRequest) return;
    wpsAnswerEvent(t.host, *s->wps, *s->wpsRequest, true, "event '" + s->wpsRequest->event.substr(0, 60) + "': " + why,
                   nullptr, false);
    s->wpsRequest.reset();
    s->rx.clear();
}

}  // namespace wsgw
