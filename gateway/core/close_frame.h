// A client's close frame, checked as RFC 6455 5.5.1 and 7.4 require: a payload of one byte, a code an
// endpoint may not send (1005, 1006, 1015, below 1000, 1016-2999, 5000 and up) or a reason that is not UTF-8
// fail the connection (1002 or 1007) instead of being echoed. Pure.
#pragma once

#include <cstddef>
#include <string>

namespace wsgw {

struct PeerClose {
    bool valid = true;
    int code = 0;        // valid: the peer's code (0: none given)
    std::string reason;  // valid: the peer's reason
    int failWith = 0;    // not valid: the close code to answer with (1002 or 1007)
    const char *fault = "";  // not valid: why, for the close reason and $disconnect
};

PeerClose checkPeerClose(const unsigned char *payload, size_t len);
bool closeCodeSendable(int code);  // 1000-1003, 1007-1014, 3000-4999

}  // namespace wsgw
