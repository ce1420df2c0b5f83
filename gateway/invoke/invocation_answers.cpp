#include "invocation_answers.h"

#include "webpubsub_clients.h"

#include "log.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

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

namespace {

void observeEndToEnd(RouteMetrics &metrics, const Invocation &inv, std::chrono::steady_clock::time_point until) {
    metrics.latency.observeMicros(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(until - inv.receivedAt).count()));
}

}  // namespace

bool InvocationAnswers::settledByAuthorizer(Invocation &inv, const char *routeKey) {
    if (!inv.route->authorizer) return false;
    // An Azure Web PubSub client was admitted by its access token (docs/webpubsub.md): the route's authorizer,
    // written for the API's other clients, does not run for it.
    bool admittedByToken = inv.connection->info.admission && inv.connection->info.admission->authorizerType == "webPubSub";
    if (!admittedByToken && !authorizeConnect(inv)) return true;
    if (inv.route->handler || inv.route->http) return false;
    // An authorizer and no $connect integration: admitted.
    control_.connectDecided(inv.connection->info.connectionId, 0, {});
    observeEndToEnd(*inv.route->metrics, inv, std::chrono::steady_clock::now());
    logAccess(inv, routeKey, 200, -1, {});
    return true;
}

// The $connect authorizer, before any handler: false when it refused (the refusal is already sent).
bool InvocationAnswers::authorizeConnect(Invocation &inv) {
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

void InvocationAnswers::answer(Invocation &inv, const char *routeKey, IntegrationOutcome &out) {
    RouteMetrics &metrics = *inv.route->metrics;
    if (out.timedOut) {  // the timeout was answered at the deadline; this late result is dropped
        RouteMetrics::add(metrics.executionErrors);
        logAccess(inv, routeKey, 504, out.integrationMs, "Endpoint request timed out");
        return;
    }
    const wsgw_response &resp = out.response;
    // A route response is a message the gateway is asked to send, bounded like a push (maxMessageBytes,
    // maxSendQueueBytes): over maxMessageBytes it is the handler's error, never a frame of any size.
    size_t maxMessageBytes = host_.maxMessageBytes.load(std::memory_order_relaxed);
    if (out.rc == 0 && inv.type == WSGW_MESSAGE && inv.route->routeResponse && resp.body && resp.body_len > maxMessageBytes) {
        out.rc = 1;
        out.failure = "the route response is " + std::to_string(resp.body_len) + " bytes, over limits.maxMessageBytes (" +
                      std::to_string(maxMessageBytes) + " bytes): answer with less, or raise the limit in routes.json";
    }
    // A worker process that died is the gateway failing to run the handler; anything else is the handler's.
    if (out.rc != 0) RouteMetrics::add(out.executionFailed ? metrics.executionErrors : metrics.integrationErrors);
    int accessStatus = out.rc != 0 ? (inv.type == WSGW_CONNECT ? 502 : 500) : 200;
    if (inv.type != WSGW_CONNECT && out.backendStatus >= 400) {  // the backend's error body is still the response
        RouteMetrics::add(metrics.integrationErrors);
        accessStatus = out.backendStatus;
    }
    if (out.rc != 0) {
        log::warn("integration error", {log::Field("connectionId", inv.connection->info.connectionId),
                                        log::Field("requestId", inv.requestId), log::Field("routeKey", routeKey),
                                        log::Field("handler", *out.integrationName), log::Field("error", out.failure)});
    }
    if (inv.type == WSGW_CONNECT) decideConnect(inv, out, accessStatus);
    else if (inv.type == WSGW_MESSAGE) answerMessage(inv, out);
    // End to end up to the handler's return (the answer is queued right after): one clock read fewer.
    observeEndToEnd(metrics, inv, out.returnedAt);
    logAccess(inv, routeKey, accessStatus, out.integrationMs, out.rc != 0 ? std::string_view(out.failure) : std::string_view());
}

void InvocationAnswers::decideConnect(Invocation &inv, const IntegrationOutcome &out, int &accessStatus) {
    const wsgw_response &resp = out.response;
    int status = 0;
    std::string body;
    if (out.rc != 0) {
        status = 502;
    } else if (resp.status_code < 200 || resp.status_code > 299) {
        status = resp.status_code >= 100 && resp.status_code <= 599 ? resp.status_code : 502;
        if (resp.body && resp.body_len) body.assign(resp.body, resp.body_len);
    }
    if (out.rc == 0 && status == 0 && resp.backend_url) {  // the handler chose this connection's backend
        inv.connection->chosenBackend = std::make_unique<LiveConnection::ChosenBackend>();
        inv.connection->chosenBackend->url = resp.backend_url;
        if (resp.backend_headers) inv.connection->chosenBackend->headers = resp.backend_headers;
    }
    if (out.rc == 0 && status != 0) RouteMetrics::add(inv.route->metrics->integrationErrors);  // the handler answered 4XX/5XX
    if (status != 0) accessStatus = status;
    control_.connectDecided(inv.connection->info.connectionId, status, std::move(body));
}

void InvocationAnswers::answerMessage(Invocation &inv, IntegrationOutcome &out) {
    const wsgw_response &resp = out.response;
    const std::string &connectionId = inv.connection->info.connectionId;
    RouteMetrics &metrics = *inv.route->metrics;
    if (inv.wpsClient && inv.wpsRequest) {
        std::string response;
        bool respond = out.rc == 0 && inv.route->routeResponse && resp.body;
        if (respond) response.assign(resp.body, resp.body_len);
        wpsAnswerEvent(host_, *inv.wpsClient, *inv.wpsRequest, out.rc != 0, out.rc != 0 ? "the event's integration failed" : "",
                       respond ? &response : nullptr, resp.is_binary != 0);
        RouteMetrics::add(metrics.messagesOut);
    } else if (out.rc != 0) {
        control_.sendFrame(connectionId, awsErrorFrame("Internal server error", connectionId, inv.requestId), false);
        RouteMetrics::add(metrics.messagesOut);
    } else if (inv.route->routeResponse && resp.body) {  // NULL: nothing; length 0: an empty message
        // A handler that answers with the message's own bytes (an echo) hands them back without a copy.
        bool ownBody = resp.body == inv.body.data() && resp.body_len == inv.body.size();
        control_.sendFrameTo(inv.connection, ownBody ? std::move(inv.body) : std::string(resp.body, resp.body_len),
                             resp.is_binary != 0);
        RouteMetrics::add(metrics.messagesOut);
    }
}

void InvocationAnswers::timeout(const WorkerSlot &slot) {
    log::warn("integration timeout", {log::Field("connectionId", slot.connectionId), log::Field("requestId", slot.requestId),
                                      log::Field("routeKey", slot.routeKey), log::Field("handler", slot.handler)});
    std::string connectionId(slot.connectionId);
    if (slot.type == WSGW_CONNECT) {
        control_.connectDecided(connectionId, 504, {});
    } else if (slot.type == WSGW_MESSAGE) {
        control_.sendFrame(connectionId, awsErrorFrame("Endpoint request timed out", connectionId, slot.requestId), false);
        if (slot.metrics) RouteMetrics::add(slot.metrics->messagesOut);
    }
}

void InvocationAnswers::notCalledWhileStuck(const Invocation &inv, const char *routeKey) {
    const std::string &connectionId = inv.connection->info.connectionId;
    RouteMetrics &metrics = *inv.route->metrics;
    RouteMetrics::add(metrics.executionErrors);
    if (inv.type == WSGW_CONNECT) {
        control_.connectDecided(connectionId, 504, {});
    } else if (inv.type == WSGW_MESSAGE) {
        control_.sendFrame(connectionId, awsErrorFrame("Endpoint request timed out", connectionId, inv.requestId), false);
        RouteMetrics::add(metrics.messagesOut);
    }
    logAccess(inv, routeKey, 504, 0, "Endpoint request timed out (handler not called: too many of its route's invocations are stuck)");
}

void InvocationAnswers::notCalledWithoutWorkers(const Invocation &inv) {
    const std::string &connectionId = inv.connection->info.connectionId;
    if (inv.route) RouteMetrics::add(inv.route->metrics->executionErrors);
    if (inv.type == WSGW_CONNECT) {
        control_.connectDecided(connectionId, 502, {});
    } else {
        control_.sendFrame(connectionId, awsErrorFrame("Internal server error", connectionId, inv.requestId), false);
        if (inv.route) RouteMetrics::add(inv.route->metrics->messagesOut);
    }
    logAccess(inv, routeKeyOf(inv), inv.type == WSGW_CONNECT ? 502 : 500, -1, "no handler worker thread could be started");
}

void InvocationAnswers::releasePending(const Invocation &inv) {
    host_.metrics.pendingBytes.fetch_sub(static_cast<int64_t>(inv.pendingBytes), std::memory_order_relaxed);
    if (inv.connection->donePending(inv.pendingBytes, host_.maxPendingMessages.load(std::memory_order_relaxed),
                                    host_.maxPendingBytes.load(std::memory_order_relaxed)))
        control_.resumeReading(inv.connection->info.connectionId);
}

void InvocationAnswers::removeRowIfOwed(Invocation &inv) {
    if (!inv.removeRowAfter) return;
    inv.removeRowAfter->removeClosed(inv.connection->info.connectionId);
    inv.removeRowAfter = nullptr;
}

void InvocationAnswers::logAccess(const Invocation &inv, const char *routeKey, int status, int64_t integrationMs,
                                  std::string_view error) {
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

}  // namespace wsgw
