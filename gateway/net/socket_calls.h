// Owns: this binary's own recv(2), send(2), shutdown(2) and close(2), and where each call on a descriptor
// goes. libwebsockets 4.1.6 reads and writes its server sockets with exactly these calls (output.c's
// lws_ssl_capable_{read,write}_no_ssl, close.c's shutdown and close) and has no hook of its own for either
// thing the gateway needs of them: screening what a client sent (client_frame_guard.h) and TLS on the
// connection's own descriptor (tls_socket.h). The executable's definitions come first in the dynamic
// lookup, libwebsockets' included; each calls the next one (a sanitizer runtime's interceptor, which calls
// libc's, or libc's) for a descriptor the table (descriptor_table.h) has nothing for.
//
//   recv      the frame screen if registered, then TLS if the descriptor carries it, else the system's
//   send      TLS if the descriptor carries it, else the system's
//   shutdown  a TLS close_notify first (best effort), then the system's
//   close     the descriptor's TLS freed (and taken off the table) before the system's close
#pragma once

#include <cstddef>

struct msghdr;

namespace wsgw {

// Below the frame screen: TLS if `fd` carries it, else the system's recv.
long transportRecv(int fd, void *buf, size_t len, int flags);
// sendmsg(2) for our own frame writer: a descriptor carrying TLS gets the gathered bytes as TLS records;
// a plain one gets send(2) when there is one piece.
long transportSendmsg(int fd, const msghdr *msg, int flags);

}  // namespace wsgw
