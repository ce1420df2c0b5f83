// Tests gateway/invoke/restart_backoff, the restart policy of isolated plugin workers and Lambda function
// processes, on time points the test chooses (no clock, no sleep): a healthy end restarts at once, a start
// failure or 5 ends within 5 s start the delay at 100 ms, each further one doubles it up to 5 s, and a
// healthy end outside the crash window takes it back to zero.
#include "restart_backoff.h"

#include <doctest/doctest.h>

using namespace wsgw;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
const RestartBackoff::Clock::time_point kStart{};
}

TEST_SUITE("restart_backoff") {
    TEST_CASE("a process that ran and ended now and then is restarted at once") {
        RestartBackoff backoff;
        CHECK(backoff.delay() == milliseconds(0));
        for (int i = 0; i < 10; ++i) CHECK(backoff.afterEnd(true, kStart + seconds(2 * i)) == milliseconds(0));
    }

    TEST_CASE("a process that cannot start waits 100 ms, then twice as long each time, at most 5 s") {
        RestartBackoff backoff;
        const int expectedMs[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
        int i = 0;
        for (int ms : expectedMs) {
            CAPTURE(i);
            CHECK(backoff.afterEnd(false, kStart + seconds(10 * i)) == milliseconds(ms));
            CHECK(backoff.delay() == milliseconds(ms));
            ++i;
        }
    }

    TEST_CASE("the fifth end within 5 s counts as failing even when each one started") {
        RestartBackoff backoff;
        for (int i = 0; i < 4; ++i) CHECK(backoff.afterEnd(true, kStart + milliseconds(1000 * i)) == milliseconds(0));
        CHECK(backoff.afterEnd(true, kStart + milliseconds(4000)) == milliseconds(100));
        CHECK(backoff.afterEnd(true, kStart + milliseconds(4500)) == milliseconds(200));
        CHECK(backoff.afterEnd(true, kStart + milliseconds(5000)) == milliseconds(400));  // exactly 5 s: still in
    }

    TEST_CASE("ends more than 5 s apart do not add up") {
        RestartBackoff backoff;
        // Four ends, then a fifth just over 5 s after the first: the first has left the window.
        for (int i = 0; i < 4; ++i) backoff.afterEnd(true, kStart + milliseconds(100 * i));
        CHECK(backoff.afterEnd(true, kStart + milliseconds(5001)) == milliseconds(0));
    }

    TEST_CASE("a healthy end after the crashes have left the window resets the delay to zero") {
        RestartBackoff backoff;
        for (int i = 0; i < 8; ++i) backoff.afterEnd(false, kStart + milliseconds(10 * i));
        REQUIRE(backoff.delay() == milliseconds(5000));
        // Still 5 ends within 5 s: a successful start does not end the back-off yet.
        CHECK(backoff.afterEnd(true, kStart + milliseconds(100)) == milliseconds(5000));
        // Long after: the window holds only this end, and it started, so the next start is at once...
        CHECK(backoff.afterEnd(true, kStart + seconds(60)) == milliseconds(0));
        // ...and a later failure starts again from 100 ms, not from where it was.
        CHECK(backoff.afterEnd(false, kStart + seconds(120)) == milliseconds(100));
    }
}
