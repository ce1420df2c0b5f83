// Tests gateway/net/accept_backoff on a libev loop of its own, without a listening socket (the accept
// watcher watches a pipe): that a shortage (AcceptShortage, tested in core) stops the watcher and
// counts, that the retry timer starts it again, and that other errors change nothing.
#include "accept_backoff.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <unistd.h>

using namespace wsgw;

namespace {

struct LoopWithWatcher {
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int fds[2] = {-1, -1};
    ev_io watcher{};
    std::atomic<uint64_t> failures{0};
    AcceptBackoff backoff{"test", failures};

    LoopWithWatcher() {
        REQUIRE(pipe(fds) == 0);
        ev_io_init(&watcher, [](struct ev_loop *, ev_io *, int) {}, fds[0], EV_READ);
        ev_io_start(loop, &watcher);
        backoff.attach(loop, &watcher);
    }
    ~LoopWithWatcher() {
        backoff.stop();
        ev_io_stop(loop, &watcher);
        ev_loop_destroy(loop);
        close(fds[0]);
        close(fds[1]);
    }
};

}  // namespace

TEST_SUITE("accept_backoff") {
    TEST_CASE("a shortage stops the accept watcher and counts; the retry timer starts it again") {
        LoopWithWatcher l;
        CHECK(l.backoff.failed(EMFILE));
        CHECK(l.backoff.paused());
        CHECK_FALSE(ev_is_active(&l.watcher));
        CHECK(l.failures == 1);
        CHECK(l.backoff.failed(EMFILE));  // still paused: counted, no second timer
        CHECK(l.failures == 2);
        // Run the loop until the retry timer has fired (it is the only thing that can end the pause).
        for (int i = 0; i < 100 && l.backoff.paused(); ++i) ev_run(l.loop, EVRUN_ONCE);
        CHECK_FALSE(l.backoff.paused());
        CHECK(ev_is_active(&l.watcher));
    }

    TEST_CASE("any other error leaves accepting as it was and counts nothing") {
        LoopWithWatcher l;
        CHECK_FALSE(l.backoff.failed(EAGAIN));
        CHECK_FALSE(l.backoff.failed(ECONNABORTED));
        CHECK_FALSE(l.backoff.paused());
        CHECK(ev_is_active(&l.watcher));
        CHECK(l.failures == 0);
    }

    TEST_CASE("stop() cancels a pending retry: the watcher stays stopped") {
        LoopWithWatcher l;
        CHECK(l.backoff.failed(ENFILE));
        l.backoff.stop();
        ev_run(l.loop, EVRUN_NOWAIT);
        CHECK_FALSE(ev_is_active(&l.watcher));
    }
}
