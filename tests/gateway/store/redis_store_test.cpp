// The Redis connection table against a real redis-server, which this test starts on a free loopback port
// (and skips, saying so, only when redis-server is not installed).
#include "monotonic_clock.h"
#include "redis_store.h"
#include "store_test_row.h"

#include <hiredis/hiredis.h>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace wsgw;
using store_test::row;

namespace {

int freePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

struct RedisServer {
    pid_t pid = -1;
    RedisAddress address;
    explicit RedisServer(int port = freePort()) {
        address.port = port;
        address.text = "redis://127.0.0.1:" + std::to_string(address.port);
        std::string portText = std::to_string(address.port);
        pid = fork();
        if (pid == 0) {
            execlp("redis-server", "redis-server", "--port", portText.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", "--logfile", "/dev/null", static_cast<char *>(nullptr));
            _exit(127);
        }
        RedisConnection probe(address);
        for (int i = 0; i < 100; ++i) {
            if (auto r = probe.command({"PING"}); r && replyString(r.get()) == "PONG") return;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        FAIL("redis-server did not start on port " << address.port << " (is it installed? tools/install-deps)");
    }
    ~RedisServer() {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
};

// A node ("n1") and a reaper ("r") sharing one Redis, and a plain connection to set keys up with.
struct NodeAndReaper {
    RedisServer server;
    std::unique_ptr<RedisStore> node, reaper;
    RedisConnection setup{server.address};
    NodeAndReaper() {
        std::string error;
        node = RedisStore::open(server.address, RedisKeys{}, "n1", &error);
        REQUIRE_MESSAGE(node, error);
        reaper = RedisStore::open(server.address, RedisKeys{}, "r", &error);
        REQUIRE_MESSAGE(reaper, error);
    }
};

}  // namespace

TEST_SUITE("redis_store") {
    TEST_CASE("redis:// URLs: host, port and database, with clear errors") {
        auto a = parseRedisUrl("redis://10.0.0.5:6380/2");
        REQUIRE(std::holds_alternative<RedisAddress>(a));
        CHECK(std::get<RedisAddress>(a).host == "10.0.0.5");
        CHECK(std::get<RedisAddress>(a).port == 6380);
        CHECK(std::get<RedisAddress>(a).db == 2);
        auto b = parseRedisUrl("redis://cache");
        REQUIRE(std::holds_alternative<RedisAddress>(b));
        CHECK(std::get<RedisAddress>(b).port == 6379);
        for (const char *bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h:12/x", "redis://u:p@h:1"}) {
            CAPTURE(bad);
            auto r = parseRedisUrl(bad);
            REQUIRE(std::holds_alternative<std::string>(r));
            CHECK(std::get<std::string>(r).find("expected redis://HOST[:PORT][/DB]") != std::string::npos);
        }
    }

    TEST_CASE("an unreachable Redis is refused at open with the address and what to do") {
        RedisAddress nowhere;
        nowhere.port = freePort();
        nowhere.text = "redis://127.0.0.1:" + std::to_string(nowhere.port);
        std::string error;
        CHECK(RedisStore::open(nowhere, RedisKeys{}, "n1", &error) == nullptr);
        CHECK(error.find("cannot reach Redis") != std::string::npos);
        CHECK(error.find(nowhere.text) != std::string::npos);
    }

    TEST_CASE("rows are written, touched and removed in order; a touch never brings a removed row back") {
        RedisServer server;
        RedisKeys keys;
        std::string error;
        auto store = RedisStore::open(server.address, keys, "n1", &error);
        REQUIRE_MESSAGE(store, error);
        ConnectionRow authorized = row("c1", "n1");
        authorized.authorizerJson = R"({"principalId":"alice"})";
        store->insert(authorized);
        store->insert(row("c2", "n1"));
        store->touch("c1", 5000);
        store->touch("c1", 4000);  // coalesced: the later time wins, not the last call
        store->remove("c2");
        store->touch("c2", 6000);
        store->flush();
        CHECK(store->writable());
        CHECK(store->queueDepth() == 0);
        auto c1 = store->find("c1");
        REQUIRE(c1);
        CHECK(c1->nodeId == "n1");
        CHECK(c1->lastActiveAtMs == 5000);
        CHECK(c1->authorizerJson == R"({"principalId":"alice"})");
        CHECK_FALSE(store->find("c2"));
        RedisConnection redis(server.address);
        CHECK(replyInteger(redis.command({"EXISTS", keys.connection("c2")}).get()) == 0);
        CHECK(replyInteger(redis.command({"SISMEMBER", keys.nodeConnections("n1"), "c1"}).get()) == 1);
        CHECK(replyInteger(redis.command({"SISMEMBER", keys.nodeConnections("n1"), "c2"}).get()) == 0);
    }

    TEST_CASE("a touch alone is sent on the writer's own tick, without a flush or another write") {
        RedisServer server;
        std::string error;
        auto store = RedisStore::open(server.address, RedisKeys{}, "n1", &error);
        REQUIRE_MESSAGE(store, error);
        store->insert(row("c1", "n1"));
        store->flush();
        for (int i = 1; i <= 100; ++i) store->touch("c1", 5000 + i);  // wakes nobody: only the tick sends them
        bool sent = false;
        for (int i = 0; i < 100 && !sent; ++i) {
            auto c1 = store->find("c1");
            sent = c1 && c1->lastActiveAtMs == 5100;
            if (!sent) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        CHECK(sent);
        CHECK(store->queueDepth() == 0);
    }

    TEST_CASE("taking a row also ends its group memberships, and only one of many racing takers gets it") {
        RedisServer server;
        RedisKeys keys;
        std::string error;
        auto store = RedisStore::open(server.address, keys, "n1", &error);
        REQUIRE_MESSAGE(store, error);
        store->insert(row("c1", "n1"));
        store->flush();
        RedisConnection setup(server.address);
        setup.pipeline({{"SADD", keys.group("room"), "c1"}, {"SADD", keys.connectionGroups("c1"), "room"}});
        std::atomic<int> winners{0};
        std::vector<std::thread> takers;
        for (int i = 0; i < 8; ++i)
            takers.emplace_back([&] {
                RedisConnection mine(server.address);
                if (takeConnectionRow(mine, keys, "c1", "n2", nullptr)) ++winners;
            });
        for (auto &t : takers) t.join();
        CHECK(winners == 1);
        CHECK(replyInteger(setup.command({"SCARD", keys.group("room")}).get()) == 0);
        CHECK(replyInteger(setup.command({"EXISTS", keys.connectionGroups("c1")}).get()) == 0);
        CHECK(replyInteger(setup.command({"SCARD", keys.nodeConnections("n1")}).get()) == 0);
    }

    TEST_CASE("rowsLeftByNode reads a node's rows; adoptRowsOfNode moves a dead node's rows to the reaper, once") {
        RedisServer server;
        std::string error;
        auto store = RedisStore::open(server.address, RedisKeys{}, "n1", &error);
        REQUIRE_MESSAGE(store, error);
        store->insert(row("a", "dead"));
        store->insert(row("b", "dead"));
        store->insert(row("c", "alive"));
        store->flush();
        CHECK(store->rowsLeftByNode("dead").size() == 2);
        CHECK(store->rowsLeftByNode("dead").size() == 2);  // reading deletes nothing
        auto adopted = store->adoptRowsOfNode("dead", "reaper", 60000, &error);
        CHECK(error.empty());
        REQUIRE(adopted.size() == 2);
        CHECK(adopted[0].nodeId == "reaper");
        CHECK(store->adoptRowsOfNode("dead", "other", 60000).empty());  // only one reaper gets them
        CHECK(store->rowsLeftByNode("dead").empty());
        CHECK(store->rowsLeftByNode("reaper").size() == 2);  // if the reaper dies now, they are reaped from it
        store->remove("a");                                  // its $disconnect ran
        store->flush();
        CHECK(store->rowsLeftByNode("reaper").size() == 1);
        CHECK(store->find("c"));
        // A node that is alive again keeps its rows.
        RedisConnection setup(server.address);
        setup.command({"SET", RedisKeys{}.nodeAlive("alive"), "x"});
        CHECK(store->adoptRowsOfNode("alive", "reaper", 60000).empty());
        CHECK(store->find("c")->nodeId == "alive");
    }

    TEST_CASE("disconnectOwner: this node's while its row is and it is alive; another's once a reaper adopted the row, even after it took it") {
        NodeAndReaper cluster;
        auto &store = cluster.node, &reaper = cluster.reaper;
        RedisConnection &setup = cluster.setup;
        using Owner = ConnectionStore::DisconnectOwner;
        setup.command({"SET", RedisKeys{}.nodeAlive("n1"), "x"});
        store->insert(row("a", "n1"));
        store->insert(row("b", "n1"));
        store->flush();
        CHECK(store->disconnectOwner("a") == Owner::Ours);
        CHECK(store->disconnectOwner("never-written") == Owner::Ours);  // no other node can have it
        setup.command({"DEL", RedisKeys{}.nodeAlive("n1")});
        CHECK(store->disconnectOwner("a") == Owner::Unknown);  // a reaper may be adopting it right now
        REQUIRE(reaper->adoptRowsOfNode("n1", "r", 60000).size() == 2);
        CHECK(store->disconnectOwner("a") == Owner::Elsewhere);
        CHECK(reaper->disconnectOwner("a") == Owner::Unknown);  // the reaper's alive key is not set here
        reaper->removeClosed("a");  // the reaper ran it: sent at once, by this thread
        CHECK_FALSE(store->find("a"));
        CHECK(store->disconnectOwner("a") == Owner::Elsewhere);  // the row is gone, its reaped mark is not
        // The node's own removal after a $disconnect is sent at once too.
        setup.command({"SET", RedisKeys{}.nodeAlive("n1"), "x"});
        store->insert(row("c", "n1"));
        store->flush();
        store->removeClosed("c");
        CHECK_FALSE(store->find("c"));
        CHECK(replyInteger(setup.command({"SISMEMBER", RedisKeys{}.nodeConnections("n1"), "c"}).get()) == 0);
    }

    TEST_CASE("while the heartbeat vouches for the node its $disconnects are its own without asking; an adoption unregisters the node; after a reap no vouch counts") {
        NodeAndReaper cluster;
        auto &store = cluster.node, &reaper = cluster.reaper;
        RedisConnection &setup = cluster.setup;
        using Owner = ConnectionStore::DisconnectOwner;
        const RedisKeys keys;
        setup.command({"SET", keys.nodeRegistered("n1"), "x"});
        store->insert(row("a", "n1"));
        store->insert(row("b", "n1"));
        store->flush();
        // No alive key: asked, Redis says a reaper may be adopting; vouched for, it is not asked.
        CHECK(store->disconnectOwner("a") == Owner::Unknown);
        store->vouchOwnRowsUntil(monotonicMs() + 60000);
        CHECK(store->disconnectOwner("a") == Owner::Ours);
        store->vouchOwnRowsUntil(monotonicMs() - 1);  // a vouch that has run out is not one
        CHECK(store->disconnectOwner("a") == Owner::Unknown);
        // The adoption takes the node's registration away in the same step, so no later beat can vouch.
        REQUIRE(reaper->adoptRowsOfNode("n1", "r", 60000).size() == 2);
        CHECK(replyInteger(setup.command({"EXISTS", keys.nodeRegistered("n1")}).get()) == 0);
        CHECK(store->disconnectOwner("a") == Owner::Elsewhere);
        // Reaped once: a vouch from a beat after the rejoin is ignored for the rest of the process.
        store->stopVouching();
        store->vouchOwnRowsUntil(monotonicMs() + 60000);
        CHECK(store->disconnectOwner("a") == Owner::Elsewhere);
    }

    TEST_CASE("re-registration after Redis lost its data skips connections that closed meanwhile") {
        RedisServer server;
        std::string error;
        auto store = RedisStore::open(server.address, RedisKeys{}, "n1", &error);
        REQUIRE_MESSAGE(store, error);
        store->reRegister({row("live", "n1"), row("closed", "n1")}, [](const std::string &id) { return id == "live"; });
        store->flush();
        CHECK(store->find("live"));
        CHECK_FALSE(store->find("closed"));
    }

    TEST_CASE("writes queued while Redis is down are sent once it is back") {
        auto server = std::make_unique<RedisServer>();
        RedisAddress address = server->address;
        std::string error;
        auto store = RedisStore::open(address, RedisKeys{}, "n1", &error);
        REQUIRE_MESSAGE(store, error);
        server.reset();  // Redis dies
        store->insert(row("queued", "n1"));
        for (int i = 0; i < 40 && store->writable(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK_FALSE(store->writable());
        CHECK(store->queueDepth() >= 1);
        RedisServer again(address.port);  // the same port again, empty
        for (int i = 0; i < 100 && !store->find("queued"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK(store->find("queued"));
        CHECK(store->writable());
        store.reset();
    }
}
