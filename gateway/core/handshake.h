// The client's HTTP/1.1 WebSocket upgrade request head (RFC 6455 4.1/4.2.1): parsing, checking and the
// HTTP refusal sent back. The listener reads the head itself, before libwebsockets sees the socket, so that
// $connect can run on a worker and a bad request gets a precise status and reason, not libwebsockets' own page.
// Pure functions on bytes: no sockets, no state between calls, so unit tests and the fuzzer drive them.
#pragma once

#include "http_message.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgw {

struct UpgradeRequest {
    std::string method, target, path, rawQuery;  // target = path[?query]; rawQuery without '?', "" if none
    HeaderList headers;
    size_t headLength = 0;  // bytes up to and including the blank line

    // Case-insensitive, first match, nullptr if absent.
    const std::string *header(std::string_view name) const;
};

struct HttpRefusal {
    int status = 400;
    std::string reason;  // what was wrong and what to do, printable ASCII
    HeaderList extraHeaders;
};

enum class HeadResult { NeedMore, Upgrade, Refuse };

struct HeadParse {
    HeadResult result = HeadResult::NeedMore;
    UpgradeRequest request;  // filled only for Upgrade
    HttpRefusal refusal;     // filled only for Refuse
};

// At most this many header lines; one more is refused with 431.
inline constexpr size_t kMaxUpgradeHeaders = 100;

// Parses `bytes` (everything received so far) with the HTTP/1.1 message parser (http_message.h), head only,
// then checks the upgrade. Stateless: the caller calls again with more bytes.
// Lines must end with CRLF. A head that cannot become valid is refused as soon as the offending line (or
// byte) has arrived; a head not complete within maxHeadBytes is refused with 431. Bytes after the blank
// line (a pipelined first frame) are left alone: request.headLength says where they start.
// A head that libwebsockets would fail after $connect (lws_upgrade_rules.h) is refused here with 400 or 431.
HeadParse parseUpgradeHead(std::string_view bytes, size_t maxHeadBytes = 8192);

// "HTTP/1.1 <status> <Reason-Phrase>\r\nContent-Type: application/json\r\nContent-Length: N\r\n
// Connection: close\r\n<extra>\r\n{"message":"<reason>"}". Each extra header is "Name: value\r\n".
std::string renderHttpRefusal(int status, std::string_view reason, const HeaderList &extraHeaders = {});

// The subprotocol to accept: the first of the client's Sec-WebSocket-Protocol offers (every such header,
// comma-separated tokens, in the client's order of preference) that `accepted` lists; "" when none is.
std::string chooseSubprotocol(const UpgradeRequest &request, const std::vector<std::string> &accepted);
// The client's offers, joined with ", " ("" when it made none), for messages.
std::string offeredSubprotocols(const UpgradeRequest &request);

// `bytes` with every header line named `name` (case-insensitive) removed from the head (the first
// `headLength` bytes); what follows the head is kept as it is.
std::string withoutHeader(std::string_view bytes, size_t headLength, std::string_view name);

// The standard reason phrase ("Bad Request", "Upgrade Required", ...); for a status it does not know, a
// phrase for its class ("Client Error", "Server Error", ...).
const char *httpReasonPhrase(int status);

}  // namespace wsgw
