#include "removal_journal.h"
#include "sqlite_store.h"
#include "store_test_row.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace wsgw;
using store_test::row;

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

// Polls `pred` until it holds or `limit` passes: a wait for a condition, with a bound.
bool waitUntil(const std::function<bool()> &pred, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

// Another process's view of the database holding the write lock (`sqlite3 db 'BEGIN EXCLUSIVE'`) until
// release() or destruction.
struct WriteLockHolder {
    sqlite3 *h = nullptr;
    explicit WriteLockHolder(const std::string &db) {
        REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
        REQUIRE(sqlite3_exec(h, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    void release() {
        if (!h) return;
        sqlite3_exec(h, "COMMIT", nullptr, nullptr, nullptr);
        sqlite3_close(h);
        h = nullptr;
    }
    ~WriteLockHolder() { release(); }
};

// Both segments of the journal of closed connections, as the next start reads them.
std::string journalText(const std::string &db) {
    std::string text;
    for (const char *suffix : {".disconnected", ".disconnected-1"}) {
        std::ifstream in(db + suffix);
        text.append(std::istreambuf_iterator<char>(in), {});
    }
    return text;
}
// Opened as the gateway's start does: the rows left by an unclean stop read first (none here), which is
// when the store takes the journal over from the last run and begins emptying it.
std::unique_ptr<ConnectionStore> openAsAtStart(const std::string &path);
bool journalExists(const std::string &db) {
    return std::filesystem::exists(db + ".disconnected") || std::filesystem::exists(db + ".disconnected-1");
}

std::unique_ptr<ConnectionStore> open(const std::string &path) {
    std::string error;
    auto store = openSqliteStore(path, &error);
    REQUIRE_MESSAGE(store, error);
    return store;
}
std::unique_ptr<ConnectionStore> openAsAtStart(const std::string &path) {
    auto store = open(path);
    std::string error;
    CHECK(store->rowsLeftByNode("n1", &error).empty());
    CHECK(error.empty());
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

    TEST_CASE("a touch alone reaches the table on the store thread's own tick, without a flush or another write") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        store->insert(row("a"));
        store->flush();
        store->touch("a", 5000);  // wakes nobody: only the tick commits it
        REQUIRE(waitUntil([&] { return countRows(db, "connection_id = 'a' AND last_active_at = 5000") == 1; }));
        // Another connection sees the commit a moment before the store thread counts its batch done.
        CHECK(waitUntil([&] { return store->queueDepth() == 0; }));
    }

    TEST_CASE("touches of many connections, in any order, each leave the connection's latest time") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        // Inserted in another order than their IDs sort in, so the rows' order in the table and the IDs' differ.
        const int n = 3000;
        for (int i = 0; i < n; ++i) store->insert(row(name("c", (i * 7919) % n)));
        store->flush();
        // Each connection: an older time, its latest time (5000 + i), and an older one again; interleaved.
        for (int pass = 0; pass < 3; ++pass)
            for (int k = 0; k < n; ++k) {
                int i = (k * 104729 + pass) % n;
                store->touch(name("c", i), pass == 1 ? 5000 + i : 4000 + pass);
            }
        store->touch("never-inserted", 9000);
        store->flush();
        sqlite3 *h = nullptr;
        REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
        sqlite3_stmt *s = nullptr;
        REQUIRE(sqlite3_prepare_v2(h, "SELECT connection_id, last_active_at FROM connections", -1, &s, nullptr) == SQLITE_OK);
        int rows = 0, right = 0;
        while (sqlite3_step(s) == SQLITE_ROW) {
            ++rows;
            std::string id = reinterpret_cast<const char *>(sqlite3_column_text(s, 0));
            if (sqlite3_column_int64(s, 1) == 5000 + std::stoll(id.substr(1))) ++right;
        }
        sqlite3_finalize(s);
        sqlite3_close(h);
        CHECK(rows == n);
        CHECK(right == n);
    }

    TEST_CASE("a touch after its row's remove changes no row, not even the one that reused its rowid") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        store->insert(row("x"));
        store->insert(row("y"));
        store->flush();
        // One batch: y's row goes (SQLite gives the next insert its rowid, the largest), z comes, and a late
        // touch of y follows. The touch must find no row for y, and z keeps its own time.
        store->remove("y");
        store->insert(row("z"));
        store->touch("y", 9999);
        store->flush();
        CHECK(countRows(db, "connection_id = 'y'") == 0);
        CHECK(countRows(db, "connection_id = 'z' AND last_active_at = 1000") == 1);
        // And in a later commit than the remove.
        store->remove("x");
        store->flush();
        store->touch("x", 9999);
        store->flush();
        CHECK(countRows(db) == 1);
        CHECK(countRows(db, "last_active_at = 9999") == 0);
    }

    TEST_CASE("touches that keep coming while commits fail are kept once per connection, and the latest is written") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        store->insert(row("busy"));
        store->flush();
        WriteLockHolder lock(db);
        store->insert(row("other"));  // a write that wakes the store thread, whose commit then fails
        REQUIRE(waitUntil([&] { return !store->writable(); }));
        for (int i = 1; i <= 2000; ++i) {
            store->touch("busy", 10000 + i);
            if (i % 500 == 0) {  // let a retry take them: its batch keeps one touch per connection
                size_t before = store->queueDepth();
                REQUIRE(waitUntil([&] { return store->queueDepth() < before; }));
            }
        }
        REQUIRE(waitUntil([&] { return store->queueDepth() <= 2; }));  // "other" and busy's one touch
        CHECK(countRows(db, "connection_id = 'busy' AND last_active_at > 1000") == 0);
        lock.release();
        store->flush();
        CHECK(countRows(db, "connection_id = 'busy' AND last_active_at = 12000") == 1);
        CHECK(countRows(db, "connection_id = 'other'") == 1);
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

    TEST_CASE("rowsLeftByNode returns that node's rows and deletes none: each is removed after its $disconnect") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        {
            auto store = open(db);
            store->insert(row("a", "n1"));
            store->insert(row("b", "n1"));
            store->insert(row("c", "n2"));
        }  // destroyed without removing: what a kill -9 leaves
        CHECK(countRows(db) == 3);
        {
            auto store = open(db);
            std::string error = "not cleared";
            auto left = store->rowsLeftByNode("n1", &error);
            CHECK(error.empty());
            REQUIRE(left.size() == 2);
            CHECK(left[0].nodeId == "n1");
            CHECK(countRows(db, "node_id = 'n1'") == 2);  // a crash now leaves them for the next start
            store->remove(left[0].connectionId);          // its $disconnect ran
        }
        auto store = open(db);
        auto left = store->rowsLeftByNode("n1");
        REQUIRE(left.size() == 1);
        CHECK(countRows(db, "node_id = 'n2'") == 1);
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

    TEST_CASE("a commit that fails while another process holds the lock is retried on its own until it succeeds") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        for (int i = 0; i < 5; ++i) store->insert(row(name("c", i)));
        store->flush();
        CHECK(store->writable());
        CHECK(store->problem().empty());
        {
            WriteLockHolder lock(db);
            for (int i = 0; i < 5; ++i) store->remove(name("c", i));
            REQUIRE(waitUntil([&] { return !store->writable(); }));
            // The failing batch is counted, and /readyz's text says what fails.
            CHECK(store->queueDepth() == 5);
            CHECK(store->problem().find("cannot be written") != std::string::npos);
            CHECK(store->problem().find("locked") != std::string::npos);
            CHECK(countRows(db) == 5);
        }
        // No other write arrives: the retry alone commits the removals, and the store says it is fine again.
        REQUIRE(waitUntil([&] { return countRows(db) == 0; }));
        REQUIRE(waitUntil([&] { return store->writable(); }));
        // The store thread marks the table writable, then counts its batch done (two steps: the depth can
        // lag writable() by a moment, which a loaded machine under ThreadSanitizer shows).
        CHECK(waitUntil([&] { return store->queueDepth() == 0; }));
        CHECK(store->problem().empty());
    }

    TEST_CASE("writes queued during failures keep their order behind the failing batch; flush waits for all") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        WriteLockHolder lock(db);
        store->insert(row("x"));
        REQUIRE(waitUntil([&] { return !store->writable(); }));
        store->remove("x");  // after the failing batch: must not run before the insert it removes
        store->insert(row("y"));
        store->touch("y", 4242);
        CHECK(store->queueDepth() == 4);
        auto flushed = std::async(std::launch::async, [&] { store->flush(); });
        CHECK(flushed.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
        lock.release();
        REQUIRE(flushed.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
        CHECK(countRows(db, "connection_id = 'x'") == 0);
        CHECK(countRows(db, "connection_id = 'y' AND last_active_at = 4242") == 1);
        CHECK(store->writable());
    }

    TEST_CASE("insertDurable calls back once the row is committed, and only then") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        // Committed means another process sees it when the callback runs.
        std::promise<long long> seen;
        store->insertDurable(row("d1"), [&](bool ok) { seen.set_value(ok ? countRows(db, "connection_id = 'd1'") : -1); });
        auto f = seen.get_future();
        REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
        CHECK(f.get() == 1);

        // While the table is locked the callback waits, then comes with true once the retry commits.
        WriteLockHolder lock(db);
        std::atomic<int> calls{0};
        std::atomic<bool> result{false};
        store->insertDurable(row("d2"), [&](bool ok) {
            result = ok;
            ++calls;
        });
        REQUIRE(waitUntil([&] { return !store->writable(); }));
        CHECK(calls == 0);
        lock.release();
        REQUIRE(waitUntil([&] { return calls == 1; }));
        CHECK(result);
        CHECK(countRows(db, "connection_id = 'd2'") == 1);
    }

    TEST_CASE("a durable insert and its remove in one batch both run; 100 concurrent durable inserts share commits") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        std::atomic<int> committed{0};
        {
            WriteLockHolder lock(db);  // holds everything below in one batch
            store->insertDurable(row("brief"), [&](bool ok) { committed += ok; });
            store->remove("brief");
            for (int i = 0; i < 100; ++i) store->insertDurable(row(name("g", i)), [&](bool ok) { committed += ok; });
            REQUIRE(waitUntil([&] { return !store->writable(); }));
        }
        REQUIRE(waitUntil([&] { return committed == 101; }));
        CHECK(countRows(db, "connection_id = 'brief'") == 0);
        CHECK(countRows(db, "connection_id LIKE 'g%'") == 100);
    }

    TEST_CASE("a store stopping while the table stays locked gives up after a bounded time and says so to durable callers") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        WriteLockHolder lock(db);
        std::atomic<int> calls{0};
        std::atomic<bool> result{true};
        store->insertDurable(row("never"), [&](bool ok) {
            result = ok;
            ++calls;
        });
        REQUIRE(waitUntil([&] { return !store->writable(); }));
        auto started = std::chrono::steady_clock::now();
        store.reset();
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(20));
        CHECK(calls == 1);
        CHECK_FALSE(result);
    }

    TEST_CASE("removals given up at shutdown are journalled: the next start deletes those rows and does not return them") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        {
            auto store = open(db);
            store->insert(row("a", "n1"));
            store->insert(row("b", "n1"));
            store->insert(row("c", "n1"));
            store->flush();
            WriteLockHolder lock(db);  // another process holds the table past the shutdown's give-up
            store->remove("a");        // their $disconnect ran
            store->remove("b");
            store.reset();
        }
        CHECK(countRows(db) == 3);
        std::ifstream journal(db + ".disconnected");
        std::string lines((std::istreambuf_iterator<char>(journal)), {});
        CHECK(lines == "a\nb\n");
        auto store = open(db);
        std::string error = "not cleared";
        {
            // Still locked at the next start: the journalled rows are left out at once (the start is not held
            // up), and their deletion waits in the queue like any other write.
            WriteLockHolder lock(db);
            auto left = store->rowsLeftByNode("n1", &error);
            CHECK(error.empty());
            REQUIRE(left.size() == 1);
            CHECK(left[0].connectionId == "c");
            CHECK(countRows(db) == 3);
            CHECK(std::filesystem::exists(db + ".disconnected"));
        }
        store->flush();  // the lock is gone: the deletions commit, and the journal is emptied with them
        CHECK(countRows(db) == 1);
        CHECK(journalText(db).empty());
        store.reset();
        CHECK_FALSE(journalExists(db));
    }

    TEST_CASE("removeClosed journals the ID before its removal commits: the state a kill -9 leaves then spares that $disconnect") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = openAsAtStart(db);
        store->insert(row("a", "n1"));
        store->insert(row("b", "n1"));
        store->insert(row("c", "n1"));
        store->flush();
        std::string snapshot = dir.path + "/killed";
        std::filesystem::create_directory(snapshot);
        {
            WriteLockHolder lock(db);  // the removals cannot commit
            store->removeClosed("a");  // its $disconnect ran
            store->remove("b");        // plain: no journal entry
            CHECK(journalText(db) == "a\n");
            // What a kill -9 now would leave on disk: the database with its WAL, and the journal.
            for (const char *suffix : {"", "-wal", ".disconnected", ".disconnected-1"})
                if (std::filesystem::exists(db + suffix))
                    std::filesystem::copy_file(db + suffix, snapshot + "/t.db" + suffix);
        }
        store->flush();
        CHECK(countRows(db) == 1);
        store.reset();
        CHECK_FALSE(journalExists(db));  // a clean stop: every removal journalled is committed

        std::string killed = snapshot + "/t.db";
        auto next = open(killed);
        std::string error = "not cleared";
        auto left = next->rowsLeftByNode("n1", &error);
        CHECK(error.empty());
        std::vector<std::string> ids;
        for (const auto &r : left) ids.push_back(r.connectionId);
        std::sort(ids.begin(), ids.end());
        CHECK(ids == std::vector<std::string>{"b", "c"});  // b's $disconnect runs again: it was not journalled
        next->flush();
        CHECK(countRows(killed) == 2);
        next.reset();
        CHECK_FALSE(journalExists(killed));
    }

    TEST_CASE("the journal of closed connections is emptied as commits cover it, and deleted at a clean stop") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = openAsAtStart(db);
        const int n = 6000;  // about 170 KB of IDs: more than the two segments' 64 KB each
        auto id = [](int i) { return name("connection-with-a-long-id-", i); };
        for (int i = 0; i < n; ++i) store->insert(row(id(i), "n1"));
        store->flush();
        size_t largest = 0, emptied = 0, previous = 0;
        for (int i = 0; i < n; ++i) {
            store->removeClosed(id(i));
            if (i % 100 != 99) continue;
            store->flush();
            size_t size = journalText(db).size();
            largest = std::max(largest, size);
            if (size < previous) ++emptied;
            previous = size;
        }
        CHECK(countRows(db) == 0);
        CHECK(emptied >= 1);
        // A full segment (64 KB) and what came in the batches until the commit that emptied it.
        CHECK(largest <= RemovalJournal::kSegmentBytes + 4 * 100 * id(n).size());
        store.reset();
        CHECK_FALSE(journalExists(db));
    }

    TEST_CASE("stopWrites on a table locked for good: gives up in about 5 s, journals the removals, and later calls do not wait") {
        // The shutdown's path when threads are still inside handlers: the store is stopped, not destroyed.
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        store->insert(row("a", "n1"));
        store->insert(row("b", "n1"));
        store->flush();
        WriteLockHolder lock(db);
        store->remove("a");
        store->remove("b");
        REQUIRE(waitUntil([&] { return !store->writable(); }));
        auto started = std::chrono::steady_clock::now();
        store->stopWrites();
        auto took = std::chrono::steady_clock::now() - started;
        CHECK(took >= std::chrono::milliseconds(4500));
        CHECK(took < std::chrono::seconds(8));
        std::ifstream journal(db + ".disconnected");
        std::string lines((std::istreambuf_iterator<char>(journal)), {});
        CHECK(lines == "a\nb\n");
        // A handler returning late still removes its row: queued and dropped, never waited for.
        started = std::chrono::steady_clock::now();
        store->remove("c");
        store->flush();
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
        store.reset();
    }

    TEST_CASE("a database file deleted while open is noticed within seconds") {
        TempDir dir;
        std::string db = dir.path + "/t.db";
        auto store = open(db);
        store->insert(row("a"));
        store->flush();
        CHECK(store->problem().empty());
        for (const char *suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
        REQUIRE(waitUntil([&] { return !store->writable(); }));
        CHECK(store->problem().find("deleted") != std::string::npos);
        CHECK(store->problem().find(db) != std::string::npos);
    }

    TEST_CASE("a --db that is a directory is refused, named, with the file to give instead; no lock file is made") {
        TempDir dir;
        std::string data = dir.path + "/data";
        std::filesystem::create_directories(data);
        std::string error;
        auto lock = DatabaseLock::acquire(data, &error);
        CHECK_FALSE(lock);
        CHECK(error == "--db " + data + ": is a directory: give the database file's path (for example " + data + "/wsgw.db)");
        CHECK_FALSE(std::filesystem::exists(data + ".lock"));
    }

    TEST_CASE("a --db that does not exist yet is made, whether it names a directory or only a file name") {
        TempDir dir;
        std::string error;
        auto nested = DatabaseLock::acquire(dir.path + "/new/dir/t.db", &error);
        CHECK_MESSAGE(nested, error);
        // A bare file name (`--db wsgw.db`, as the docs' examples give it) has no directory part to make.
        auto cwd = std::filesystem::current_path();
        std::filesystem::current_path(dir.path);
        auto bare = DatabaseLock::acquire("bare.db", &error);
        std::filesystem::current_path(cwd);
        CHECK_MESSAGE(bare, error);
        CHECK(std::filesystem::exists(dir.path + "/bare.db.lock"));
    }

    TEST_CASE("one gateway per database: another process is refused with the holder's PID until the lock is released") {
        TempDir dir;
        std::string db = dir.path + "/sub/t.db";
        std::string error;
        auto lock = DatabaseLock::acquire(db, &error);
        REQUIRE_MESSAGE(lock, error);
        // Another process (POSIX locks are per process): its answer comes back through a pipe.
        auto tryInChild = [&]() -> std::string {
            int fds[2];
            REQUIRE(pipe(fds) == 0);
            pid_t child = fork();
            REQUIRE(child >= 0);
            if (child == 0) {
                ::close(fds[0]);
                std::string err;
                auto l = DatabaseLock::acquire(db, &err);
                std::string answer = l ? "acquired" : err;
                ssize_t ignored = ::write(fds[1], answer.data(), answer.size());
                (void)ignored;
                _exit(0);
            }
            ::close(fds[1]);
            std::string answer;
            char buf[512];
            ssize_t n;
            while ((n = ::read(fds[0], buf, sizeof buf)) > 0) answer.append(buf, static_cast<size_t>(n));
            ::close(fds[0]);
            int status = 0;
            waitpid(child, &status, 0);
            return answer;
        };
        std::string refused = tryInChild();
        CHECK(refused.find("PID " + std::to_string(getpid())) != std::string::npos);
        CHECK(refused.find(db) != std::string::npos);
        CHECK(refused.find("--db") != std::string::npos);
        lock.reset();
        CHECK(tryInChild() == "acquired");
    }

    TEST_CASE("an unusable path is refused with a message naming it") {
        std::string error;
        auto store = openSqliteStore("/proc/wsgw-test/x.db", &error);
        CHECK_FALSE(store);
        CHECK(error.find("/proc/wsgw-test/x.db") != std::string::npos);
        CHECK(error.find("--db") != std::string::npos);
    }
}
