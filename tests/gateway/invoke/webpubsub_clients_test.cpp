// Azure Web PubSub on one node (docs/webpubsub.md) against a recording ConnectionControl: what an Azure client,
// a reliable one and a plain AWS-style connection each receive from group sends, pushes and user sends;
// client requests with their acks (permissions, Duplicate, noEcho); the outbox bound; and the REST
// operations' effects and statuses.
#include "webpubsub_clients.h"
#include "webpubsub_token.h"

#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include <map>

using namespace wsgw;

namespace {

struct Frame {
    std::string data;
    bool binary;
};

class RecordingControl : public ConnectionControl {
public:
    std::map<std::string, std::vector<Frame>> frames;
    std::map<std::string, std::pair<int, std::string>> closed;
    const ConnectionRegistry *registry = nullptr;
    // As the network threads do: a connection that is not open (or closing) takes no frame.
    bool sendFrame(const std::string &id, std::string data, bool binary) override {
        if (closed.count(id) || !registry->find(id)) return false;
        frames[id].push_back({std::move(data), binary});
        return true;
    }
    bool sendShared(const std::string &id, std::shared_ptr<const std::string> payload, bool binary) override {
        return sendFrame(id, *payload, binary);
    }
    void resumeReading(const std::string &) override {}
    void closeConnection(const std::string &id, int code, std::string reason) override { closed[id] = {code, reason}; }
    void connectDecided(const std::string &, int, std::string) override {}
};

struct Node {
    ConnectionRegistry registry;
    RecordingControl control;
    HostContext ctx;
    Node() {
        ctx.registry = &registry;
        ctx.control = &control;
        control.registry = &registry;
    }
    void open(const std::string &id) {
        auto c = std::make_shared<LiveConnection>();
        c->info.connectionId = id;
        c->upgraded = true;
        registry.add(c);
    }
    std::shared_ptr<WpsClientState> azure(const std::string &id, const std::string &user, WpsSubprotocol p,
                                          std::vector<std::string> roles = {}, std::vector<std::string> groups = {}) {
        open(id);
        auto s = std::make_shared<WpsClientState>();
        s->connectionId = id;
        s->hub = "chat";
        s->userId = user;
        s->subprotocol = p;
        s->permissions.addRoles(roles);
        if (p == WpsSubprotocol::ReliableJson) {
            s->reconnectionToken = "tok";
            s->outbox = std::make_unique<WpsReliableOutbox>(ctx.maxSendQueueBytes.load());
        }
        REQUIRE(wpsClientOpened(ctx, s, groups) == WSGW_OK);
        return s;
    }
    std::vector<Frame> take(const std::string &id) {
        auto out = std::move(control.frames[id]);
        control.frames[id].clear();
        return out;
    }
};

rapidjson::Document parsedJson(const std::string &text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    REQUIRE_MESSAGE(!d.HasParseError(), text);
    return d;
}

WpsClientMessage message(std::string_view frame) {
    auto r = parseWpsClientMessage(frame);
    REQUIRE(std::holds_alternative<WpsClientMessage>(r));
    return std::get<WpsClientMessage>(r);
}

std::string str(const rapidjson::Value &v) { return std::string(v.GetString(), v.GetStringLength()); }

}  // namespace

TEST_SUITE("webpubsub clients") {
    TEST_CASE("connected: the system message, with the reconnection token on the reliable subprotocol only") {
        Node n;
        n.azure("a", "alice", WpsSubprotocol::Json);
        n.azure("r", "", WpsSubprotocol::ReliableJson);
        n.azure("p", "paul", WpsSubprotocol::None);
        auto a = n.take("a");
        REQUIRE(a.size() == 1);
        auto c = parsedJson(a[0].data);
        CHECK(str(c["event"]) == "connected");
        CHECK(str(c["userId"]) == "alice");
        CHECK_FALSE(c.HasMember("reconnectionToken"));
        CHECK(parsedJson(n.take("r")[0].data).HasMember("reconnectionToken"));
        CHECK(n.take("p").empty());  // a plain WebSocket client of the hub gets no protocol messages
    }

    TEST_CASE("joinGroup needs the role; sendToGroup reaches Azure and AWS-style members, each in its own form") {
        Node n;
        auto alice = n.azure("a", "alice", WpsSubprotocol::Json, {"webpubsub.joinLeaveGroup.lobby", "webpubsub.sendToGroup"});
        auto bob = n.azure("b", "bob", WpsSubprotocol::Json);
        n.open("aws");
        REQUIRE(addToGroup(n.ctx, "lobby", "aws") == WSGW_OK);
        n.take("a");
        n.take("b");

        wpsHandleClientMessage(n.ctx, *bob, message(R"({"type":"joinGroup","group":"lobby","ackId":1})"));
        auto refused = parsedJson(n.take("b").at(0).data);
        CHECK_FALSE(refused["success"].GetBool());
        CHECK(str(refused["error"]["name"]) == "Forbidden");
        CHECK(str(refused["error"]["message"]).find("webpubsub.joinLeaveGroup") != std::string::npos);

        wpsHandleClientMessage(n.ctx, *alice, message(R"({"type":"joinGroup","group":"lobby","ackId":1})"));
        CHECK(parsedJson(n.take("a").at(0).data)["success"].GetBool());
        wpsHandleClientMessage(n.ctx, *alice, message(R"({"type":"joinGroup","group":"other","ackId":2})"));
        CHECK(str(parsedJson(n.take("a").at(0).data)["error"]["name"]) == "Forbidden");  // the role names lobby only

        wpsHandleClientMessage(n.ctx, *alice, message(R"({"type":"sendToGroup","group":"lobby","ackId":3,"dataType":"json","data":{"x":1}})"));
        auto toAlice = n.take("a");
        REQUIRE(toAlice.size() == 2);  // her own message (no noEcho), then the ack
        auto echoed = parsedJson(toAlice[0].data);
        CHECK(str(echoed["from"]) == "group");
        CHECK(str(echoed["group"]) == "lobby");
        CHECK(str(echoed["fromUserId"]) == "alice");
        CHECK(echoed["data"]["x"].GetInt() == 1);
        CHECK(parsedJson(toAlice[1].data)["ackId"].GetInt() == 3);
        auto toAws = n.take("aws");
        REQUIRE(toAws.size() == 1);
        CHECK(toAws[0].data == R"({"x":1})");  // the AWS-style member gets the data itself
        CHECK_FALSE(toAws[0].binary);
        CHECK(n.take("b").empty());  // not a member

        wpsHandleClientMessage(n.ctx, *alice, message(R"({"type":"sendToGroup","group":"lobby","ackId":4,"noEcho":true,"dataType":"text","data":"hi"})"));
        auto noEcho = n.take("a");
        REQUIRE(noEcho.size() == 1);  // just the ack
        CHECK(parsedJson(noEcho[0].data)["success"].GetBool());
        CHECK(n.take("aws").at(0).data == "hi");
    }

    TEST_CASE("a repeated ackId is answered Duplicate and not done again; ping gets pong") {
        Node n;
        auto alice = n.azure("a", "alice", WpsSubprotocol::Json, {"webpubsub.sendToGroup"});
        n.open("aws");
        addToGroup(n.ctx, "g", "aws");
        n.take("a");
        auto send = message(R"({"type":"sendToGroup","group":"g","ackId":7,"dataType":"text","data":"once"})");
        wpsHandleClientMessage(n.ctx, *alice, send);
        wpsHandleClientMessage(n.ctx, *alice, send);
        CHECK(n.take("aws").size() == 1);
        auto acks = n.take("a");
        REQUIRE(acks.size() == 2);
        CHECK(str(parsedJson(acks[1].data)["error"]["name"]) == "Duplicate");
        CHECK(wpsHandleClientMessage(n.ctx, *alice, message(R"({"type":"ping"})")) == WpsNext::Done);
        CHECK(n.take("a").at(0).data == R"({"type":"pong"})");
        CHECK(wpsHandleClientMessage(n.ctx, *alice, message(R"({"type":"event","event":"e","ackId":8,"dataType":"text","data":""})")) == WpsNext::Route);
        CHECK(wpsHandleClientMessage(n.ctx, *alice, message(R"({"type":"event","event":"e","ackId":8,"dataType":"text","data":""})")) == WpsNext::Done);
    }

    TEST_CASE("reliable: numbered messages, freed by sequenceAck, kept while detached, bounded for a client that never acks") {
        Node n;
        n.ctx.maxSendQueueBytes = 4096;
        auto r = n.azure("r", "", WpsSubprotocol::ReliableJson);
        n.take("r");
        for (int i = 0; i < 3; ++i) REQUIRE(postLocal(n.ctx, "r", "m" + std::to_string(i), false) == WSGW_OK);
        auto got = n.take("r");
        REQUIRE(got.size() == 3);
        CHECK(parsedJson(got[2].data)["sequenceId"].GetInt() == 3);
        CHECK(str(parsedJson(got[2].data)["from"]) == "server");
        CHECK(r->outbox->count() == 3);
        wpsHandleClientMessage(n.ctx, *r, message(R"({"type":"sequenceAck","sequenceId":2})"));
        CHECK(r->outbox->count() == 1);
        {
            std::lock_guard lock(r->mutex);
            r->detached = true;
        }
        REQUIRE(postLocal(n.ctx, "r", "while away", false) == WSGW_OK);
        CHECK(n.take("r").empty());
        CHECK(r->outbox->count() == 2);
        std::string big(1000, 'x');
        int accepted = 0;
        while (postLocal(n.ctx, "r", big, false) == WSGW_OK && accepted < 100) ++accepted;
        CHECK(accepted < 5);
        // Over the bound while away: no socket to close, but the connection cannot be recovered any more.
        CHECK(r->lostWhileDetached);
        CHECK_FALSE(n.control.closed.count("r"));
        {
            std::lock_guard lock(r->mutex);
            r->detached = false;
        }
        CHECK(postLocal(n.ctx, "r", big, false) == WSGW_GONE);  // over the bound while connected: closed
        REQUIRE(n.control.closed.count("r"));
        CHECK(n.control.closed["r"].first == 1008);
        CHECK(n.control.closed["r"].second == kSlowConsumerReason);
    }

    TEST_CASE("the shared table of detached connections: resumed once with the right token, or expired") {
        WebPubSubClients clients;
        auto live = std::make_shared<LiveConnection>();
        live->info.connectionId = "r";
        clients.detach("r", live, "tok", 1000, 5000);
        CHECK(clients.detachedCount() == 1);
        WpsRecoveryWindow::Resume why;
        CHECK_FALSE(clients.resume("r", "nope", 2000, &why));
        CHECK(why == WpsRecoveryWindow::Resume::WrongToken);
        CHECK(clients.resume("r", "tok", 2000, &why) == live);
        CHECK_FALSE(clients.resume("r", "tok", 2000, &why));  // once
        clients.detach("r", live, "tok2", 3000, 5000);
        CHECK(clients.expire(7999).empty());
        auto ended = clients.expire(8000);
        REQUIRE(ended.size() == 1);
        CHECK(ended[0] == live);
        CHECK(clients.detachedCount() == 0);
    }

    TEST_CASE("users: every connection of a user, its internal group out of reach of the group calls") {
        Node n;
        n.azure("a1", "alice", WpsSubprotocol::Json);
        n.azure("a2", "alice", WpsSubprotocol::None);
        n.azure("b", "bob", WpsSubprotocol::Json);
        n.take("a1");
        n.take("b");
        REQUIRE(sendToUser(n.ctx, "alice", "hello", 5, false) == WSGW_OK);
        CHECK(str(parsedJson(n.take("a1").at(0).data)["data"]) == "hello");
        CHECK(n.take("a2").at(0).data == "hello");
        CHECK(n.take("b").empty());
        std::string group = wpsUserGroup("alice");
        CHECK(isWpsUserGroup(group));
        CHECK(addToGroup(n.ctx, group, "b") == WSGW_ERROR);
        CHECK(sendToGroup(n.ctx, group, "x", 1, false) == WSGW_ERROR);
        CHECK(wpsUserGroup(std::string(200, 'u')).rfind("~userh.", 0) == 0);
    }

    TEST_CASE("REST: sends, existence, groups of connections and users, permissions, tokens") {
        Node n;
        WebPubSubSpec spec;
        spec.hubs = {"chat"};
        spec.accessKeys = {"0123456789abcdefghijklmnopqrstuvwxyzABCD"};
        auto alice = n.azure("a", "alice", WpsSubprotocol::Json);
        n.open("aws");
        n.take("a");
        auto run = [&](std::string_view method, std::string target, std::string_view type = "", std::string_view body = "") {
            target += target.find('?') == std::string::npos ? "?api-version=2024-12-01" : "&api-version=2024-12-01";
            auto routed = routeWpsRest({method, target, type, body});
            REQUIRE_MESSAGE(std::holds_alternative<WpsRestOperation>(routed), target);
            return performWpsRest(n.ctx, spec, std::get<WpsRestOperation>(routed), "127.0.0.1:8080", 1000);
        };
        CHECK(run("HEAD", "/api/hubs/chat/connections/a").status == 200);
        CHECK(run("HEAD", "/api/hubs/chat/connections/zz").status == 404);
        CHECK(run("HEAD", "/api/hubs/chat/users/alice").status == 200);
        CHECK(run("HEAD", "/api/hubs/chat/users/nobody").status == 404);
        CHECK(run("HEAD", "/api/hubs/chat/groups/g").status == 404);
        CHECK(run("PUT", "/api/hubs/chat/groups/g/connections/aws").status == 200);
        CHECK(run("PUT", "/api/hubs/chat/users/alice/groups/g").status == 200);
        CHECK(run("HEAD", "/api/hubs/chat/groups/g").status == 200);
        CHECK(run("PUT", "/api/hubs/chat/groups/g/connections/zz").status == 404);
        auto list = run("GET", "/api/hubs/chat/groups/g/connections");
        CHECK(list.body.find("\"userId\":\"alice\"") != std::string::npos);

        CHECK(run("POST", "/api/hubs/chat/groups/g/:send", "application/json", R"({"n":2})").status == 202);
        auto toAlice = parsedJson(n.take("a").at(0).data);
        CHECK(str(toAlice["from"]) == "server");
        CHECK(str(toAlice["dataType"]) == "json");
        CHECK(toAlice["data"]["n"].GetInt() == 2);
        CHECK(n.take("aws").at(0).data == R"({"n":2})");
        CHECK(run("POST", "/api/hubs/chat/:send?excluded=aws", "text/plain", "all").status == 202);
        CHECK(n.take("aws").empty());
        CHECK(str(parsedJson(n.take("a").at(0).data)["data"]) == "all");
        CHECK(run("POST", "/api/hubs/chat/connections/zz/:send", "text/plain", "x").status == 404);
        n.ctx.maxMessageBytes = 4;
        CHECK(run("POST", "/api/hubs/chat/:send", "text/plain", "too long").status == 413);
        n.ctx.maxMessageBytes = 131072;

        CHECK(run("DELETE", "/api/hubs/chat/users/alice/groups/g").status == 204);
        CHECK(run("DELETE", "/api/hubs/chat/groups/g/connections/aws").status == 204);
        CHECK(run("HEAD", "/api/hubs/chat/groups/g").status == 404);

        CHECK(run("HEAD", "/api/hubs/chat/permissions/sendToGroup/connections/a?targetName=g").status == 404);
        CHECK(run("PUT", "/api/hubs/chat/permissions/sendToGroup/connections/a?targetName=g").status == 200);
        CHECK(run("HEAD", "/api/hubs/chat/permissions/sendToGroup/connections/a?targetName=g").status == 200);
        CHECK(alice->permissions.allows(WpsPermission::SendToGroup, "g"));
        CHECK(run("DELETE", "/api/hubs/chat/permissions/sendToGroup/connections/a?targetName=g").status == 204);
        CHECK(run("HEAD", "/api/hubs/chat/permissions/sendToGroup/connections/a?targetName=g").status == 404);

        auto token = run("POST", "/api/hubs/chat/:generateToken?userId=carol&role=webpubsub.sendToGroup&minutesToExpire=5");
        REQUIRE(token.status == 200);
        auto t = parsedJson(token.body);
        auto check = verifyWpsClientToken(str(t["token"]), spec.accessKeys, "chat", "127.0.0.1:8080", 1010);
        CHECK_MESSAGE(check.ok(), check.reason);
        CHECK(check.userId == "carol");

        CHECK(run("DELETE", "/api/hubs/chat/connections/a?reason=bye").status == 204);
        CHECK(str(parsedJson(n.take("a").at(0).data)["event"]) == "disconnected");
        CHECK(n.control.closed["a"].first == 1000);
        CHECK(run("POST", "/api/hubs/chat/users/alice/:closeConnections").status == 204);
    }
}
