// Tests gateway/invoke/exit_status: a wait status in the words the worker and function supervisors log, on
// statuses the test builds (an exit code, a signal) and on real children's.
#include "exit_status.h"

#include <doctest/doctest.h>

#include <csignal>
#include <unistd.h>

using namespace wsgw;

namespace {

int statusOfChild(void (*body)()) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        body();
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

}  // namespace

TEST_SUITE("exit_status") {
    TEST_CASE("an exit code, and a signal with its name") {
        CHECK(describeExit(statusOfChild([] { _exit(3); })) == "exited with status 3");
        CHECK(describeExit(statusOfChild([] { _exit(0); })) == "exited with status 0");
        CHECK(describeExit(statusOfChild([] { raise(SIGKILL); })) ==
              "killed by signal " + std::to_string(SIGKILL) + " (" + strsignal(SIGKILL) + ")");
    }

    TEST_CASE("a status that is neither (a stopped child) is 'ended'") {
        CHECK(describeExit(0x137f) == "ended");  // WIFSTOPPED with SIGSTOP: what waitpid(WUNTRACED) reports
    }
}
