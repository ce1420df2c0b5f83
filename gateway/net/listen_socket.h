// Listening sockets and peer addresses, shared by the public listener and the management API: both own
// their sockets (instead of letting libwebsockets bind them) so that they read requests themselves.
#pragma once

#include "options.h"

#include <string>

namespace wsgw {

// A non-blocking listening TCP socket on host:port (port 0 picks a free one). Returns the fd, or -1 with
// *error saying what went wrong and what to do; *boundAddress gets "host:port" with the real port.
// reusePortSockets > 1: SO_REUSEPORT, so that each of that many network threads has its own socket on the
// port and the kernel spreads new connections over them. It is for this process's threads only: the first
// socket on a port is bound only if a probe without SO_REUSEPORT finds no other listener there (else "port N
// is in use by another process"), so a second gateway on the same port refuses to start instead of taking
// half the connections; and a program attached to the group gives new connections only to the first
// reusePortSockets sockets, so a process that joins the group later with SO_REUSEPORT of its own gets none.
int openListeningSocket(const HostPort &hp, const std::string &flag, std::string *boundAddress, std::string *error,
                        unsigned reusePortSockets = 0);
// accept4() of a non-blocking, close-on-exec connection, with the peer's IP address as text ("127.0.0.1";
// IPv4-mapped IPv6 addresses are shown as IPv4) from the same system call. Returns the fd, or -1 with errno set.
int acceptWithPeer(int listenFd, std::string *peer);

}  // namespace wsgw
