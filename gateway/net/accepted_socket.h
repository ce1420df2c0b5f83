// Owns: what travels with a socket from accept() to its upgrade: the descriptor, the client's address,
// whether it counts against that address's sockets not yet upgraded (maxConnectionsPerIp), and when its
// handshake must be done by (handshakeTimeoutSeconds, counted from accept: a wss:// client's TLS
// handshake and its request head share the one deadline).
#pragma once

#include <chrono>
#include <string>

namespace wsgw {

struct AcceptedSocket {
    int fd = -1;
    std::string peer;
    bool countedForPeer = false;
    std::chrono::steady_clock::time_point handshakeDeadline;
};

}  // namespace wsgw
