// The C++ wrapper <wsgw/handler.hpp>, driven through the wsgw_handler descriptor it exports, the way the
// gateway calls a plugin, over a host API that records what it is asked: events reach the right
// method with their bodies, replies and refusals land in wsgw_response and outlive the method, and no
// exception crosses the C ABI (each becomes rc 1 and one error log line naming the method and what()).
#include <wsgw/handler.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// A host API whose functions record their calls in g_calls and answer from the fields below.
std::vector<std::string> g_calls;
std::string g_connectionJson = "{\"connectedAt\":\"2026-01-01T00:00:00.000Z\"}";
int g_answer = WSGW_OK;

wsgw_host *const kHost = reinterpret_cast<wsgw_host *>(0x1);

// Records one call and answers g_answer.
int recorded(std::string call) {
    g_calls.push_back(std::move(call));
    return g_answer;
}
std::string dataOf(const void *data, size_t len, int binary) {
    return std::string(static_cast<const char *>(data), len) + (binary ? " binary" : " text");
}

int fakePost(wsgw_host *h, const char *id, const void *data, size_t len, int binary) {
    return recorded(std::string("post ") + (h == kHost ? "" : "WRONG-HOST ") + id + " " + dataOf(data, len, binary));
}
int fakeDelete(wsgw_host *, const char *id) { return recorded(std::string("delete ") + id); }
long fakeGet(wsgw_host *, const char *id, char *buf, size_t cap) {
    recorded("get " + std::string(id) + " cap " + std::to_string(cap));
    if (std::string(id) == "unknown") return -1;
    if (cap > g_connectionJson.size()) std::memcpy(buf, g_connectionJson.c_str(), g_connectionJson.size() + 1);
    return static_cast<long>(g_connectionJson.size());
}
const char *fakeEventJson(wsgw_host *, const wsgw_event *ev, size_t *len) {
    static const std::string json = "{\"requestContext\":{}}";
    if (ev->route_key && std::string(ev->route_key) == "nojson") return nullptr;
    if (len) *len = json.size();
    return json.c_str();
}
void fakeLog(wsgw_host *, int level, const char *message) { recorded("log " + std::to_string(level) + " " + message); }
int fakeJoin(wsgw_host *, const char *group, const char *id) { return recorded(std::string("join ") + group + " " + id); }
int fakeLeave(wsgw_host *, const char *group, const char *id) { return recorded(std::string("leave ") + group + " " + id); }
int fakeSendGroup(wsgw_host *, const char *group, const void *data, size_t len, int binary) {
    return recorded(std::string("group ") + group + " " + dataOf(data, len, binary));
}
int fakeSendAll(wsgw_host *, const void *data, size_t len, int binary) { return recorded("all " + dataOf(data, len, binary)); }
int fakeSendUser(wsgw_host *, const char *user, const void *data, size_t len, int binary) {
    return recorded("user " + std::string(user) + " " + dataOf(data, len, binary));
}

wsgw_host_api fakeApi() {
    return {.size = sizeof(wsgw_host_api), .abi_version = WSGW_ABI_VERSION, .host = kHost, .post_to_connection = fakePost,
            .delete_connection = fakeDelete, .get_connection = fakeGet, .event_json = fakeEventJson, .log = fakeLog,
            .add_to_group = fakeJoin, .remove_from_group = fakeLeave, .send_to_group = fakeSendGroup,
            .send_to_all = fakeSendAll, .send_to_user = fakeSendUser};
}

bool hasLine(const std::string &prefix) {
    for (const auto &c : g_calls)
        if (c.rfind(prefix, 0) == 0) return true;
    return false;
}

int g_destroyed = 0;

// Does what the message says: "reply X", "binary", "empty", "throw X", "throw-int", "fail X", "json".
class Scripted : public wsgw::Handler {
public:
    Scripted(wsgw::Host host, std::string_view config) : Handler(host) {
        if (config == "{\"bad\":true}") throw std::invalid_argument("config says bad");
        config_ = config;
    }
    ~Scripted() override { ++g_destroyed; }

    void onConnect(const wsgw::Event &event, wsgw::Response &response) override {
        connects.push_back(std::string(event.connectionId()) + " " + std::string(event.routeKey()));
        if (event.connectionId() == "refuse") response.reject(401, "{\"message\":\"no key\"}");
        if (event.connectionId() == "relay") CHECK(response.relayTo("ws://127.0.0.1:1/x", "X-A: b\r\n"));
    }
    void onMessage(const wsgw::Event &event, std::string_view body, wsgw::Response &response) override {
        std::string text(body);
        if (text.rfind("reply ", 0) == 0) response.send(std::string(body.substr(6)));  // a temporary: copied
        if (text == "binary") response.send(std::string("\x00\x01", 2), true);
        if (text == "empty") response.send("");
        if (text.rfind("throw ", 0) == 0) throw std::runtime_error(text.substr(6));
        if (text == "throw-int") throw 42;
        if (text.rfind("fail ", 0) == 0) response.fail(text.substr(5));
        if (text == "json") response.send(std::string(event.json()) + (event.isBinary() ? " binary" : " text"));
        if (text == "config") response.send(config_);
    }
    void onDisconnect(const wsgw::Event &event) override {
        if (event.connectionId() == "throws") throw std::logic_error("at disconnect");
        disconnects.push_back(std::string(event.connectionId()));
    }

    std::vector<std::string> connects, disconnects;
    std::string config_;
};

}  // namespace

// The one export of this test binary, as a plugin would have it.
WSGW_HANDLER_CLASS(Scripted, "scripted")

namespace {

struct HandlerFixture {
    wsgw_host_api api = fakeApi();
    const wsgw_handler *desc = wsgw_handler_v1();
    void *state = nullptr;

    explicit HandlerFixture(const char *config = "{}") {
        g_calls.clear();
        g_answer = WSGW_OK;
        g_destroyed = 0;
        state = desc->init(&api, config);
    }
    ~HandlerFixture() { desc->shutdown(state); }

    Scripted &handler() { return *static_cast<Scripted *>(static_cast<wsgw::detail::Instance *>(state)->handler); }

    int event(wsgw_event_type type, const char *id, std::string_view body, wsgw_response &resp, const char *routeKey = "$default",
              bool binary = false) {
        wsgw_event ev{};
        ev.size = sizeof ev;
        ev.type = type;
        ev.route_key = routeKey;
        ev.connection_id = id;
        if (type == WSGW_MESSAGE) {
            ev.body = body.data();
            ev.body_len = body.size();
            ev.is_binary = binary;
        }
        resp = wsgw_response{};
        resp.size = sizeof resp;
        resp.status_code = 200;
        return desc->handle(state, &ev, &resp);
    }
    int message(std::string_view body, wsgw_response &resp, bool binary = false) {
        return event(WSGW_MESSAGE, "abc", body, resp, "$default", binary);
    }
};

}  // namespace

TEST_SUITE("handler_hpp") {
    TEST_CASE("the descriptor carries the ABI version, the name and all three entry points") {
        HandlerFixture f;
        CHECK(f.desc->size == sizeof(wsgw_handler));
        CHECK(f.desc->abi_version == WSGW_ABI_VERSION);
        CHECK(std::string(f.desc->name) == "scripted");
        CHECK((f.desc->init != nullptr));
        CHECK((f.desc->handle != nullptr));
        CHECK((f.desc->shutdown != nullptr));
        CHECK(f.handler().config_ == "{}");
    }

    TEST_CASE("each event type reaches its method; a message's body is the event's bytes") {
        HandlerFixture f;
        wsgw_response resp;
        CHECK(f.event(WSGW_CONNECT, "c1", {}, resp, "$connect") == 0);
        CHECK(f.handler().connects == std::vector<std::string>{"c1 $connect"});
        CHECK(resp.body == nullptr);  // untouched: accept, no body
        CHECK(resp.status_code == 200);
        CHECK(f.message("reply hi there", resp) == 0);
        REQUIRE(resp.body);
        CHECK(std::string(resp.body, resp.body_len) == "hi there");  // the temporary it was given is gone; the copy is not
        CHECK(resp.is_binary == 0);
        CHECK(f.event(WSGW_DISCONNECT, "c1", {}, resp, "$disconnect") == 0);
        CHECK(f.handler().disconnects == std::vector<std::string>{"c1"});
    }

    TEST_CASE("binary and empty replies: is_binary set, and an empty body is a non-NULL empty message") {
        HandlerFixture f;
        wsgw_response resp;
        CHECK(f.message("binary", resp) == 0);
        CHECK(std::string(resp.body, resp.body_len) == std::string("\x00\x01", 2));
        CHECK(resp.is_binary == 1);
        CHECK(f.message("empty", resp) == 0);
        CHECK(resp.body != nullptr);
        CHECK(resp.body_len == 0);
        CHECK(f.message("nothing", resp) == 0);
        CHECK(resp.body == nullptr);
    }

    TEST_CASE("a $connect refusal sets the status and the HTTP body; relayTo fills the backend fields") {
        HandlerFixture f;
        wsgw_response resp;
        CHECK(f.event(WSGW_CONNECT, "refuse", {}, resp, "$connect") == 0);
        CHECK(resp.status_code == 401);
        CHECK(std::string(resp.body, resp.body_len) == "{\"message\":\"no key\"}");
        CHECK(f.event(WSGW_CONNECT, "relay", {}, resp, "$connect") == 0);
        CHECK(std::string(resp.backend_url) == "ws://127.0.0.1:1/x");
        CHECK(std::string(resp.backend_headers) == "X-A: b\r\n");
    }

    TEST_CASE("relayTo answers false to a gateway whose wsgw_response has no backend fields") {
        wsgw_response old{};
        old.size = offsetof(wsgw_response, backend_url);
        wsgw::detail::ResponseBuffers buffers;
        wsgw::Response response(old, buffers);
        CHECK_FALSE(response.relayTo("ws://127.0.0.1:1/x"));
    }

    TEST_CASE("an exception out of a method is rc 1 and one error line naming the method and what()") {
        HandlerFixture f;
        wsgw_response resp;
        CHECK(f.message("throw no such thing", resp) == 1);
        CHECK(g_calls == std::vector<std::string>{"log 3 scripted::onMessage threw: no such thing"});
        g_calls.clear();
        CHECK(f.message("throw-int", resp) == 1);
        CHECK(g_calls == std::vector<std::string>{"log 3 scripted::onMessage threw: an exception that is not a std::exception"});
        g_calls.clear();
        CHECK(f.event(WSGW_DISCONNECT, "throws", {}, resp, "$disconnect") == 1);
        CHECK(g_calls == std::vector<std::string>{"log 3 scripted::onDisconnect threw: at disconnect"});
        CHECK(f.message("reply still here", resp) == 0);  // the instance lives on
    }

    TEST_CASE("Response::fail is an integration error without an exception, with its reason logged") {
        HandlerFixture f;
        wsgw_response resp;
        CHECK(f.message("fail out of stock", resp) == 1);
        CHECK(g_calls == std::vector<std::string>{"log 3 scripted::onMessage failed: out of stock"});
    }

    TEST_CASE("a constructor that throws: init still returns, every event fails, the reason is logged") {
        HandlerFixture f("{\"bad\":true}");
        CHECK(f.state != nullptr);
        CHECK(g_calls == std::vector<std::string>{"log 3 scripted constructor threw: config says bad"});
        wsgw_response resp;
        CHECK(f.message("reply x", resp) == 1);
        CHECK(hasLine("log 3 handler not constructed: config says bad"));
    }

    TEST_CASE("shutdown destroys the object; a NULL config is an empty object") {
        {
            HandlerFixture f(nullptr);
            CHECK(f.handler().config_ == "{}");
        }
        CHECK(g_destroyed == 1);
    }

    TEST_CASE("the event's JSON comes from event_json; none is an empty view") {
        HandlerFixture f;
        wsgw_response resp;
        CHECK(f.message("json", resp, true) == 0);
        CHECK(std::string(resp.body, resp.body_len) == "{\"requestContext\":{}} binary");
        CHECK(f.event(WSGW_MESSAGE, "abc", "json", resp, "nojson") == 0);
        CHECK(std::string(resp.body, resp.body_len) == " text");
    }

    TEST_CASE("Host passes NUL-terminated copies of string_views and returns the host's answer") {
        HandlerFixture f;
        wsgw_host_api api = fakeApi();
        wsgw::Host host(&api);
        std::string ids = "abcdef";
        std::string_view id = std::string_view(ids).substr(0, 3);  // "abc", not NUL-terminated in memory
        CHECK(host.post(id, "hello") == wsgw::Result::Ok);
        CHECK(host.post(id, std::string("\xff", 1), true) == wsgw::Result::Ok);
        g_answer = WSGW_GONE;
        CHECK(host.disconnect(id) == wsgw::Result::Gone);
        g_answer = WSGW_TOO_LARGE;
        CHECK(host.addToGroup("room", id) == wsgw::Result::TooLarge);
        g_answer = WSGW_OK;
        CHECK(host.removeFromGroup("room", id) == wsgw::Result::Ok);
        CHECK(host.sendToGroup("room", "x") == wsgw::Result::Ok);
        CHECK(host.sendToAll("y", true) == wsgw::Result::Ok);
        CHECK(host.sendToUser(std::string_view("alice!", 5), "z") == wsgw::Result::Ok);
        host.log(wsgw::LogLevel::Warn, std::string_view("careful!!", 7));
        CHECK(g_calls == std::vector<std::string>{"post abc hello text", "post abc \xff binary", "delete abc", "join room abc",
                                                  "leave room abc", "group room x text", "all y binary", "user alice z text",
                                                  "log 2 careful"});
    }

    TEST_CASE("Host::connection grows its buffer for a long JSON and is nullopt for an unknown connection") {
        HandlerFixture f;
        wsgw_host_api api = fakeApi();
        wsgw::Host host(&api);
        g_connectionJson = "{\"connectedAt\":\"" + std::string(1000, 'x') + "\"}";
        auto json = host.connection("abc");
        REQUIRE(json);
        CHECK(*json == g_connectionJson);
        CHECK(g_calls.size() == 2);  // one try at 256 bytes, one at the full length
        CHECK_FALSE(host.connection("unknown"));
        g_connectionJson = "{}";
        CHECK(host.connection("abc") == std::optional<std::string>("{}"));
    }

    TEST_CASE("without groups (or users) in the gateway's host API those methods answer Error and call nothing") {
        HandlerFixture f;
        wsgw_host_api api = fakeApi();
        api.size = offsetof(wsgw_host_api, add_to_group);  // a 0.2 gateway's table
        wsgw::Host host(&api);
        CHECK_FALSE(host.hasGroups());
        CHECK(host.addToGroup("room", "abc") == wsgw::Result::Error);
        CHECK(host.sendToGroup("room", "x") == wsgw::Result::Error);
        CHECK(host.sendToAll("x") == wsgw::Result::Error);
        CHECK(host.removeFromGroup("room", "abc") == wsgw::Result::Error);
        CHECK_FALSE(host.hasUsers());
        CHECK(host.sendToUser("alice", "x") == wsgw::Result::Error);
        CHECK(g_calls.empty());
    }
}
