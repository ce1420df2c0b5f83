// Owns: the clock of durations, rates and deadlines inside the process: idle timeouts, lifetimes, close and
// connect deadlines, throttles, recovery windows, the spacing of repeated warnings. It is the monotonic clock,
// not libev's loop time (ev_now, the wall clock): a step of the wall clock (`date -s`, an NTP correction, a VM
// resumed from a snapshot) must neither stall a token bucket (a step back refilled nothing until the clock had
// caught up) nor keep an idle connection open for the length of a step back or close one early after a step
// forward. Timestamps that leave the process (connectedAt, lastActiveAt, log and event times, a token's
// expiry) stay on the wall clock (event.h's nowEpochMs).
#pragma once

#include <chrono>
#include <cstdint>

namespace wsgw {

inline double monotonicSeconds(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

inline double monotonicSeconds() { return monotonicSeconds(std::chrono::steady_clock::now()); }

inline int64_t monotonicMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace wsgw
