#include "sqlite_store.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace wsgw;

namespace {
struct TempDir {
    std::string path;
    TempDir() {
        char t[] = "/tmp/wsgw-store-test-XXXXXX";
        REQUIRE(mkdtemp(t));
        path = t;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

ConnectionRow row(const std::string &id, const std::string &node = "n1") {
    ConnectionRow r;
    r.connectionId = id;
    r.nodeId = node;
    r.connectedAtMs = 1000;
    r.lastActiveAtMs = 1000;
    r.sourceIp = "127.0.0.1";
    r.userAgent = "test";
    r.headersJson = R"({"Host":["x"]})";
    return r;
}

// What another process (the sqlite3 CLI) would see.
long long countRows(const std::string &db, const std::string &where = "1") {
    sqlite3 *h = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt *s = nullptr;
    std::string sql = "SELECT count(*) FROM connections WHERE " + where;
    REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    long long n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return n;
}

// Built by appending: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string at -O2.
std::string name(const char *prefix, int i, int j = -1) {
    std::string s(prefix);
    s += std::to_string(i);
    if (j >= 0) {
        s += '-';
        s += std::to_string(j);
    }
    return s;
}

std::unique_ptr<ConnectionStore> open(const std::string &path) {
    std::string error;
    auto store = openSqliteStore(path, &error);
    REQUIRE_MESSAGE(store, error);
    return store;
}
}  // namespace

TEST_SUITE("sqlite_store") {
    TEST_CASE("an inserted row is visible to another connection, in WAL mode, and removed again") {
        TempDir dir;
        std::string db = dir.path + "/sub/dir/wsgw.db";
        auto store = open(db);
        store->insert(row("a"));
        store->flush();
        auto found = store->find("a");
        REQUIRE(found);
        CHECK(found->sourceIp == "127.0.0.1");
        CHECK(found->headersJson == R"({"Host":["x"]})");
        CHECK(found->authorizerJson.empty());
        CHECK(countRows(db) == 1);
        sqlite3 *h = nullptr;
        sqlite3_open(db.c_str(), &h);
        sqlite3_stmt *s = nullptr;
        sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &s, nullptr);
        REQUIRE(sqlite3_step(s) == SQLITE_ROW);
        CHECK(std::string(reinterpret_cast<const char *>(sqlite3_column_text(s, 0))) == "wal");
        sqlite3_finalize(s);
        sqlite3_close(h);
        store->remove("a");
        store->flush();
        CHECK(countRows(db) == 0);
        CHECK_FALSE(store->find("a"));
    }

    TEST_CASE("touches coalesce to the latest time and never move it back") {
        TempDir dir;
        auto store = open(dir.path + "/t.db");
        store->insert(row("a"));
        for (int i = 1; i <= 1000; ++i) store->touch("a", 1000 + i);
        store->touch("a", 1500);
        store->flush();
        CHECK(store->find("a")->lastActiveAtMs == 2000);
        store->touch("gone", 5000);  // a touch of an unknown row is harmless
        store->flush();
        CHECK_FALSE(store->find("gone"));
    }

    TEST_CASE("insert then remove before a commit leaves no row") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        for (int i = 0; i < 100; ++i) {
            store->insert(row(name("c", i)));
            store->touch(name("c", i), 9999);
            store->remove(name("c", i));
        }
        store->flush();
        CHECK(countRows(db) == 0);
    }

    TEST_CASE("within one batch, only an insert followed by its remove cancels out") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        store->insert(row("kept-before"));
        store->flush();
        // One batch: a remove of an older row, an opened-and-closed connection, a remove that comes before
        // the insert of the same ID (the row stays), and a row that stays and is touched.
        store->remove("kept-before");
        store->insert(row("brief"));
        store->touch("brief", 5000);
        store->remove("brief");
        store->remove("reinserted");
        store->insert(row("reinserted"));
        store->insert(row("stays"));
        store->touch("stays", 7000);
        store->flush();
        CHECK(countRows(db) == 2);
        CHECK(countRows(db, "connection_id = 'reinserted'") == 1);
        CHECK(countRows(db, "connection_id = 'stays' AND last_active_at = 7000") == 1);
        CHECK(countRows(db, "connection_id IN ('brief', 'kept-before')") == 0);
    }

    TEST_CASE("takeRowsOfNode returns and deletes only that node's rows; rows survive a reopen") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        {
            auto store = open(db);
            store->insert(row("a", "n1"));
            store->insert(row("b", "n1"));
            store->insert(row("c", "n2"));
        }  // destroyed without removing: what a kill -9 leaves
        CHECK(countRows(db) == 3);
        auto store = open(db);
        auto taken = store->takeRowsOfNode("n1");
        REQUIRE(taken.size() == 2);
        CHECK(taken[0].nodeId == "n1");
        CHECK(countRows(db, "node_id = 'n1'") == 0);
        CHECK(countRows(db, "node_id = 'n2'") == 1);
        CHECK(store->takeRowsOfNode("n1").empty());
    }

    TEST_CASE("inserts from 4 threads are all committed") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                for (int i = 0; i < 2000; ++i) store->insert(row(name("t", t, i)));
            });
        for (auto &t : threads) t.join();
        store->flush();
        CHECK(countRows(db) == 8000);
        CHECK(store->queueDepth() == 0);
    }

    TEST_CASE("a reader holding a read transaction does not lose writes") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        store->insert(row("first"));
        store->flush();
        sqlite3 *reader = nullptr;
        sqlite3_open(db.c_str(), &reader);
        sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM connections;", nullptr, nullptr, nullptr);
        for (int i = 0; i < 50; ++i) store->insert(row(name("w", i)));
        store->flush();  // WAL: the writer does not wait for the reader
        sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
        sqlite3_close(reader);
        CHECK(countRows(db) == 51);
    }

    TEST_CASE("an unusable path is refused with a message naming it") {
        std::string error;
        auto store = openSqliteStore("/proc/wsgw-test/x.db", &error);
        CHECK_FALSE(store);
        CHECK(error.find("/proc/wsgw-test/x.db") != std::string::npos);
        CHECK(error.find("--db") != std::string::npos);
    }
}
