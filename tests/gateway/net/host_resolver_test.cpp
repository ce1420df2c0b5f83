// Tests gateway/net/host_resolver with a lookup function that waits until the test lets it answer (a DNS
// server that hangs): requests for one host share a lookup, the bounds on hosts and waiters refuse at once,
// a cancelled request is never answered and a lookup nobody waits for any more is not made; and which hosts
// need no lookup at all.
#include "host_resolver.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

using namespace wsgw;

namespace {

// The fake DNS: each lookup is recorded and waits until release() (or the test's end).
struct HungDns {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::string> asked;
    bool released = false;
    std::vector<std::pair<std::string, HostResolver::Answer>> answers;  // what the resolver called back with

    HostResolver::Lookup lookup() {
        return [this](const std::string &host) {
            std::unique_lock lock(mutex);
            asked.push_back(host);
            changed.notify_all();
            changed.wait(lock, [this] { return released; });
            return host == "missing.test" ? HostResolver::Answer{{}, "Name or service not known"}
                                          : HostResolver::Answer{{"192.0.2.7"}, {}};
        };
    }
    HostResolver::Done record(std::string tag) {
        return [this, tag](HostResolver::Answer a) {
            std::lock_guard lock(mutex);
            answers.emplace_back(tag, std::move(a));
            changed.notify_all();
        };
    }
    void release() {
        std::lock_guard lock(mutex);
        released = true;
        changed.notify_all();
    }
    template <typename Pred> bool waitUntil(Pred pred) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, std::chrono::seconds(5), pred);
    }
};

}  // namespace

TEST_SUITE("host_resolver") {
    TEST_CASE("numeric addresses and localhost need no lookup; names do") {
        CHECK_FALSE(HostResolver::needsLookup("127.0.0.1"));
        CHECK_FALSE(HostResolver::needsLookup("::1"));
        CHECK_FALSE(HostResolver::needsLookup("2001:db8::5"));
        CHECK_FALSE(HostResolver::needsLookup("localhost"));
        CHECK_FALSE(HostResolver::needsLookup("LocalHost"));
        CHECK(HostResolver::needsLookup("backend.example.com"));
        CHECK(HostResolver::needsLookup("localhost.example.com"));
        CHECK(HostResolver::needsLookup(""));
    }

    TEST_CASE("the system lookup answers localhost with a numeric address") {
        HostResolver::Answer a = HostResolver::systemLookup("localhost");
        CHECK(a.error == "");
        REQUIRE(!a.addresses.empty());
        CHECK((a.addresses.front() == "127.0.0.1" || a.addresses.front() == "::1"));
    }

    TEST_CASE("requests for one host share its lookup; each gets the answer, a failure with its reason") {
        HungDns dns;
        HostResolver resolver({2, 8, 16}, dns.lookup());
        auto t1 = resolver.resolve("backend.test", dns.record("a"));
        auto t2 = resolver.resolve("backend.test", dns.record("b"));
        auto t3 = resolver.resolve("missing.test", dns.record("c"));
        REQUIRE((t1 && t2 && t3));
        REQUIRE(dns.waitUntil([&] { return dns.asked.size() == 2; }));
        CHECK(resolver.counts().hosts == 2);
        CHECK(resolver.counts().waiters == 3);
        CHECK(resolver.counts().running == 2);
        dns.release();
        REQUIRE(dns.waitUntil([&] { return dns.answers.size() == 3; }));
        CHECK(dns.asked.size() == 2);  // one lookup per host
        for (const auto &[tag, answer] : dns.answers) {
            if (tag == "c") {
                CHECK(answer.error == "Name or service not known");
            } else {
                CHECK(answer.addresses == std::vector<std::string>{"192.0.2.7"});
            }
        }
        CHECK(resolver.counts().waiters == 0);
        CHECK(resolver.counts().hosts == 0);
    }

    TEST_CASE("at the bounds a request is refused at once; cancelling makes room and skips an unwanted lookup") {
        HungDns dns;
        HostResolver resolver({1, 2, 3}, dns.lookup());
        auto running = resolver.resolve("hung.test", dns.record("hung"));
        REQUIRE(dns.waitUntil([&] { return dns.asked.size() == 1; }));  // the one thread is stuck in it
        auto queued = resolver.resolve("queued.test", dns.record("queued"));
        REQUIRE(queued);
        CHECK_FALSE(resolver.resolve("third.test", dns.record("third")));  // a third host: over maxHosts
        auto sameHost = resolver.resolve("hung.test", dns.record("same"));
        REQUIRE(sameHost);  // shares the running lookup
        CHECK_FALSE(resolver.resolve("hung.test", dns.record("over")));  // a fourth waiter: over maxWaiters
        // Nobody waits for queued.test any more: it is forgotten, never looked up, and a new host fits.
        queued.reset();
        CHECK(resolver.counts().hosts == 1);
        auto third = resolver.resolve("third.test", dns.record("third"));
        REQUIRE(third);
        // A cancelled waiter of the running lookup is not called back; the others are.
        sameHost.reset();
        dns.release();
        REQUIRE(dns.waitUntil([&] { return dns.answers.size() == 2; }));
        std::vector<std::string> tags;
        for (const auto &[tag, answer] : dns.answers) tags.push_back(tag);
        std::sort(tags.begin(), tags.end());
        CHECK(tags == std::vector<std::string>{"hung", "third"});
        CHECK(dns.asked == std::vector<std::string>{"hung.test", "third.test"});
    }
}
