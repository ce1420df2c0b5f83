// Owns: the socket half of reading an upgrade request, apart from the loop and the session it serves so
// that it is unit-tested over a real socket: taking what has arrived of the request head, answering a
// connection that will not become a WebSocket (a refusal, best effort) and closing it, and the bytes of an
// upgrade that is accepted only to be closed at once (101, then a close frame).
#pragma once

#include <string>
#include <string_view>

namespace wsgw {

enum class HeadRead {
    Received,  // bytes were appended to the head
    Wait,      // nothing yet (the socket would block, or a signal came): wait for it to be readable
    Closed,    // the peer closed or the socket failed: drop the connection
};

// One recv() of at most 4 KiB from the non-blocking `fd`, appended to `head`.
HeadRead receiveHeadBytes(int fd, std::string &head);

// Writes `response` (when not null) without blocking, so a refusal that does not fit the send buffer is cut
// short rather than holding the network thread; then ends the connection (FIN) and closes `fd`.
void answerAndClose(int fd, const std::string *response);

// RFC 6455 4.2.2: base64 of the SHA-1 of the client's Sec-WebSocket-Key and the protocol's GUID.
std::string websocketAcceptKey(std::string_view clientKey);

// The 101 that completes the handshake (with `subprotocol` when not empty) followed by a close frame with
// `code` and `reason`, the reason cut to 123 bytes where a UTF-8 character starts (a control frame carries
// 125 bytes).
std::string renderUpgradeThenClose(std::string_view clientKey, const std::string &subprotocol, int code, std::string_view reason);

}  // namespace wsgw
