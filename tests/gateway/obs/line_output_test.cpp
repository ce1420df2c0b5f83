// writeLines (obs/line_output.h): whole lines in pieces of at most PIPE_BUF, a descriptor that fails, and
// one that takes nothing until the writer gives up.
#include "line_output.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <string>
#include <unistd.h>

using namespace wsgw;

namespace {

std::string linesOf(size_t count, size_t width) {
    std::string out;
    for (size_t i = 0; i < count; ++i) out += std::string(width, 'a' + static_cast<char>(i % 26)) + '\n';
    return out;
}

std::string readAll(int fd) {
    std::string got;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
    return got;
}

}  // namespace

TEST_CASE("writeLines writes every line to a descriptor that takes them, in pieces that end at a line's end") {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    std::string batch = linesOf(30, 999);  // 30 KB: several PIPE_BUF pieces
    LineOutcome outcome = writeLines(fds[1], batch, [] { return false; });
    close(fds[1]);
    CHECK(outcome.linesLost == 0);
    CHECK(outcome.error == 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    CHECK(readAll(fds[0]) == batch);
    close(fds[0]);
}

TEST_CASE("writeLines counts the lines a failing descriptor did not take, with its error") {
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    REQUIRE(full >= 0);
    LineOutcome outcome = writeLines(full, linesOf(10, 100), [] { return false; });
    CHECK(outcome.linesLost == 10);
    CHECK(outcome.error == ENOSPC);
    close(full);
}

TEST_CASE("writeLines gives up on a descriptor that takes nothing instead of blocking for as long as nobody reads") {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    int size = fcntl(fds[1], F_GETPIPE_SZ);
    REQUIRE(size > 0);
    std::string filler = linesOf(static_cast<size_t>(size) / 64 + 64, 63);  // more than the pipe holds
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    auto started = std::chrono::steady_clock::now();
    LineOutcome outcome = writeLines(fds[1], filler, [&] { return std::chrono::steady_clock::now() >= deadline; });
    auto took = std::chrono::steady_clock::now() - started;
    CHECK(outcome.linesLost > 0);
    CHECK(outcome.linesLost < 64 + static_cast<size_t>(size) / 64);
    CHECK(outcome.error == 0);
    CHECK(took < std::chrono::seconds(3));
    close(fds[0]);
    close(fds[1]);
}
