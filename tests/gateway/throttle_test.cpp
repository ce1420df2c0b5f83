// Token buckets: a full bucket at start, one token a message, refilled at `rate` up to `burst`.
#include "throttle.h"

#include <doctest/doctest.h>

using namespace wsgw;

TEST_SUITE("throttle") {
    TEST_CASE("a burst, then the rate") {
        TokenBucket b(RateSpec{2, 3});
        CHECK(b.take(0.0));
        CHECK(b.take(0.0));
        CHECK(b.take(0.0));
        CHECK_FALSE(b.take(0.0));  // the burst is spent
        CHECK_FALSE(b.take(0.4));  // 0.8 of a token
        CHECK(b.take(0.5));        // one token after half a second at 2/s
        CHECK_FALSE(b.take(0.5));
        CHECK(b.take(100.0));      // refills, but never past the burst
        CHECK(b.take(100.0));
        CHECK(b.take(100.0));
        CHECK_FALSE(b.take(100.0));
    }

    TEST_CASE("no rate configured: never throttles; a burst below 1 is 1") {
        TokenBucket off;
        for (int i = 0; i < 1000; ++i) CHECK(off.take(0.0));
        TokenBucket tiny(RateSpec{0.5, 0});
        CHECK(tiny.take(0.0));
        CHECK_FALSE(tiny.take(1.0));
        CHECK(tiny.take(2.0));
    }
}
