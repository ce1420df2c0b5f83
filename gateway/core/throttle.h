// Token buckets: `rate` tokens a second, at most `burst` saved up, one token a message. TokenBucket is plain
// state for one thread (a connection's buckets belong to its network thread). SharedTokenBucket is the
// API-wide and per-route bucket that every network thread takes from: exact across threads
// (docs/routes-json.md, "Throttles").
#pragma once

#include "config.h"

#include <algorithm>
#include <mutex>

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

// One bucket shared by all network threads. A mutex, not a lock-free loop: two doubles change together,
// the critical section is a few instructions, and a disabled bucket (the usual case) takes no lock at all.
// Each thread passes its own loop's clock, so `now` may be a little behind the last taker's: time never
// runs backwards for the bucket (an earlier `now` adds nothing), so no token is ever counted twice.
class SharedTokenBucket {
public:
    SharedTokenBucket() = default;
    explicit SharedTokenBucket(const RateSpec &spec) : bucket_(spec) {}
    // Copied only while a route table is being built, before any thread shares it.
    SharedTokenBucket(const SharedTokenBucket &other) : bucket_(other.bucket_) {}
    SharedTokenBucket &operator=(const SharedTokenBucket &other) {
        bucket_ = other.bucket_;
        return *this;
    }

    bool enabled() const { return bucket_.enabled(); }  // rate and burst never change after construction

    bool take(double now) const {
        if (!bucket_.enabled()) return true;
        std::lock_guard lock(mutex_);
        return bucket_.take(std::max(now, bucket_.last));
    }

private:
    mutable std::mutex mutex_;
    mutable TokenBucket bucket_;
};

}  // namespace wsgw
