#include "group_registry.h"

#include <doctest/doctest.h>

#include <algorithm>

using namespace wsgw;

TEST_SUITE("group_registry") {
    TEST_CASE("group names: the characters that travel in URLs and Redis keys, 1 to 128 of them") {
        CHECK(isValidGroupName("room-1"));
        CHECK(isValidGroupName("a.b_c~d:e@f"));
        CHECK(isValidGroupName(std::string(128, 'x')));
        CHECK_FALSE(isValidGroupName(""));
        CHECK_FALSE(isValidGroupName(std::string(129, 'x')));
        CHECK_FALSE(isValidGroupName("no spaces"));
        CHECK_FALSE(isValidGroupName("slash/inside"));
        CHECK_FALSE(isValidGroupName("star*"));
        CHECK_FALSE(isValidGroupName(std::string("nul\0x", 5)));
    }

    TEST_CASE("first and last local member are reported, so the node subscribes and unsubscribes once") {
        GroupRegistry g;
        bool first = false, last = false;
        CHECK(g.add("room", "a", &first) == GroupRegistry::AddResult::Added);
        CHECK(first);
        CHECK(g.add("room", "b", &first) == GroupRegistry::AddResult::Added);
        CHECK_FALSE(first);
        CHECK(g.add("room", "b", &first) == GroupRegistry::AddResult::AlreadyMember);
        auto members = g.members("room");
        std::sort(members.begin(), members.end());
        CHECK(members == std::vector<std::string>{"a", "b"});
        CHECK(g.remove("room", "a", &last));
        CHECK_FALSE(last);
        CHECK_FALSE(g.remove("room", "a", &last));  // not a member any more
        CHECK(g.remove("room", "b", &last));
        CHECK(last);
        CHECK(g.members("room").empty());
        CHECK(g.groupCount() == 0);
    }

    TEST_CASE("a closed connection leaves every group; the groups it leaves empty are returned") {
        GroupRegistry g;
        g.add("solo", "a");
        g.add("shared", "a");
        g.add("shared", "b");
        auto emptied = g.removeConnection("a");
        CHECK(emptied == std::vector<std::string>{"solo"});
        CHECK(g.groupsOf("a").empty());
        CHECK(g.members("shared") == std::vector<std::string>{"b"});
        CHECK(g.removeConnection("nobody").empty());
        CHECK(g.memberships() == std::vector<std::pair<std::string, std::string>>{{"shared", "b"}});
    }

    TEST_CASE("a connection is in at most kMaxGroupsPerConnection groups") {
        GroupRegistry g;
        for (size_t i = 0; i < GroupRegistry::kMaxGroupsPerConnection; ++i)
            REQUIRE(g.add("g" + std::to_string(i), "a") == GroupRegistry::AddResult::Added);
        bool first = true;
        CHECK(g.add("one-more", "a", &first) == GroupRegistry::AddResult::TooManyGroups);
        CHECK_FALSE(first);
        CHECK(g.members("one-more").empty());
        CHECK(g.groupsOf("a").size() == GroupRegistry::kMaxGroupsPerConnection);
    }
}
