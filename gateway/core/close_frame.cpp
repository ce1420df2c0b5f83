#include "close_frame.h"

#include "utf8.h"

namespace wsgw {

bool closeCodeSendable(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

PeerClose checkPeerClose(const unsigned char *payload, size_t len) {
    PeerClose c;
    if (len == 0) return c;
    if (len == 1) {
        c.valid = false;
        c.failWith = 1002;
        c.fault = "Close frame with a 1-byte payload";
        return c;
    }
    int code = (payload[0] << 8) | payload[1];
    const char *reason = reinterpret_cast<const char *>(payload) + 2;
    if (!closeCodeSendable(code)) {
        c.valid = false;
        c.failWith = 1002;
        c.fault = "Close code not allowed on the wire";
    } else if (!isValidUtf8(reason, len - 2)) {
        c.valid = false;
        c.failWith = 1007;
        c.fault = "Invalid UTF-8 in the close reason";
    } else {
        c.code = code;
        c.reason.assign(reason, len - 2);
    }
    return c;
}

}  // namespace wsgw
