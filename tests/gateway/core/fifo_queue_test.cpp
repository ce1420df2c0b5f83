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

    TEST_CASE("take_front hands the front over with one move and leaves nothing of it behind") {
        struct Counted {
            std::shared_ptr<int> value;
            int *moves;
            Counted(std::shared_ptr<int> v, int *m) : value(std::move(v)), moves(m) {}
            Counted(Counted &&o) noexcept : value(std::move(o.value)), moves(o.moves) { ++*moves; }
            Counted &operator=(Counted &&o) noexcept {
                value = std::move(o.value);
                moves = o.moves;
                ++*moves;
                return *this;
            }
        };
        int moves = 0;
        FifoQueue<Counted> q;
        auto first = std::make_shared<int>(1);
        std::weak_ptr<int> watch = first;
        q.push_back(Counted(std::move(first), &moves));
        q.push_back(Counted(std::make_shared<int>(2), &moves));
        moves = 0;
        {
            Counted taken = q.take_front();
            CHECK(moves == 1);
            CHECK(*taken.value == 1);
            CHECK(q.size() == 1);
            CHECK(*q.front().value == 2);
        }
        CHECK(watch.expired());  // the queue's slot kept only a moved-from shell
        Counted last = q.take_front();
        CHECK(*last.value == 2);
        CHECK(q.empty());
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
