#include "upgrade_admission.h"

#include "text.h"

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

namespace {
// The bytes of every Sec-WebSocket-Extensions value in the raw head, as received (after the colon, up to the
// line's end), joined with commas; more than libwebsockets keeps, never less.
size_t rawExtensionsLength(std::string_view head) {
    size_t total = 0, count = 0, pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
        size_t start = pos + 2, eol = head.find("\r\n", start);
        if (eol == std::string_view::npos || eol == start) break;
        std::string_view line = head.substr(start, eol - start);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos && equalsIgnoreCase(line.substr(0, colon), "Sec-WebSocket-Extensions")) {
            total += line.size() - colon - 1;
            ++count;
        }
        pos = eol;
    }
    return count ? total + count - 1 : 0;
}
}  // namespace

bool extensionOffersRefusedByLibwebsockets(const UpgradeRequest &request, bool deflateTaken, std::string_view rawHead) {
    if (rawExtensionsLength(rawHead.substr(0, std::min(rawHead.size(), request.headLength))) >= 255) return true;
    // The header as libwebsockets copies it: every occurrence, joined with commas.
    std::string value;
    bool any = false;
    for (const auto &[name, v] : request.headers) {
        if (!equalsIgnoreCase(name, "Sec-WebSocket-Extensions")) continue;
        if (any) value += ',';
        value += v;
        any = true;
    }
    if (!any || value.empty()) return false;
    // Its walk, reduced to what decides failure: reading past byte 254; an extension name (spaces dropped,
    // parameters after ';' ignored) that names permessage-deflate when it was taken already; and the end of
    // the walk when the taken offer's parameters run into a comma (the other offers are alternatives).
    std::string name;
    bool inParams = false, taken = false;
    size_t paramsAt = std::string::npos;
    for (size_t i = 0;; ++i) {
        if (i >= 255) return true;
        char c = i < value.size() ? value[i] : '\0';
        if (c != '\0' && c != ',' && c != '\t') {
            if (c == ';') {
                inParams = true;
                if (paramsAt == std::string::npos) paramsAt = i + 1;
            }
            if (!inParams && c != ' ') name += c;
            continue;
        }
        bool more = c != '\0';
        if (!name.empty() && name == "permessage-deflate" && deflateTaken) {
            if (taken) return true;
            taken = true;
            if (paramsAt != std::string::npos) {
                size_t at = paramsAt;
                while (at < value.size() && value[at] != ',') ++at;
                if (at < value.size()) return false;  // stops at the comma after the taken offer's parameters
            }
        }
        if (!more) return false;
        name.clear();
        inParams = false;
        paramsAt = std::string::npos;
    }
}

}  // namespace wsgw
