// Tests gateway/net/lws_log_filter: the executable's _lws_log is the one libwebsockets' own log calls reach,
// and it passes on exactly the lines of the levels set (dropping the others before any formatting).
#include "lws_log_filter.h"

#include <doctest/doctest.h>

#include <libwebsockets.h>

#include <dlfcn.h>
#include <string>
#include <vector>

using namespace wsgw;

namespace {
std::vector<std::pair<int, std::string>> g_lines;
void captureLine(int level, const char *line) { g_lines.emplace_back(level, line); }
}  // namespace

TEST_CASE("libwebsockets' log calls reach the executable's _lws_log, which drops disabled levels") {
    // The lookup libwebsockets' calls go through (its PLT) finds this executable's definition first.
    void *found = dlsym(RTLD_DEFAULT, "_lws_log");
    void *libraries = dlsym(RTLD_NEXT, "_lws_log");
    REQUIRE(found);
    REQUIRE(libraries);
    CHECK(found != libraries);

    g_lines.clear();
    setLwsLogLevel(LLL_ERR | LLL_WARN, captureLine);
    lwsl_err("an error %d\n", 1);
    lwsl_warn("a warning %s\n", "w");
    lwsl_notice("a notice\n");
    lwsl_debug("debug %d\n", 2);
    lwsl_parser("parser %d\n", 3);
    REQUIRE(g_lines.size() == 2);
    CHECK(g_lines[0].first == LLL_ERR);
    CHECK(g_lines[0].second.find("an error 1") != std::string::npos);
    CHECK(g_lines[1].first == LLL_WARN);
    CHECK(g_lines[1].second.find("a warning w") != std::string::npos);

    g_lines.clear();
    setLwsLogLevel(LLL_ERR | LLL_NOTICE, captureLine);
    lwsl_warn("dropped\n");
    lwsl_notice("kept\n");
    REQUIRE(g_lines.size() == 1);
    CHECK(g_lines[0].second.find("kept") != std::string::npos);
    setLwsLogLevel(LLL_ERR | LLL_WARN, nullptr);
}
