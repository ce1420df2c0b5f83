// Tests gateway/core/refusal_log: at info level at most 10 refusal lines a second, the count of those left
// out carried by the next line written; at debug level every one; none when info is off.
#include "refusal_log.h"

#include "log.h"

#include <doctest/doctest.h>

#include <cstdint>

using wsgw::RefusalLog;

namespace {

struct LevelGuard {
    explicit LevelGuard(wsgw::log::Level l) { wsgw::log::setMinLevel(l); }
    ~LevelGuard() { wsgw::log::setMinLevel(wsgw::log::Level::Info); }
};

}  // namespace

TEST_CASE("refusal lines: 10 a second at info, the next one says how many were left out") {
    LevelGuard level(wsgw::log::Level::Info);
    RefusalLog refusals;
    uint64_t notLogged = 99;
    int written = 0;
    for (int i = 0; i < 1000; ++i) {
        if (refusals.admit(100.0 + i * 0.0005, notLogged)) {  // 1,000 in half a second
            CHECK(notLogged == 0);
            ++written;
        }
    }
    CHECK(written == static_cast<int>(RefusalLog::kLinesPerSecond));
    REQUIRE(refusals.admit(101.0, notLogged));  // a second after the window opened
    CHECK(notLogged == 1000 - RefusalLog::kLinesPerSecond);
    REQUIRE(refusals.admit(101.1, notLogged));
    CHECK(notLogged == 0);
}

TEST_CASE("refusal lines: every one at debug level, none when info is off") {
    RefusalLog refusals;
    uint64_t notLogged = 0;
    {
        LevelGuard level(wsgw::log::Level::Debug);
        for (int i = 0; i < 100; ++i) CHECK(refusals.admit(5.0, notLogged));
    }
    LevelGuard level(wsgw::log::Level::Warn);
    CHECK_FALSE(refusals.admit(50.0, notLogged));
}
