// Tests gateway/invoke/stuck_routes: the cap on written-off threads is per route (key and handler
// instance), and a $disconnect of a route at the cap is parked until one of the stuck threads returns.
#include "stuck_routes.h"

#include <doctest/doctest.h>

using namespace wsgw;

namespace {

Invocation disconnectOf(const std::string &connectionId) {
    Invocation inv;
    inv.type = WSGW_DISCONNECT;
    inv.connection = std::make_shared<LiveConnection>();
    inv.connection->info.connectionId = connectionId;
    return inv;
}

}  // namespace

TEST_SUITE("stuck_routes") {
    TEST_CASE("below the cap nothing is at it; at the cap only the routes with stuck threads are") {
        int handler = 0, otherHandler = 0;
        StuckRoutes stuck(2);
        StuckRoutes::Route sleep{&handler, "sleep"};
        stuck.writtenOff(sleep);
        CHECK_FALSE(stuck.anyAtCap());
        CHECK(stuck.stuckAtCap(sleep) == 0);
        stuck.writtenOff(sleep);
        CHECK(stuck.anyAtCap());
        CHECK(stuck.total() == 2);
        CHECK(stuck.stuckAtCap(sleep) == 2);
        CHECK(stuck.stuckAtCap({&handler, "$default"}) == 0);      // the same handler on another route
        CHECK(stuck.stuckAtCap({&handler, "$disconnect"}) == 0);
        CHECK(stuck.stuckAtCap({&otherHandler, "sleep"}) == 0);   // the key now runs a replaced instance
        CHECK(stuck.returned(sleep).empty());
        CHECK_FALSE(stuck.anyAtCap());
        CHECK(stuck.stuckAtCap(sleep) == 0);
    }

    TEST_CASE("a $disconnect of a route at the cap is parked, and handed back when a stuck thread returns") {
        int handler = 0;
        StuckRoutes stuck(2);
        StuckRoutes::Route bye{&handler, "$disconnect"};
        stuck.writtenOff(bye);
        Invocation early = disconnectOf("early");
        CHECK_FALSE(stuck.parkIfAtCap(bye, early));  // below the cap: it runs
        CHECK(early.connection);                    // not moved from
        stuck.writtenOff(bye);
        Invocation a = disconnectOf("a"), b = disconnectOf("b"), other = disconnectOf("other");
        CHECK(stuck.parkIfAtCap(bye, a));
        CHECK(stuck.parkIfAtCap(bye, b));
        CHECK_FALSE(stuck.parkIfAtCap({&handler, "$default"}, other));
        CHECK(stuck.parked() == 2);
        auto released = stuck.returned(bye);
        REQUIRE(released.size() == 2);
        CHECK(released[0].connection->info.connectionId == "a");
        CHECK(released[1].connection->info.connectionId == "b");
        CHECK(stuck.parked() == 0);
        CHECK(stuck.total() == 1);
    }

    TEST_CASE("takeParked empties the list (stop: their rows stay for the next start)") {
        int handler = 0;
        StuckRoutes stuck(1);
        StuckRoutes::Route bye{&handler, "$disconnect"};
        stuck.writtenOff(bye);
        Invocation a = disconnectOf("a");
        CHECK(stuck.parkIfAtCap(bye, a));
        CHECK(stuck.takeParked().size() == 1);
        CHECK(stuck.parked() == 0);
        CHECK(stuck.returned(bye).empty());
    }
}
