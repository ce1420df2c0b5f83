// WriteHealth: the state /readyz reads and the log lines an operator sees while table writes fail.
#include "write_health.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace wsgw;

namespace {

// The log lines (stdout) written while `fn` runs.
template <typename F>
std::vector<std::string> logLinesOf(F fn) {
    char path[] = "/tmp/wsgw-write-health-XXXXXX";
    int tmp = mkstemp(path);
    REQUIRE(tmp >= 0);
    std::fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(tmp, STDOUT_FILENO);
    fn();
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(tmp);
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    unlink(path);
    return lines;
}

bool lineHas(const std::string &line, const std::string &part) { return line.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("write_health") {
    TEST_CASE("a first failure is a warning; failing on past errorAfter is an error line, then none until the interval; success is an info line") {
        WriteHealth health("/srv/wsgw.db", std::chrono::milliseconds(0));
        CHECK_FALSE(health.failing());
        CHECK_FALSE(health.failure());

        auto first = logLinesOf([&] { health.failed("database is locked", 5); });
        REQUIRE(first.size() == 1);
        CHECK(lineHas(first[0], R"("level":"warn")"));
        CHECK(lineHas(first[0], "connection table write failed"));
        CHECK(lineHas(first[0], R"("target":"/srv/wsgw.db")"));
        CHECK(lineHas(first[0], R"("waiting":5)"));
        CHECK(health.failing());
        REQUIRE(health.failure());
        CHECK(health.failure()->error == "database is locked");

        auto more = logLinesOf([&] {
            health.failed("database is locked", 6);  // past errorAfter (0 here): the error line
            health.failed("database is locked", 7);  // within the 10 s interval: nothing
        });
        REQUIRE(more.size() == 1);
        CHECK(lineHas(more[0], R"("level":"error")"));
        CHECK(lineHas(more[0], "still failing"));
        CHECK(lineHas(more[0], R"("attempts":2)"));

        auto recovered = logLinesOf([&] { health.succeeded(); });
        REQUIRE(recovered.size() == 1);
        CHECK(lineHas(recovered[0], R"("level":"info")"));
        CHECK(lineHas(recovered[0], R"("failedAttempts":3)"));
        CHECK_FALSE(health.failing());
        CHECK_FALSE(health.failure());
        CHECK(logLinesOf([&] { health.succeeded(); }).empty());  // already fine: nothing to say
    }

    TEST_CASE("with the default errorAfter a burst of failures within a second stays at the one warning") {
        WriteHealth health("127.0.0.1:6379");
        auto lines = logLinesOf([&] {
            for (int i = 0; i < 5; ++i) health.failed("Redis: connection refused", 1);
        });
        REQUIRE(lines.size() == 1);
        CHECK(lineHas(lines[0], R"("level":"warn")"));
        CHECK(health.failure()->error == "Redis: connection refused");
    }
}
