#include "upgrade_admission.h"

#include <algorithm>

namespace wsgw {

std::optional<UpgradeRefusal> checkOrigin(const UpgradeRequest &request, const Limits &limits) {
    const std::string *origin = request.header("Origin");
    const auto &allowed = limits.allowedOrigins;
    if (!origin || allowed.empty()) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *origin) != allowed.end()) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) return std::nullopt;
    return UpgradeRefusal{403, "Origin " + *origin + " is not allowed: limits.allowedOrigins lists the pages that may connect"};
}

UpgradeRefusal perAddressRefusal(const std::string &ip, size_t max) {
    return {429, "Too Many Requests: " + ip + " already has " + std::to_string(max) + " connections (limits.maxConnectionsPerIp)"};
}

SubprotocolDecision decideSubprotocol(const UpgradeRequest &request, const std::vector<std::string> &accepted, bool proxied) {
    SubprotocolDecision d;
    if (!request.header("Sec-WebSocket-Protocol")) return d;
    d.stripOffers = true;
    if (proxied) {  // the backend chooses: the offers go to it, and its choice comes back in the 101
        d.offersForBackend = offeredSubprotocols(request);
        return d;
    }
    // libwebsockets would match offers against its own protocol list; the API's list lives in routes.json,
    // so the choice is made here and libwebsockets sees a head without offers.
    d.chosen = chooseSubprotocol(request, accepted);
    if (d.chosen.empty()) {
        std::string accepts;
        for (const auto &a : accepted) accepts += (accepts.empty() ? "" : ", ") + a;
        d.refusal = UpgradeRefusal{
            400, "none of the offered subprotocols (" + offeredSubprotocols(request) + ") is accepted: " +
                     (accepts.empty() ? std::string("this API accepts none (list them in routes.json \"subprotocols\")")
                                      : "this API accepts " + accepts)};
    }
    return d;
}

}  // namespace wsgw
