// The host API's argument checks and exception barrier (invoke/host_api_checks), through the C function
// pointers a plugin calls: what a plugin may not pass never reaches the side's operations, what it may
// pass does, and nothing a side throws crosses the C ABI. Also the in-process side's entry points for a
// plugin that passes no wsgw_host.
#include "host_api.h"
#include "host_api_checks.h"

#include <doctest/doctest.h>

#include <new>
#include <stdexcept>
#include <string>
#include <vector>

using namespace wsgw;

namespace {

// Records every call that got through; throws from every operation when told to.
struct RecordingOperations final : HostOperations {
    std::vector<std::string> calls;
    bool throwing = false;
    std::string description = "{\"connectionId\":\"abc\"}";

    void record(std::string call) {
        if (throwing) throw std::bad_alloc();
        calls.push_back(std::move(call));
    }
    int post(const char *id, std::string_view data, bool binary) override {
        record("post " + std::string(id) + " " + std::string(data) + (binary ? " binary" : " text"));
        return WSGW_OK;
    }
    int deleteConnection(const char *id) override {
        record("delete " + std::string(id));
        return WSGW_GONE;
    }
    bool describe(const char *id, std::string &json) override {
        record("describe " + std::string(id));
        if (std::string(id) == "unknown") return false;
        json = description;
        return true;
    }
    const char *eventJson(const wsgw_event &, size_t *len) override {
        record("eventJson");
        if (len) *len = 2;
        return "{}";
    }
    void log(int level, const char *message) override { record("log " + std::to_string(level) + " " + message); }
    int addToGroup(const char *group, const char *id) override {
        record("join " + std::string(group) + " " + id);
        return WSGW_OK;
    }
    int removeFromGroup(const char *group, const char *id) override {
        record("leave " + std::string(group) + " " + id);
        return WSGW_OK;
    }
    int sendToGroup(const char *group, std::string_view data, bool binary) override {
        record("group " + std::string(group) + " " + std::string(data) + (binary ? " binary" : " text"));
        return WSGW_OK;
    }
    int sendToAll(std::string_view data, bool binary) override {
        record("all " + std::string(data) + (binary ? " binary" : " text"));
        return WSGW_TOO_LARGE;
    }
#ifdef WSGW_HOST_API_HAS_USERS
    int sendToUser(const char *user, std::string_view data, bool binary) override {
        record("user " + std::string(user) + " " + std::string(data) + (binary ? " binary" : " text"));
        return WSGW_OK;
    }
#endif
};

RecordingOperations *g_recording = nullptr;
HostOperations *recordingOf(wsgw_host *h) { return h ? g_recording : nullptr; }

// A filled-in wsgw_host_api over a fresh RecordingOperations; `host` is any non-NULL opaque pointer.
struct ChecksFixture {
    RecordingOperations ops;
    wsgw_host_api api{};
    wsgw_host *host = reinterpret_cast<wsgw_host *>(&ops);
    ChecksFixture() {
        g_recording = &ops;
        fillHostApi<recordingOf>(api, host);
    }
    ~ChecksFixture() { g_recording = nullptr; }
};

}  // namespace

TEST_SUITE("host_api_checks") {
    TEST_CASE("the filled-in table says its size and ABI version and carries the host pointer") {
        ChecksFixture f;
        CHECK(f.api.size == sizeof(wsgw_host_api));
        CHECK(f.api.abi_version == WSGW_ABI_VERSION);
        CHECK(f.api.host == f.host);
        CHECK(WSGW_HOST_API_HAS_GROUPS(&f.api));
    }

    TEST_CASE("valid arguments reach the operations with the side's answer returned") {
        ChecksFixture f;
        CHECK(f.api.post_to_connection(f.host, "abc", "hi", 2, 0) == WSGW_OK);
        CHECK(f.api.post_to_connection(f.host, "abc", "\x01", 1, 7) == WSGW_OK);  // any non-zero is binary
        CHECK(f.api.post_to_connection(f.host, "abc", nullptr, 0, 0) == WSGW_OK);  // NULL with length 0: empty
        CHECK(f.api.delete_connection(f.host, "abc") == WSGW_GONE);
        CHECK(f.api.add_to_group(f.host, "room", "abc") == WSGW_OK);
        CHECK(f.api.remove_from_group(f.host, "room", "abc") == WSGW_OK);
        CHECK(f.api.send_to_group(f.host, "room", "x", 1, 0) == WSGW_OK);
        CHECK(f.api.send_to_all(f.host, "y", 1, 1) == WSGW_TOO_LARGE);
        f.api.log(f.host, WSGW_LOG_WARN, "careful");
        f.api.log(f.host, WSGW_LOG_INFO, nullptr);  // a NULL message is an empty line
        CHECK(f.ops.calls == std::vector<std::string>{"post abc hi text", "post abc \x01 binary", "post abc  text", "delete abc",
                                                      "join room abc", "leave room abc", "group room x text", "all y binary",
                                                      "log 2 careful", "log 1 "});
    }

    TEST_CASE("NULL connection IDs, groups and data with a length are refused before the operations") {
        ChecksFixture f;
        CHECK(f.api.post_to_connection(f.host, nullptr, "hi", 2, 0) == WSGW_ERROR);
        CHECK(f.api.post_to_connection(f.host, "abc", nullptr, 2, 0) == WSGW_ERROR);
        CHECK(f.api.delete_connection(f.host, nullptr) == WSGW_ERROR);
        CHECK(f.api.get_connection(f.host, nullptr, nullptr, 0) == -1);
        CHECK(f.api.add_to_group(f.host, nullptr, "abc") == WSGW_ERROR);
        CHECK(f.api.add_to_group(f.host, "room", nullptr) == WSGW_ERROR);
        CHECK(f.api.remove_from_group(f.host, nullptr, "abc") == WSGW_ERROR);
        CHECK(f.api.remove_from_group(f.host, "room", nullptr) == WSGW_ERROR);
        CHECK(f.api.send_to_group(f.host, nullptr, "x", 1, 0) == WSGW_ERROR);
        CHECK(f.api.send_to_group(f.host, "room", nullptr, 1, 0) == WSGW_ERROR);
        CHECK(f.api.send_to_all(f.host, nullptr, 1, 0) == WSGW_ERROR);
        CHECK(f.api.event_json(f.host, nullptr, nullptr) == nullptr);
        CHECK(f.ops.calls.empty());
    }

    TEST_CASE("send_to_group refuses the empty group name: every connection is send_to_all's to ask for") {
        ChecksFixture f;
        CHECK(f.api.send_to_group(f.host, "", "x", 1, 0) == WSGW_ERROR);
        CHECK(f.ops.calls.empty());
    }

    TEST_CASE("no operations behind the host pointer fails every call like a bad argument") {
        ChecksFixture f;
        wsgw_event ev{};
        CHECK(f.api.post_to_connection(nullptr, "abc", "hi", 2, 0) == WSGW_ERROR);
        CHECK(f.api.delete_connection(nullptr, "abc") == WSGW_ERROR);
        CHECK(f.api.get_connection(nullptr, "abc", nullptr, 0) == -1);
        CHECK(f.api.event_json(nullptr, &ev, nullptr) == nullptr);
        CHECK(f.api.add_to_group(nullptr, "room", "abc") == WSGW_ERROR);
        CHECK(f.api.send_to_all(nullptr, "y", 1, 0) == WSGW_ERROR);
        f.api.log(nullptr, WSGW_LOG_ERROR, "lost");
        CHECK(f.ops.calls.empty());
    }

    TEST_CASE("get_connection returns the full length, copies what fits and terminates only a whole copy") {
        ChecksFixture f;
        const std::string json = f.ops.description;
        CHECK(f.api.get_connection(f.host, "abc", nullptr, 0) == static_cast<long>(json.size()));
        std::vector<char> small(5, '#');
        CHECK(f.api.get_connection(f.host, "abc", small.data(), small.size()) == static_cast<long>(json.size()));
        CHECK(std::string(small.data(), small.size()) == json.substr(0, 5));
        std::vector<char> exact(json.size(), '#');  // no room for the NUL: not terminated
        f.api.get_connection(f.host, "abc", exact.data(), exact.size());
        CHECK(std::string(exact.data(), exact.size()) == json);
        std::vector<char> roomy(json.size() + 1, '#');
        f.api.get_connection(f.host, "abc", roomy.data(), roomy.size());
        CHECK(std::string(roomy.data()) == json);
        CHECK(f.api.get_connection(f.host, "unknown", roomy.data(), roomy.size()) == -1);
    }

    TEST_CASE("whatever the operations throw becomes the call's error value") {
        ChecksFixture f;
        f.ops.throwing = true;
        wsgw_event ev{};
        char buf[8];
        std::string json;
        CHECK(f.api.post_to_connection(f.host, "abc", "hi", 2, 0) == WSGW_ERROR);
        CHECK(f.api.delete_connection(f.host, "abc") == WSGW_ERROR);
        CHECK(f.api.get_connection(f.host, "abc", buf, sizeof buf) == -1);
        CHECK_FALSE(checkedDescribe(&f.ops, "abc", json));
        CHECK(f.api.event_json(f.host, &ev, nullptr) == nullptr);
        CHECK(f.api.add_to_group(f.host, "room", "abc") == WSGW_ERROR);
        CHECK(f.api.remove_from_group(f.host, "room", "abc") == WSGW_ERROR);
        CHECK(f.api.send_to_group(f.host, "room", "x", 1, 0) == WSGW_ERROR);
        CHECK(f.api.send_to_all(f.host, "y", 1, 0) == WSGW_ERROR);
        f.api.log(f.host, WSGW_LOG_INFO, "dropped");  // returns: a lost log line fails nothing
    }

    TEST_CASE("the in-process host API: a NULL wsgw_host fails what needs one, a stranger's event has no JSON") {
        HostContext ctx;
        wsgw_host host;
        initHostApi(host, &ctx, "probe");
        CHECK(host.api.host == &host);
        CHECK(host.api.post_to_connection(nullptr, "abc", "hi", 2, 0) == WSGW_ERROR);
        CHECK(host.api.delete_connection(nullptr, "abc") == WSGW_ERROR);
        CHECK(host.api.get_connection(nullptr, "abc", nullptr, 0) == -1);
        CHECK(host.api.add_to_group(nullptr, "room", "abc") == WSGW_ERROR);
        CHECK(host.api.send_to_group(nullptr, "room", "x", 1, 0) == WSGW_ERROR);
        CHECK(host.api.send_to_all(nullptr, "y", 1, 0) == WSGW_ERROR);
        wsgw_event own{};  // not an invocation the gateway runs: never read past its address
        CHECK(host.api.event_json(&host, &own, nullptr) == nullptr);
        CHECK(host.api.event_json(nullptr, &own, nullptr) == nullptr);
        host.api.log(nullptr, WSGW_LOG_DEBUG, "no host, still a line");
    }
}
