#include "fifo_queue.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace wsgw;

TEST_SUITE("fifo_queue") {
    TEST_CASE("first in, first out, across drains") {
        FifoQueue<int> q;
        CHECK(q.empty());
        for (int i = 0; i < 5; ++i) q.push_back(int(i));
        CHECK(q.size() == 5);
        for (int i = 0; i < 5; ++i) {
            CHECK(q.front() == i);
            q.pop_front();
        }
        CHECK(q.empty());
        q.push_back(7);
        CHECK(q.front() == 7);
    }

    TEST_CASE("a popped element is destroyed at once, even while the queue never drains") {
        auto alive = std::make_shared<int>(0);
        std::weak_ptr<int> watch = alive;
        FifoQueue<std::shared_ptr<int>> q;
        q.push_back(std::move(alive));
        q.push_back(std::make_shared<int>(1));
        q.pop_front();
        CHECK(watch.expired());  // not kept until the vector is cleared
        CHECK(*q.front() == 1);
    }

    TEST_CASE("steady pipelining (never empty) keeps the storage bounded and the order right") {
        FifoQueue<std::string> q;
        int next = 0, expect = 0;
        for (int i = 0; i < 16; ++i) q.push_back(std::to_string(next++));
        for (int round = 0; round < 100000; ++round) {
            REQUIRE(q.front() == std::to_string(expect++));
            q.pop_front();
            q.push_back(std::to_string(next++));
            REQUIRE(q.size() == 16);
            REQUIRE(q.slots() <= 64);  // consumed slots are dropped; the storage does not grow with traffic
        }
        size_t n = 0;
        for (auto it = q.begin(); it != q.end(); ++it) ++n;
        CHECK(n == 16);
    }
}
