// Access-log lines: one JSON object named after AWS's $context variables, and the writer delivering every
// line whole to its file.
#include "access_log.h"
#include "utf8.h"

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace wsgw;

TEST_SUITE("access_log") {
    TEST_CASE("a line carries AWS's $context names") {
        AccessEntry e;
        e.eventType = "MESSAGE";
        e.requestId = "req1";
        e.connectionId = "conn1";
        e.routeKey = "sendmessage";
        e.messageId = "msg1";
        e.sourceIp = "127.0.0.1";
        e.userAgent = "wscat \"1\"";
        e.status = 500;
        e.integrationLatencyMs = 12;
        e.requestTimeEpochMs = 1763800001234;
        e.error = "handler returned 1";
        rapidjson::Document d;
        d.Parse(accessLogLine(e).c_str());
        REQUIRE(d.IsObject());
        CHECK(std::string(d["msg"].GetString()) == "access");
        CHECK(d.HasMember("time"));
        CHECK(std::string(d["requestId"].GetString()) == "req1");
        CHECK(std::string(d["connectionId"].GetString()) == "conn1");
        CHECK(std::string(d["eventType"].GetString()) == "MESSAGE");
        CHECK(std::string(d["routeKey"].GetString()) == "sendmessage");
        CHECK(d["status"].GetInt() == 500);
        CHECK(d["integrationLatency"].GetInt() == 12);
        CHECK(std::string(d["messageId"].GetString()) == "msg1");
        CHECK(std::string(d["requestTime"].GetString()) == "22/Nov/2025:08:26:41 +0000");
        CHECK(d["requestTimeEpoch"].GetInt64() == 1763800001234);
        CHECK(std::string(d["sourceIp"].GetString()) == "127.0.0.1");
        CHECK(std::string(d["userAgent"].GetString()) == "wscat \"1\"");
        CHECK(std::string(d["error"].GetString()) == "handler returned 1");
        CHECK_FALSE(d.HasMember("disconnectStatusCode"));
    }

    TEST_CASE("no handler ran: integrationLatency is null; a disconnect has its close code") {
        AccessEntry e;
        e.eventType = "DISCONNECT";
        e.disconnectStatusCode = 1001;
        rapidjson::Document d;
        d.Parse(accessLogLine(e).c_str());
        CHECK(d["integrationLatency"].IsNull());
        CHECK(d["disconnectStatusCode"].GetInt() == 1001);
    }

    TEST_CASE("bytes a client sent that are not UTF-8 become U+FFFD: the line stays valid JSON and UTF-8") {
        AccessEntry e;
        e.eventType = "CONNECT";
        const std::string agent("curl\xff\xfe/8\xc3", 9), error("bad\x01\n", 5);  // the entry holds views
        e.userAgent = agent;
        e.error = error;
        std::string line = accessLogLine(e);
        CHECK(isValidUtf8(line.data(), line.size()));
        rapidjson::Document d;
        d.Parse(line.c_str());
        REQUIRE(d.IsObject());
        CHECK(std::string(d["userAgent"].GetString()) == "curl\xEF\xBF\xBD\xEF\xBF\xBD/8\xEF\xBF\xBD");
        CHECK(std::string(d["error"].GetString()) == "bad\x01\n");
    }

    TEST_CASE("the writer appends every line whole to a file") {
        char path[] = "/tmp/wsgw-access-XXXXXX";
        int fd = mkstemp(path);
        REQUIRE(fd >= 0);
        close(fd);
        {
            auto opened = AccessLog::open(path);
            REQUIRE(std::holds_alternative<std::unique_ptr<AccessLog>>(opened));
            auto &log = std::get<std::unique_ptr<AccessLog>>(opened);
            std::string id(300, 'x');
            AccessEntry e;
            e.connectionId = id;  // long lines: batches cross the 4096-byte write size
            for (int i = 0; i < 2000; ++i) log->write(e);
            log->flush();
        }
        std::ifstream in(path);
        std::string line;
        int lines = 0;
        while (std::getline(in, line)) {
            rapidjson::Document d;
            d.Parse(line.c_str());
            REQUIRE_MESSAGE(d.IsObject(), line);
            ++lines;
        }
        CHECK(lines == 2000);
        std::remove(path);
    }

    TEST_CASE("an unwritable file is refused with what to do") {
        auto opened = AccessLog::open("/nonexistent-dir/access.log");
        REQUIRE(std::holds_alternative<std::string>(opened));
        CHECK(std::get<std::string>(opened).find("stdout") != std::string::npos);
    }
}
