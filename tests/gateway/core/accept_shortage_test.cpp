// Tests gateway/core/accept_shortage: which accept() errors are a shortage, that each one is counted, and
// that the warning is written once per 10 s with the failures since the last one (stdout, where the log
// goes, captured in a temporary file).
#include "accept_shortage.h"

#include "log.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

using namespace wsgw;

namespace {

// The log lines written while `body` runs.
template <class Body> std::vector<std::string> capturedLogLines(Body body) {
    std::fflush(stdout);
    std::FILE *file = std::tmpfile();
    REQUIRE(file);
    int saved = dup(1);
    dup2(fileno(file), 1);
    body();
    std::fflush(stdout);
    dup2(saved, 1);
    close(saved);
    std::rewind(file);
    std::vector<std::string> lines;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, file)) lines.emplace_back(buf);
    std::fclose(file);
    return lines;
}

}  // namespace

TEST_SUITE("accept_shortage") {
    TEST_CASE("out of descriptors or memory is a shortage; a reset, EINTR or EAGAIN is not") {
        CHECK(AcceptShortage::isShortage(EMFILE));
        CHECK(AcceptShortage::isShortage(ENFILE));
        CHECK(AcceptShortage::isShortage(ENOBUFS));
        CHECK(AcceptShortage::isShortage(ENOMEM));
        CHECK_FALSE(AcceptShortage::isShortage(EAGAIN));
        CHECK_FALSE(AcceptShortage::isShortage(ECONNABORTED));
        CHECK_FALSE(AcceptShortage::isShortage(EINTR));
    }

    TEST_CASE("every shortage counts; one warning per 10 s carries the failures since the last") {
        std::atomic<uint64_t> failures{0};
        AcceptShortage shortage("test listener", &failures);
        auto t0 = AcceptShortage::Clock::now();
        std::vector<bool> results;
        auto lines = capturedLogLines([&] {
            results.push_back(shortage.failed(EMFILE, t0));
            for (int i = 1; i <= 5; ++i) results.push_back(shortage.failed(EMFILE, t0 + std::chrono::seconds(i)));
            results.push_back(shortage.failed(EAGAIN, t0 + std::chrono::seconds(6)));
            results.push_back(shortage.failed(ENFILE, t0 + std::chrono::seconds(10)));
        });
        CHECK(results == std::vector<bool>{true, true, true, true, true, true, false, true});
        CHECK(failures == 7);
        REQUIRE(lines.size() == 2);
        CHECK(lines[0].find("\"listener\":\"test listener\"") != std::string::npos);
        CHECK(lines[0].find("\"failures\":1") != std::string::npos);
        CHECK(lines[1].find("\"failures\":6") != std::string::npos);  // 5 silent ones and this one
        CHECK(lines[1].find("\"retryMs\":100") != std::string::npos);
    }
}
