// Tests gateway/invoke/invocation_lanes: a lane's invocations come out in arrival order, a lane is in the
// ready queue once however much it holds, a worker yields a lane after a batch, the pending count, and
// what is taken out when no worker is left ($disconnects stay queued) or after stop().
#include "invocation_lanes.h"

#include <doctest/doctest.h>

#include <string>

using namespace wsgw;

namespace {

Invocation eventOf(wsgw_event_type type, const std::string &requestId) {
    Invocation inv;
    inv.type = type;
    inv.requestId = requestId;
    return inv;
}

}  // namespace

TEST_SUITE("invocation_lanes") {
    TEST_CASE("a lane is ready once and gives its invocations in arrival order, then leaves the schedule") {
        InvocationLanes lanes(2);
        auto lane = lanes.newLane();
        for (int i = 0; i < 3; ++i) lanes.submit(lane, eventOf(WSGW_MESSAGE, "r" + std::to_string(i)), true);
        CHECK(lanes.pending() == 3);
        CHECK(lanes.waitForLane() == lane);
        for (int i = 0; i < 3; ++i) {
            auto next = lanes.next(lane, i);
            REQUIRE(next);
            CHECK(next->requestId == "r" + std::to_string(i));
            lanes.finished();
        }
        CHECK_FALSE(lanes.next(lane, 3));
        CHECK_FALSE(lane->scheduled);
        CHECK(lanes.pending() == 0);
        CHECK(lanes.waitIdle(std::chrono::milliseconds(0)));
        lanes.submit(lane, eventOf(WSGW_MESSAGE, "again"), false);  // an unscheduled lane is ready again
        CHECK(lanes.waitForLane() == lane);
    }

    TEST_CASE("after a batch the lane goes back behind the other ready lanes") {
        InvocationLanes lanes(1);
        auto busy = lanes.newLane(), other = lanes.newLane();
        for (int i = 0; i <= InvocationLanes::kLaneBatch; ++i) lanes.submit(busy, eventOf(WSGW_MESSAGE, "b"), false);
        lanes.submit(other, eventOf(WSGW_MESSAGE, "o"), false);
        REQUIRE(lanes.waitForLane() == busy);
        for (int i = 0; i < InvocationLanes::kLaneBatch; ++i) CHECK(lanes.next(busy, i));
        CHECK_FALSE(lanes.next(busy, InvocationLanes::kLaneBatch));  // yielded, one still queued
        CHECK(busy->scheduled);
        CHECK(lanes.waitForLane() == other);
        CHECK(lanes.waitForLane() == busy);
    }

    TEST_CASE("without workers messages and $connects are taken out, $disconnects stay queued") {
        InvocationLanes lanes(1);
        auto a = lanes.newLane(), b = lanes.newLane();
        lanes.submit(a, eventOf(WSGW_CONNECT, "c"), true);
        lanes.submit(a, eventOf(WSGW_MESSAGE, "m"), true);
        lanes.submit(a, eventOf(WSGW_DISCONNECT, "d"), true);
        lanes.submit(b, eventOf(WSGW_MESSAGE, "n"), true);
        auto taken = lanes.takeAllButDisconnects();
        REQUIRE(taken.size() == 3);
        CHECK(taken[0].requestId == "c");
        CHECK(taken[1].requestId == "m");
        CHECK(taken[2].requestId == "n");
        CHECK_FALSE(b->scheduled);
        CHECK(lanes.waitForLane() == a);
        auto left = lanes.next(a, 0);
        REQUIRE(left);
        CHECK(left->requestId == "d");
    }

    TEST_CASE("stop wakes the workers with no lane and keeps released $disconnects out") {
        InvocationLanes lanes(1);
        lanes.submit(lanes.newLane(), eventOf(WSGW_MESSAGE, "m"), true);
        CHECK(lanes.stop());
        CHECK_FALSE(lanes.stop());
        CHECK(lanes.stopping());
        CHECK(lanes.waitForLane() == nullptr);
        std::vector<Invocation> released;
        released.push_back(eventOf(WSGW_DISCONNECT, "d"));
        lanes.requeueReleased(std::move(released));
        CHECK(lanes.takeAllButDisconnects().empty());
    }
}
