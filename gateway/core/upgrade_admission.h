// What the public listener decides about a well-formed upgrade request before $connect runs, from the API's
// routes.json alone: whether its Origin may connect (limits.allowedOrigins) and which subprotocol the 101
// names (routes.json "subprotocols"; a proxied API lets its backend choose). The listener applies the
// decision to the socket; the per-address count (limits.maxConnectionsPerIp) stays with it, as it is shared
// by every network thread. Pure: no sockets, no libwebsockets.
#pragma once

#include "config.h"
#include "handshake.h"

#include <optional>
#include <string>
#include <vector>

namespace wsgw {

struct UpgradeRefusal {
    int status = 0;
    std::string reason;
};

// A refusal when the request's Origin is not among limits.allowedOrigins ("*" or an empty list allows any).
std::optional<UpgradeRefusal> checkOrigin(const UpgradeRequest &request, const Limits &limits);

// The refusal for a source address that already has `max` connections.
UpgradeRefusal perAddressRefusal(const std::string &ip, size_t max);

struct SubprotocolDecision {
    std::string chosen;             // for the 101 (empty: none, or the backend chooses)
    std::string offersForBackend;   // proxied: the client's offers, passed on
    bool stripOffers = false;       // the head libwebsockets sees loses its Sec-WebSocket-Protocol header
    std::optional<UpgradeRefusal> refusal;
};

// `accepted` is the API's list; `proxied`: the whole API is a WebSocket passthrough to a backend.
SubprotocolDecision decideSubprotocol(const UpgradeRequest &request, const std::vector<std::string> &accepted, bool proxied);

// Whether libwebsockets 4.1.6 would fail the upgrade over its Sec-WebSocket-Extensions header (server-ws.c
// reads at most 254 bytes of it, and fails when permessage-deflate, once taken, is offered again), which it
// does only after $connect has run, closing the socket without an answer. Such offers are declined instead:
// the header is left out of what libwebsockets sees and the connection opens without compression, as RFC
// 6455 9.1 lets a server do with any offer. `deflateTaken`: permessage-deflate would be taken (compression on,
// not proxied).
// `rawHead`: the request's head as received; the length rule counts the header's bytes there, whitespace
// included (libwebsockets keeps what the parsed, trimmed value drops).
bool extensionOffersRefusedByLibwebsockets(const UpgradeRequest &request, bool deflateTaken, std::string_view rawHead = {});

}  // namespace wsgw
