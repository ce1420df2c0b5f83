// What the client and the gateway's books get once an invocation is decided: the $connect authorizer's
// refusal or admission, the $connect decision (accept, the handler's status, a chosen backend), the route
// response or AWS's error frame for a message (or an Azure Web PubSub client's ack), the timeout answer
// at a deadline, the answer when the stuck-thread cap or a missing worker means the handler is not
// called; the route's metrics, the access log line, the connection's pending-bounds release and the
// removal of its row once its $disconnect has run. Sent through ConnectionControl, never on the socket.
#pragma once

#include "integration_call.h"
#include "invocation.h"
#include "worker_pool.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace wsgw {

// AWS's error frame text, spaced exactly as AWS spaces it.
std::string awsErrorFrame(std::string_view message, std::string_view connectionId, std::string_view requestId);

class InvocationAnswers {
public:
    InvocationAnswers(ConnectionControl &control, HostContext &host) : control_(control), host_(host) {}

    // A $connect whose route has an authorizer: true when it is answered here (refused, or admitted with
    // no $connect integration to call). An Azure Web PubSub client admitted by its token skips it.
    bool settledByAuthorizer(Invocation &inv, const char *routeKey);
    // The integration returned (or gave up): answers the client unless the timeout already did.
    void answer(Invocation &inv, const char *routeKey, IntegrationOutcome &out);
    // The deadline passed (under slot.mutex): AWS's timeout message, or 504 for a $connect.
    void timeout(const WorkerSlot &slot);
    // The route is at the stuck-thread cap: the timeout answer without calling the handler.
    void notCalledWhileStuck(const Invocation &inv, const char *routeKey);
    // No worker thread is left: the integration error without calling the handler (not a $disconnect).
    void notCalledWithoutWorkers(const Invocation &inv);

    // The message's handler returned: it no longer counts against its connection's pending bounds, and the
    // network thread reads the socket again if this brought a paused lane below half.
    void releasePending(const Invocation &inv);
    static void removeRowIfOwed(Invocation &inv);  // a $disconnect has run: its connection's row goes
    // A handler was called on the network thread (wsgw_inline_invocations_total).
    void countedInline() { host_.metrics.inlineInvocations.fetch_add(1, std::memory_order_relaxed); }
    // An inline call held its network thread past the route's timeoutMs (wsgw_inline_overruns_total).
    void countedInlineOverrun() { host_.metrics.inlineOverruns.fetch_add(1, std::memory_order_relaxed); }

private:
    bool authorizeConnect(Invocation &inv);  // false: refused (the refusal is sent)
    void decideConnect(Invocation &inv, const IntegrationOutcome &out, int &accessStatus);
    void answerMessage(Invocation &inv, IntegrationOutcome &out);
    void logAccess(const Invocation &inv, const char *routeKey, int status, int64_t integrationMs, std::string_view error);

    ConnectionControl &control_;
    HostContext &host_;
};

}  // namespace wsgw
