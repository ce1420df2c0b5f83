#include "integration_call.h"

#include "invocation_answers.h"
#include "invocation_lanes.h"

#include "utf8.h"

namespace wsgw {

namespace {

void describeEvent(const Invocation &inv, const char *routeKey, InvocationEvent &ie) {
    ie.ev.size = sizeof(wsgw_event);
    ie.ev.type = inv.type;
    ie.ev.route_key = routeKey;
    ie.ev.connection_id = inv.connection->info.connectionId.c_str();
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
}

// What an HTTP backend gets beside the event JSON, so that a simple one can dispatch without parsing it.
std::vector<std::pair<std::string, std::string>> backendHeaders(const Invocation &inv, const char *routeKey) {
    const char *type = inv.type == WSGW_CONNECT ? "CONNECT" : inv.type == WSGW_DISCONNECT ? "DISCONNECT" : "MESSAGE";
    return {{"X-Wsgw-Connection-Id", inv.connection->info.connectionId},
            {"X-Wsgw-Event-Type", type},
            {"X-Wsgw-Route-Key", routeKey},
            {"X-Wsgw-Request-Id", inv.requestId}};
}

int64_t microsBetween(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
    return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

}  // namespace

void IntegrationCaller::call(WorkerSlot &slot, Invocation &inv, const char *routeKey, IntegrationOutcome &out) {
    PluginInstance *handler = inv.route->handler;
    InvocationEvent ie;
    describeEvent(inv, routeKey, ie);
    RunningEvent running(ie);  // event_json answers for this event while it runs

    out.integrationName = handler ? &handler->name : &inv.route->http->url().text;
    auto invokedAt = std::chrono::steady_clock::now();
    auto deadline = invokedAt + std::chrono::milliseconds(inv.route->timeoutMs);
    markBusy(slot, inv, routeKey, *out.integrationName, deadline);
    pool_.wakeIdleWatchdog();  // after slot.mutex: the watchdog takes its mutex first, then each slot's

    // An out-of-process integration blocks this worker until its answer: lanes queued behind it (woken
    // one worker per 8 lanes, see InvocationLanes::wakeDeferred) get another worker now rather than after this one.
    if (inv.route->http || handler->isolated || handler->lambda) lanes_.wakeOneIfReady();

    bool deadlinePassed = false;  // an out-of-process integration gave up at the deadline
    callBackend(inv, routeKey, ie, deadline, out, deadlinePassed);

    returned(inv, invokedAt, out);
    out.timedOut = markDone(slot, deadlinePassed);
}

void IntegrationCaller::callInline(const Invocation &inv, const char *routeKey, IntegrationOutcome &out) {
    PluginInstance *handler = inv.route->handler;
    InvocationEvent ie;
    describeEvent(inv, routeKey, ie);
    RunningEvent running(ie);
    out.integrationName = &handler->name;
    auto invokedAt = std::chrono::steady_clock::now();
    out.rc = callHandler(handler->descriptor, handler->state, &ie.ev, &out.response, out.failure);
    returned(inv, invokedAt, out);
    answers_.countedInline();
}

void IntegrationCaller::returned(const Invocation &inv, std::chrono::steady_clock::time_point invokedAt, IntegrationOutcome &out) {
    out.returnedAt = std::chrono::steady_clock::now();
    inv.route->metrics->integrationLatency.observeMicros(static_cast<uint64_t>(microsBetween(invokedAt, out.returnedAt)));
    out.integrationMs = std::chrono::duration_cast<std::chrono::milliseconds>(out.returnedAt - invokedAt).count();
}

void IntegrationCaller::markBusy(WorkerSlot &slot, Invocation &inv, const char *routeKey,
                                 const std::string &integrationName, std::chrono::steady_clock::time_point deadline) {
    PluginInstance *handler = inv.route->handler;
    std::lock_guard lock(slot.mutex);
    slot.busy = true;
    slot.timedOut = false;
    slot.invocation = &inv;
    ++slot.started;
    // A lambda function's own timeout is its error ("Internal server error", docs/lambda.md "Errors") and it
    // returns at the deadline by itself; the watchdog answers only if it somehow does not, a second later.
    slot.deadline = handler && handler->lambda ? deadline + std::chrono::seconds(1) : deadline;
    slot.type = inv.type;
    slot.connectionId = inv.connection->info.connectionId;
    slot.requestId = inv.requestId;
    slot.routeKey = routeKey;
    slot.handler = integrationName;
    slot.isolated = (handler && (handler->isolated || handler->lambda)) || inv.route->http;  // all return at the deadline
    slot.metrics = inv.route->metrics;
    slot.handlerId = handler;
}

bool IntegrationCaller::markDone(WorkerSlot &slot, bool deadlinePassed) {
    std::lock_guard lock(slot.mutex);
    slot.busy = false;
    slot.invocation = nullptr;  // the watchdog looks at it only while the slot is busy
    // An isolated invocation may hit its deadline a moment before the watchdog looks: answer it here.
    if (deadlinePassed && !slot.timedOut) {
        slot.timedOut = true;
        answers_.timeout(slot);
    }
    return slot.timedOut;
}

void IntegrationCaller::callBackend(const Invocation &inv, const char *routeKey, InvocationEvent &ie,
                                    std::chrono::steady_clock::time_point deadline, IntegrationOutcome &out,
                                    bool &deadlinePassed) {
    PluginInstance *handler = inv.route->handler;
    wsgw_response &resp = out.response;
    if (inv.route->http) {
        HttpReply r = inv.route->http->post(buildEventJson(*ie.connection, ie.fields), backendHeaders(inv, routeKey), deadline);
        if (!r.failure.empty()) {
            out.rc = -1;
            out.failure = std::move(r.failure);
            deadlinePassed = r.timedOut;
            out.executionFailed = !r.timedOut;
        } else {
            out.byValue.body = std::move(r.body);
            out.backendStatus = r.status;
            resp.status_code = r.status;
            resp.body = out.byValue.body.empty() ? nullptr : out.byValue.body.data();  // an empty HTTP body sends nothing
            resp.body_len = out.byValue.body.size();
            resp.is_binary = isValidUtf8(out.byValue.body.data(), out.byValue.body.size()) ? 0 : 1;
        }
    } else if (handler->isolated || handler->lambda) {
        out.byValue = handler->isolated ? handler->isolated->invoke(ie, deadline) : handler->lambda->invoke(ie, deadline);
        out.rc = out.byValue.rc;
        out.failure = std::move(out.byValue.failure);
        deadlinePassed = out.byValue.timedOut;
        out.executionFailed = out.byValue.workerDied;
        resp.status_code = out.byValue.status;
        resp.body = out.byValue.hasBody ? out.byValue.body.data() : nullptr;
        resp.body_len = out.byValue.body.size();
        resp.is_binary = out.byValue.binary ? 1 : 0;
    } else {
        out.rc = callHandler(handler->descriptor, handler->state, &ie.ev, &resp, out.failure);
    }
}

}  // namespace wsgw
