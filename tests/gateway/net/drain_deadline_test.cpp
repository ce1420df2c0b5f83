// Tests gateway/net/drain_deadline.h: the drain's deadline is set once, by whoever begins first (the network
// threads and main all call begin()), and what is left of it only shrinks.
#include "drain_deadline.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

using namespace wsgw;

TEST_SUITE("drain_deadline") {
    TEST_CASE("the first begin() sets the deadline; later ones, with any --drain-seconds, return that one") {
        DrainDeadline d;
        CHECK_FALSE(d.deadline().has_value());
        CHECK(d.remaining(7) == std::chrono::seconds(7));  // not begun: the whole drain is left
        auto first = d.begin(5);
        REQUIRE(d.deadline().has_value());
        CHECK(*d.deadline() == first);
        CHECK(d.begin(5) == first);
        CHECK(d.begin(60) == first);
        CHECK(d.remaining(5) <= std::chrono::seconds(5));
        CHECK(d.remaining(5) > std::chrono::seconds(4));
    }

    TEST_CASE("a passed deadline leaves nothing, never a negative wait") {
        DrainDeadline d;
        d.begin(0);
        CHECK(d.remaining(0) == std::chrono::milliseconds(0));
        CHECK(d.remaining(10) == std::chrono::milliseconds(0));
    }

    TEST_CASE("waitBegun returns the deadline once another thread begins the drain, or nothing when cancelled") {
        DrainDeadline d;
        std::thread drainer([&] { d.begin(3); });
        auto seen = d.waitBegun([] { return false; });
        drainer.join();
        REQUIRE(seen.has_value());
        CHECK(*seen == *d.deadline());

        DrainDeadline never;
        std::atomic<bool> cancelled{false};
        std::thread canceller([&] {
            cancelled = true;
            never.wakeWaiters();
        });
        CHECK_FALSE(never.waitBegun([&] { return cancelled.load(); }).has_value());
        canceller.join();
    }
}
