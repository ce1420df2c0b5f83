// Owns: which of libwebsockets' log lines are made at all. Debian's libwebsockets 4.1.6 is built with its
// debug logging compiled in, and its frame parser calls _lws_log about ten times per received message
// (parser and debug lines), each call saving its variadic registers before finding the level off. The
// executable defines _lws_log itself (it comes first in the dynamic lookup, as socket_calls.h's recv does),
// tests the level first, and hands only the lines of an enabled level on to libwebsockets' _lws_logv, one at
// a time: that formats into a single static buffer.
#pragma once

namespace wsgw {

// lws_set_log_level(levels, emit), and the same levels for the executable's _lws_log.
void setLwsLogLevel(int levels, void (*emit)(int level, const char *line));

}  // namespace wsgw
