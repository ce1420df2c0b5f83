#include "options.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace wsgw;

namespace {
// The error parseOptions gives for these arguments (after the program name), or "" when they parse.
std::string errorOfArgs(std::vector<const char *> args) {
    args.insert(args.begin(), "wsgw");
    auto r = parseOptions(static_cast<int>(args.size()), args.data(), "handlers");
    if (auto *err = std::get_if<std::string>(&r)) return *err;
    return "";
}
}  // namespace

TEST_SUITE("options") {
    TEST_CASE("an IPv6 address without brackets is refused with the bracketed form to write") {
        CHECK(errorOfArgs({"--listen", "::1"}) ==
              "--listen: '::1' is an IPv6 address without a port: write it in brackets, [::1]:PORT, e.g. [::1]:8080");
        CHECK(errorOfArgs({"--management-listen", "::1:9001"}) ==
              "--management-listen: '::1:9001' has an IPv6 address without brackets: write [::1]:9001 "
              "(or [::1:9001]:PORT if all of it is the address)");
        CHECK(errorOfArgs({"--listen", "fe80::1%x:80"}) ==
              "--listen: 'fe80::1%x:80' is not HOST:PORT: write an IPv6 address in brackets, [IPV6]:PORT, e.g. [::1]:8080");
        // The bracketed form, and IPv4 and port-only forms, still parse.
        for (const char *good : {"[::1]:8080", "127.0.0.1:8080", ":8080", "8080"}) {
            CAPTURE(good);
            CHECK(errorOfArgs({"--listen", good}) == "");
            auto hp = parseHostPort(good, "--listen");
            REQUIRE(std::holds_alternative<HostPort>(hp));
            CHECK(std::get<HostPort>(hp).port == 8080);
        }
        CHECK(std::get<HostPort>(parseHostPort("[::1]:8080", "--listen")).host == "::1");
    }

    TEST_CASE("the public and management listeners on one port of overlapping addresses are refused before binding") {
        const std::string clash = "the management API needs a port of its own";
        struct Case { const char *listen, *management; bool clashes; };
        Case cases[] = {
            {"127.0.0.1:9001", "127.0.0.1:9001", true},
            {"0.0.0.0:9001", "127.0.0.1:9001", true},   // the IPv4 wildcard takes every IPv4 address
            {"127.0.0.1:8080", "0.0.0.0:8080", true},
            {"[::]:9001", "127.0.0.1:9001", true},      // the IPv6 wildcard is dual-stack
            {"localhost:9001", "127.0.0.1:9001", true},  // localhost binds 127.0.0.1
            {"[::ffff:127.0.0.1]:9001", "127.0.0.1:9001", true},
            {"[::1]:9001", "[::1]:9001", true},
            {"127.0.0.1:0", "127.0.0.1:0", false},       // port 0: a free port each
            {"127.0.0.1:8080", "127.0.0.1:9001", false},
            {"127.0.0.2:9001", "127.0.0.1:9001", false},
            {"0.0.0.0:9001", "[::1]:9001", false},
        };
        for (const auto &c : cases) {
            CAPTURE(c.listen);
            CAPTURE(c.management);
            std::string err = errorOfArgs({"--listen", c.listen, "--management-listen", c.management});
            if (c.clashes) CHECK_MESSAGE(err.find(clash) != std::string::npos, err);
            else CHECK(err == "");
        }
        CHECK(errorOfArgs({"--listen", "127.0.0.1:9001", "--management-listen", "127.0.0.1:9001"}) ==
              "--management-listen 127.0.0.1:9001: port 9001 is the public listener's (--listen 127.0.0.1:9001); the "
              "management API needs a port of its own: choose another with --management-listen (or move the public "
              "listener with --listen)");
        // The default public listener (0.0.0.0:8080) counts too; "off" has no port.
        CHECK(errorOfArgs({"--management-listen", "127.0.0.1:8080"}).find(clash) != std::string::npos);
        CHECK(errorOfArgs({"--listen", "127.0.0.1:9001", "--management-listen", "off"}) == "");
    }

    // A flag of whole seconds: its default, a value given, and the answer to values out of range or not numbers.
    void checkSecondsFlag(const char *flag, int Options::*field, int fallback, int shorter, const char *tooHigh, const std::string &range) {
        const char *none[] = {"wsgw"};
        CHECK(std::get<Options>(parseOptions(1, none, "handlers")).*field == fallback);
        std::string given = std::to_string(shorter);
        const char *args[] = {"wsgw", flag, given.c_str()};
        CHECK(std::get<Options>(parseOptions(3, args, "handlers")).*field == shorter);
        for (const char *bad : {"0", tooHigh, "", "2s", "-1"}) {
            CAPTURE(bad);
            CHECK(errorOfArgs({flag, bad}) == std::string(flag) + ": expected " + range + " seconds, got '" + bad + "'");
        }
    }

    TEST_CASE("--cluster-node-ttl: 5 s unless given, 1 to 300 seconds") {
        checkSecondsFlag("--cluster-node-ttl", &Options::clusterNodeTtl, 5, 2, "301", "1 to 300");
    }

    TEST_CASE("--management-request-timeout: 15 s unless given, 1 to 3600 seconds") {
        checkSecondsFlag("--management-request-timeout", &Options::managementRequestTimeout, 15, 3, "3601", "1 to 3600");
    }
}
