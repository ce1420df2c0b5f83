// Token buckets: a full bucket at start, one token a message, refilled at `rate` up to `burst`; the shared
// bucket grants exactly as many tokens to four threads at once as to one.
#include "throttle.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

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

    TEST_CASE("shared: threads taking at once get exactly the burst plus what the rate added") {
        SharedTokenBucket shared(RateSpec{1000, 5000});
        std::atomic<long> granted{0};
        std::atomic<bool> go{false};
        std::vector<std::thread> takers;
        for (int n = 0; n < 4; ++n) {
            takers.emplace_back([&] {
                while (!go.load()) std::this_thread::yield();
                long mine = 0;
                // Every thread at the same instants: 0.0 s, then 1 ms later (one more token for everyone).
                for (int i = 0; i < 20000; ++i) mine += shared.take(i < 10000 ? 0.0 : 0.001) ? 1 : 0;
                granted += mine;
            });
        }
        go = true;
        for (auto &t : takers) t.join();
        CHECK(granted.load() == 5000 + 1);  // the burst, then 1 ms at 1000/s
    }

    TEST_CASE("shared: a thread whose clock is behind adds nothing and takes nothing back") {
        SharedTokenBucket shared(RateSpec{10, 1});
        CHECK(shared.take(100.0));
        CHECK_FALSE(shared.take(99.5));   // behind the last taker: no refill, and no debt either
        CHECK_FALSE(shared.take(100.05));
        CHECK(shared.take(100.2));        // 0.2 s after the first take at 10/s: a token again
        SharedTokenBucket off;
        CHECK(off.take(0.0));
        CHECK_FALSE(off.enabled());
    }
}
