// Owns: the out-of-line parts of NetworkThreadState (network_thread_state.h).
#include "network_thread_state.h"

#include "access_log.h"
#include "connection_id.h"

namespace wsgw {

void NetworkThreadState::logGatewayAnswer(const char *eventType, std::string_view connectionId, std::string_view routeKey,
                                          int status, std::string_view sourceIp, std::string_view userAgent,
                                          std::string_view error, std::string_view requestId, int disconnectCode) {
    if (!host.accessLog) return;
    std::string generated = requestId.empty() ? newRequestId() : std::string();
    AccessEntry e;
    e.eventType = eventType;
    e.requestId = requestId.empty() ? std::string_view(generated) : requestId;
    e.connectionId = connectionId;
    e.routeKey = routeKey;
    e.status = status;
    e.sourceIp = sourceIp;
    e.userAgent = userAgent;
    e.error = error;
    e.requestTimeEpochMs = nowEpochMs();
    e.disconnectStatusCode = disconnectCode;
    host.accessLog->write(e);
}

}  // namespace wsgw
