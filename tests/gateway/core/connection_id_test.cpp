#include "connection_id.h"

#include <doctest/doctest.h>

#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

using namespace wsgw;

TEST_SUITE("connection_id") {
    TEST_CASE("IDs are URL-safe base64 of the right length") {
        for (int i = 0; i < 1000; ++i) {
            std::string c = newConnectionId(), r = newRequestId();
            CHECK(c.size() == 22);
            CHECK(r.size() == 15);  // within std::string's small-string buffer: no allocation per message
            for (char ch : c + r) CHECK((isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_'));
        }
    }

    TEST_CASE("100k connection IDs are unique and all well-formed") {
        std::unordered_set<std::string> seen;
        for (int i = 0; i < 100000; ++i) {
            std::string id = newConnectionId();
            REQUIRE(isWellFormedConnectionId(id));
            seen.insert(id);
        }
        CHECK(seen.size() == 100000);
    }

    TEST_CASE("no connection ID starts with '-', which command lines take for an option; the other first characters all occur") {
        std::set<char> first;
        size_t dashes = 0;
        for (int i = 0; i < 20000; ++i) {  // one in 64 would start with '-' otherwise: about 312 here
            std::string id = newConnectionId();
            first.insert(id[0]);
            if (id[0] == '-') ++dashes;
        }
        CHECK(dashes == 0);
        CHECK(first.size() == 63);
    }

    TEST_CASE("isWellFormedConnectionId rejects what the gateway could never issue") {
        CHECK(isWellFormedConnectionId("k3Jd9xQpS2uYb7vT1mWz0A"));
        CHECK_FALSE(isWellFormedConnectionId(""));
        CHECK_FALSE(isWellFormedConnectionId("k3Jd9xQpS2uYb7vT1mWz0"));
        CHECK_FALSE(isWellFormedConnectionId("k3Jd9xQpS2uYb7vT1mWz0AA"));
        CHECK_FALSE(isWellFormedConnectionId("k3Jd9xQpS2uYb7vT1m+z0A"));
        CHECK_FALSE(isWellFormedConnectionId("k3Jd9xQpS2uYb7vT1m/z0A"));
        CHECK_FALSE(isWellFormedConnectionId("k3Jd9xQpS2uYb7vT1mWz0="));
        CHECK_FALSE(isWellFormedConnectionId("k3Jd9xQpS2uYb7vT1mWz0B"));  // trailing bits set
    }

    TEST_CASE("IDs made on 4 threads at once are unique") {
        std::mutex m;
        std::set<std::string> all;
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                std::vector<std::string> mine;
                for (int i = 0; i < 5000; ++i) {
                    mine.push_back(newConnectionId());
                    mine.push_back(newRequestId());  // each thread's generator has its own seed
                }
                std::lock_guard lock(m);
                all.insert(mine.begin(), mine.end());
            });
        }
        for (auto &t : threads) t.join();
        CHECK(all.size() == 40000);
    }

    TEST_CASE("request IDs: 200k unique, and every character position varies") {
        std::unordered_set<std::string> seen;
        std::vector<std::set<char>> perPosition(15);
        for (int i = 0; i < 200000; ++i) {
            std::string r = newRequestId();
            seen.insert(r);
            for (size_t p = 0; p < r.size(); ++p) perPosition[p].insert(r[p]);
        }
        CHECK(seen.size() == 200000);
        for (size_t p = 0; p < perPosition.size(); ++p) {
            INFO("position " << p);
            CHECK(perPosition[p].size() == 64);
        }
    }

    TEST_CASE("base64url of known bytes") {
        const unsigned char b[] = {0xfb, 0xff, 0xbf};
        CHECK(base64UrlEncode(b, 3) == "-_-_");
        CHECK(base64UrlEncode(b, 1) == "-w");
        CHECK(base64UrlEncode(b, 0).empty());
    }
}
