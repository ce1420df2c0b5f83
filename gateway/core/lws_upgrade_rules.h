// The rules by which libwebsockets 4.1.6 (as Debian builds it: WebSocket, HTTP/2 and its "uncommon headers"
// on) fails an upgrade head that the gateway's own checks (handshake) accept. The listener hands the head to
// libwebsockets only after $connect has run, and libwebsockets then closes the socket without an answer or
// with an HTML 403 of its own; so each rule is checked here first and answered with a status and a reason
// (bad input gets a clear answer, never libwebsockets' HTML page). Restated from reading its parser
// (lib/roles/http/parsers.c), its list tokenizer and its upgrade code (lib/roles/ws/server-ws.c), for the
// gateway's settings (max_http_header_data 9216 bytes, no per-header limits, Sec-WebSocket-Protocol taken out
// of the head before libwebsockets reads it). Pure.
#pragma once

#include "http_message.h"

#include <optional>
#include <string>
#include <string_view>

namespace wsgw {

// libwebsockets keeps each part of a request in a table of 95 "fragments", the first unused: at most 94
// (WSI_TOKEN_COUNT - 1). The method and the HTTP version take one each, the '?' of a query one, each '&' or
// ';' of the target one (an empty query parameter too), each line of a header it knows by name one.
inline constexpr size_t kLwsMaxFragments = 94;
// It copies the Connection header (every Connection line, joined with commas) into a 128-byte buffer.
inline constexpr size_t kLwsMaxConnectionBytes = 126;

struct LwsRefusal {
    int status = 400;
    std::string reason;  // what, where and what to do; printable ASCII
};

// `rawHead`: the head as received, at least head.length bytes (values are read there, untrimmed, as
// libwebsockets reads them); `head`: its parse, which passed the gateway's own upgrade checks.
// nullopt when libwebsockets would go on to answer 101.
std::optional<LwsRefusal> libwebsocketsRefusal(std::string_view rawHead, const HttpMessageHead &head);

// Whether libwebsockets reads a header line of this name as one of its known headers (costing a fragment).
bool isLwsKnownHeader(std::string_view name);

}  // namespace wsgw
