// A token bucket: `rate` tokens a second, at most `burst` saved up, one token a message. Plain state, no
// locking: each bucket belongs to the network thread (per API, per route, per connection and route).
#pragma once

#include "config.h"

#include <algorithm>

namespace wsgw {

struct TokenBucket {
    double rate = 0, burst = 0, tokens = 0, last = -1;

    TokenBucket() = default;
    explicit TokenBucket(const RateSpec &spec) : rate(spec.rate), burst(std::max(1.0, spec.burst)), tokens(burst) {}
    bool enabled() const { return rate > 0; }

    // Takes a token at time `now` (seconds, monotonic); false when the bucket is empty.
    bool take(double now) {
        if (!enabled()) return true;
        if (last >= 0) tokens = std::min(burst, tokens + (now - last) * rate);
        last = now;
        if (tokens < 1) return false;
        tokens -= 1;
        return true;
    }
};

}  // namespace wsgw
