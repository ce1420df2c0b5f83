// The reliable subprotocol's per-connection state (docs/webpubsub.md): numbering and keeping messages until
// the client's sequenceAck, the maxSendQueueBytes bound on what is kept, repeated ackIds, and the recovery
// window's tokens and deadlines.
#include "webpubsub_protocol.h"
#include "webpubsub_session.h"

#include <doctest/doctest.h>

using namespace wsgw;

TEST_SUITE("webpubsub session") {
    TEST_CASE("messages are numbered from 1 and kept until acknowledged") {
        WpsReliableOutbox box(1 << 20);
        std::string m = wpsServerMessage({WpsDataType::Text, "x"});
        auto first = box.append(m);
        auto second = box.append(m);
        auto third = box.append(m);
        REQUIRE(first);
        CHECK(first->rfind("{\"sequenceId\":1,", 0) == 0);
        CHECK(second->rfind("{\"sequenceId\":2,", 0) == 0);
        CHECK(box.count() == 3);
        CHECK(box.bytes() == first->size() + second->size() + third->size());
        CHECK(box.acknowledge(2) == first->size() + second->size());
        CHECK(box.count() == 1);
        auto again = box.unacknowledged();
        REQUIRE(again.size() == 1);
        CHECK(again[0] == third);  // the same frame, not a copy
        CHECK(box.acknowledge(1) == 0);  // an old ack frees nothing
        CHECK(box.acknowledge(1000) == third->size());  // beyond the last: everything
        CHECK(box.bytes() == 0);
        CHECK(box.lastSequenceId() == 3);
        CHECK(box.append(m)->rfind("{\"sequenceId\":4,", 0) == 0);  // numbering continues
    }

    TEST_CASE("what is kept is bounded: a client that never acks is refused at maxSendQueueBytes") {
        std::string m = wpsServerMessage({WpsDataType::Text, std::string(100, 'a')});
        size_t frame = withSequenceId(m, 1).size();
        WpsReliableOutbox box(frame * 3 + frame / 2);
        CHECK(box.append(m));
        CHECK(box.append(m));
        CHECK(box.append(m));
        CHECK_FALSE(box.append(m));
        CHECK(box.count() == 3);
        CHECK(box.lastSequenceId() == 3);  // the refused one took no number
        box.acknowledge(1);
        CHECK(box.append(m));  // room again after an ack
    }

    TEST_CASE("unacknowledged messages come back in order after a recovery") {
        WpsReliableOutbox box(1 << 20);
        for (int i = 1; i <= 40; ++i) box.append(wpsServerMessage({WpsDataType::Text, std::to_string(i)}));
        box.acknowledge(10);
        auto again = box.unacknowledged();
        REQUIRE(again.size() == 30);
        for (size_t i = 0; i < again.size(); ++i)
            CHECK(again[i]->rfind("{\"sequenceId\":" + std::to_string(11 + i) + ",", 0) == 0);
    }

    TEST_CASE("an ackId is done once; a repeat is a Duplicate") {
        WpsAckIds ids;
        CHECK(ids.firstUse(1));
        CHECK(ids.firstUse(2));
        CHECK_FALSE(ids.firstUse(1));
        for (uint64_t i = 3; i < 3 + WpsAckIds::kRemembered; ++i) ids.firstUse(i);
        CHECK(ids.firstUse(1));  // forgotten after kRemembered newer ones
    }

    TEST_CASE("reconnection tokens are random and compared whole") {
        std::string a = newWpsReconnectionToken(), b = newWpsReconnectionToken();
        CHECK(a.size() == 22);
        CHECK(a != b);
        CHECK(wpsTokensEqual(a, a));
        CHECK_FALSE(wpsTokensEqual(a, b));
        CHECK_FALSE(wpsTokensEqual(a, a.substr(0, 21)));
    }

    TEST_CASE("the recovery window: resume with the right token before the deadline") {
        WpsRecoveryWindow w;
        w.detach("c1", "t1", 1000, 30000);
        w.detach("c2", "t2", 2000, 30000);
        CHECK(w.isDetached("c1"));
        CHECK(w.nextDeadline() == 31000);
        CHECK(w.resume("c1", "wrong", 5000) == WpsRecoveryWindow::Resume::WrongToken);
        CHECK(w.isDetached("c1"));  // a wrong token does not end the window
        CHECK(w.resume("nope", "t1", 5000) == WpsRecoveryWindow::Resume::Unknown);
        CHECK(w.resume("c1", "t1", 5000) == WpsRecoveryWindow::Resume::Resumed);
        CHECK_FALSE(w.isDetached("c1"));
        CHECK(w.resume("c1", "t1", 5000) == WpsRecoveryWindow::Resume::Unknown);  // once
        CHECK(w.nextDeadline() == 32000);
    }

    TEST_CASE("the recovery window: expiry hands back the connections whose $disconnect is due") {
        WpsRecoveryWindow w;
        w.detach("c1", "t1", 0, 1000);
        w.detach("c2", "t2", 500, 1000);
        w.detach("c3", "t3", 0, 0);  // no window: due at once
        CHECK(w.resume("c1", "t1", 1000) == WpsRecoveryWindow::Resume::Unknown);  // at the deadline it is over
        CHECK(w.expire(999) == std::vector<std::string>{"c3"});
        CHECK(w.expire(1000) == std::vector<std::string>{"c1"});
        CHECK(w.size() == 1);
        CHECK(w.forget("c2"));
        CHECK_FALSE(w.forget("c2"));
        CHECK(w.expire(10000).empty());
        CHECK_FALSE(w.nextDeadline());
        // Detaching again (a second drop after a recovery) replaces the first entry.
        w.detach("c4", "a", 0, 100);
        w.detach("c4", "b", 50, 100);
        CHECK(w.size() == 1);
        CHECK(w.expire(120).empty());
        CHECK(w.resume("c4", "b", 120) == WpsRecoveryWindow::Resume::Resumed);
    }
}
