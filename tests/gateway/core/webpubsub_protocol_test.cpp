// Azure Web PubSub's JSON client protocol (docs/webpubsub.md): each client message as the client SDK
// (@azure/web-pubsub-client 1.1.0) writes it, the errors for what it must not send, and the server
// messages in the shape the SDK parses.
#include "webpubsub_permissions.h"
#include "webpubsub_protocol.h"

#include <doctest/doctest.h>

#include <rapidjson/document.h>

using namespace wsgw;

namespace {

WpsClientMessage parsed(std::string_view frame) {
    auto r = parseWpsClientMessage(frame);
    REQUIRE_MESSAGE(std::holds_alternative<WpsClientMessage>(r), frame << " -> " << std::get<WpsProtocolError>(r).message);
    return std::get<WpsClientMessage>(r);
}

WpsProtocolError refused(std::string_view frame) {
    auto r = parseWpsClientMessage(frame);
    REQUIRE_MESSAGE(std::holds_alternative<WpsProtocolError>(r), frame << " was accepted");
    return std::get<WpsProtocolError>(r);
}

rapidjson::Document json(const std::string &text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    REQUIRE_MESSAGE(!d.HasParseError(), text);
    return d;
}

}  // namespace

TEST_SUITE("webpubsub protocol") {
    TEST_CASE("subprotocol names, and the first of ours in an offer") {
        CHECK(wpsSubprotocolOf("json.webpubsub.azure.v1") == WpsSubprotocol::Json);
        CHECK(wpsSubprotocolOf("json.reliable.webpubsub.azure.v1") == WpsSubprotocol::ReliableJson);
        CHECK(wpsSubprotocolOf("protobuf.webpubsub.azure.v1") == WpsSubprotocol::None);
        CHECK(wpsChooseSubprotocol("chat, json.reliable.webpubsub.azure.v1 ,json.webpubsub.azure.v1") == WpsSubprotocol::ReliableJson);
        CHECK(wpsChooseSubprotocol("chat") == WpsSubprotocol::None);
        CHECK(wpsChooseSubprotocol("") == WpsSubprotocol::None);
        CHECK(wpsSubprotocolName(WpsSubprotocol::Json) == "json.webpubsub.azure.v1");
    }

    TEST_CASE("joinGroup and leaveGroup, with and without ackId") {
        auto j = parsed(R"({"type":"joinGroup","group":"lobby","ackId":1})");
        CHECK(j.kind == WpsClientMessage::Kind::JoinGroup);
        CHECK(j.group == "lobby");
        REQUIRE(j.ackId);
        CHECK(*j.ackId == 1);
        auto l = parsed(R"({"type":"leaveGroup","group":"lobby"})");
        CHECK(l.kind == WpsClientMessage::Kind::LeaveGroup);
        CHECK_FALSE(l.ackId);
        CHECK(parsed(R"({"type":"joinGroup","group":"g","ackId":18446744073709551615})").ackId.value() == 18446744073709551615ull);
    }

    TEST_CASE("sendToGroup: noEcho and each dataType") {
        auto m = parsed(R"({"type":"sendToGroup","group":"g","ackId":2,"noEcho":true,"dataType":"json","data":{"a":[1,2.5,"x"]}})");
        CHECK(m.kind == WpsClientMessage::Kind::SendToGroup);
        CHECK(m.noEcho);
        CHECK(m.data.type == WpsDataType::Json);
        CHECK(m.data.bytes == R"({"a":[1,2.5,"x"]})");
        auto t = parsed(R"({"type":"sendToGroup","group":"g","noEcho":false,"dataType":"text","data":"h\u00e9"})");
        CHECK_FALSE(t.noEcho);
        CHECK(t.data.type == WpsDataType::Text);
        CHECK(t.data.bytes == "h\xC3\xA9");
        auto b = parsed(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":"AAEC/w=="})");
        CHECK(b.data.type == WpsDataType::Binary);
        CHECK(b.data.bytes == std::string("\x00\x01\x02\xff", 4));
        // A JSON string is json data too (the SDK sends strings with dataType json as JSON strings).
        CHECK(parsed(R"({"type":"sendToGroup","group":"g","dataType":"json","data":"hi"})").data.bytes == "\"hi\"");
    }

    TEST_CASE("event, invoke, sequenceAck and ping") {
        auto e = parsed(R"({"type":"event","event":"placeorder","ackId":3,"dataType":"text","data":"x"})");
        CHECK(e.kind == WpsClientMessage::Kind::Event);
        CHECK(e.event == "placeorder");
        auto i = parsed(R"({"type":"invoke","invocationId":"7","target":"event","event":"quote","dataType":"json","data":1})");
        CHECK(i.kind == WpsClientMessage::Kind::Invoke);
        CHECK(i.invocationId == "7");
        CHECK(i.data.bytes == "1");
        auto s = parsed(R"({"type":"sequenceAck","sequenceId":42})");
        CHECK(s.kind == WpsClientMessage::Kind::SequenceAck);
        CHECK(s.sequenceId == 42);
        CHECK(parsed(R"({"type":"ping"})").kind == WpsClientMessage::Kind::Ping);
    }

    TEST_CASE("errors say what is wrong, and keep the ackId to answer with") {
        CHECK(refused("not json").message.find("not JSON") != std::string::npos);
        CHECK(refused("[1]").message.find("an array") != std::string::npos);
        auto noType = refused(R"({"ackId":5})");
        CHECK(noType.ackId.value() == 5);
        CHECK(noType.message.find("\"type\"") != std::string::npos);
        auto unknown = refused(R"({"type":"subscribe","ackId":6})");
        CHECK(unknown.ackId.value() == 6);
        CHECK(unknown.message.find("unknown message type 'subscribe'") != std::string::npos);
        CHECK(refused(R"({"type":"joinGroup","ackId":7})").message == "joinGroup: \"group\" is missing");
        CHECK(refused(R"({"type":"joinGroup","group":""})").message.find("must not be empty") != std::string::npos);
        CHECK(refused(R"({"type":"joinGroup","group":3})").message.find("must be a string, got a number") != std::string::npos);
        CHECK(refused(R"({"type":"joinGroup","group":"g","ackId":-1})").message.find("ackId") != std::string::npos);
        CHECK(refused(R"({"type":"joinGroup","group":"g","ackId":1.5})").message.find("ackId") != std::string::npos);
        CHECK(refused(R"({"type":"sendToGroup","group":"g"})").message.find("\"dataType\" is missing") != std::string::npos);
        CHECK(refused(R"({"type":"sendToGroup","group":"g","dataType":"text"})").message.find("\"data\" is missing") != std::string::npos);
        CHECK(refused(R"({"type":"sendToGroup","group":"g","dataType":"text","data":1})").message.find("must be a string") != std::string::npos);
        CHECK(refused(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":"!!"})").message.find("base64") != std::string::npos);
        CHECK(refused(R"({"type":"sendToGroup","group":"g","dataType":"protobuf","data":""})").message.find("protobuf") != std::string::npos);
        CHECK(refused(R"({"type":"sendToGroup","group":"g","dataType":"xml","data":""})").message.find("unknown dataType 'xml'") != std::string::npos);
        CHECK(refused(R"({"type":"sendToGroup","group":"g","noEcho":"yes","dataType":"text","data":""})").message.find("noEcho") != std::string::npos);
        CHECK(refused(R"({"type":"sequenceAck"})").message.find("sequenceId") != std::string::npos);
        CHECK(refused(R"({"type":"invoke","invocationId":"1","target":"server","event":"e"})").message.find("target") != std::string::npos);
        CHECK(wpsBinaryFrameError().message.find("base64") != std::string::npos);
    }

    TEST_CASE("acks as the client SDK reads them") {
        auto ok = json(wpsAckSuccess(9));
        CHECK(std::string(ok["type"].GetString()) == "ack");
        CHECK(ok["ackId"].GetUint64() == 9);
        CHECK(ok["success"].GetBool());
        auto err = json(wpsAckError(10, kWpsErrorForbidden, "no \"sendToGroup\" role for group g"));
        CHECK_FALSE(err["success"].GetBool());
        CHECK(std::string(err["error"]["name"].GetString()) == "Forbidden");
        CHECK(std::string(err["error"]["message"].GetString()) == "no \"sendToGroup\" role for group g");
    }

    TEST_CASE("messages from a group and from the server, each dataType") {
        auto g = json(wpsGroupMessage("lobby", "alice", {WpsDataType::Json, R"({"n":1})"}));
        CHECK(std::string(g["type"].GetString()) == "message");
        CHECK(std::string(g["from"].GetString()) == "group");
        CHECK(std::string(g["group"].GetString()) == "lobby");
        CHECK(std::string(g["fromUserId"].GetString()) == "alice");
        CHECK(std::string(g["dataType"].GetString()) == "json");
        CHECK(g["data"]["n"].GetInt() == 1);
        CHECK_FALSE(json(wpsGroupMessage("lobby", "", {WpsDataType::Text, "x"})).HasMember("fromUserId"));
        auto s = json(wpsServerMessage({WpsDataType::Text, "line\n\"quoted\""}));
        CHECK(std::string(s["from"].GetString()) == "server");
        CHECK(std::string(s["data"].GetString()) == "line\n\"quoted\"");
        auto b = json(wpsServerMessage({WpsDataType::Binary, std::string("\x00\xff", 2)}));
        CHECK(std::string(b["dataType"].GetString()) == "binary");
        CHECK(std::string(b["data"].GetString()) == "AP8=");
    }

    TEST_CASE("system messages, pong and invokeResponse") {
        auto c = json(wpsConnectedMessage("cid", "bob", "tok"));
        CHECK(std::string(c["type"].GetString()) == "system");
        CHECK(std::string(c["event"].GetString()) == "connected");
        CHECK(std::string(c["connectionId"].GetString()) == "cid");
        CHECK(std::string(c["userId"].GetString()) == "bob");
        CHECK(std::string(c["reconnectionToken"].GetString()) == "tok");
        auto plain = json(wpsConnectedMessage("cid", "", ""));
        CHECK_FALSE(plain.HasMember("userId"));
        CHECK_FALSE(plain.HasMember("reconnectionToken"));
        auto d = json(wpsDisconnectedMessage("window ended"));
        CHECK(std::string(d["event"].GetString()) == "disconnected");
        CHECK(std::string(d["message"].GetString()) == "window ended");
        CHECK(wpsPongMessage() == R"({"type":"pong"})");
        WpsData data{WpsDataType::Json, "[1]"};
        auto r = json(wpsInvokeResponse("7", &data));
        CHECK(r["success"].GetBool());
        CHECK(r["data"][0].GetInt() == 1);
        auto e = json(wpsInvokeError("7", kWpsErrorInternal, "timed out"));
        CHECK_FALSE(e["success"].GetBool());
        CHECK(std::string(e["error"]["name"].GetString()) == "InternalServerError");
    }

    TEST_CASE("a sequenceId is put first into a written message") {
        std::string m = withSequenceId(wpsServerMessage({WpsDataType::Text, "x"}), 12);
        CHECK(m.rfind("{\"sequenceId\":12,\"type\":\"message\"", 0) == 0);
        CHECK(json(m)["sequenceId"].GetUint64() == 12);
        CHECK(withSequenceId("{}", 1) == "{\"sequenceId\":1}");
    }

    TEST_CASE("pushes become data by Content-Type, or by their bytes") {
        CHECK(wpsDataFromContentType("application/json; charset=utf-8", R"({"a":1})")->type == WpsDataType::Json);
        CHECK_FALSE(wpsDataFromContentType("application/json", "{nope"));
        // Found by fuzzing: JSON followed by a NUL byte and junk, or with invalid UTF-8 in a string, is refused
        // (it would be put into the message as it is).
        CHECK_FALSE(wpsDataFromContentType("application/json", std::string_view("{\"x\":1}\0junk", 13)));
        CHECK_FALSE(wpsDataFromContentType("application/json", "\"\xff\""));
        CHECK(wpsDataFromContentType("Text/Plain", "hi")->type == WpsDataType::Text);
        CHECK_FALSE(wpsDataFromContentType("text/plain", "\xff"));
        CHECK(wpsDataFromContentType("application/octet-stream", "\xff")->type == WpsDataType::Binary);
        CHECK(wpsDataFromFrame("hi", false).type == WpsDataType::Text);
        CHECK(wpsDataFromFrame("hi", true).type == WpsDataType::Binary);
        CHECK(wpsDataFromFrame("\xff", false).type == WpsDataType::Binary);
    }
}

TEST_SUITE("webpubsub permissions") {
    TEST_CASE("no role: events only") {
        WpsPermissions p;
        CHECK_FALSE(p.allows(WpsPermission::JoinLeaveGroup, "g"));
        CHECK_FALSE(p.allows(WpsPermission::SendToGroup, "g"));
        CHECK(p.roles().empty());
    }

    TEST_CASE("roles for every group and for one group") {
        WpsPermissions p;
        auto unknown = p.addRoles({"webpubsub.joinLeaveGroup.lobby", "webpubsub.sendToGroup", "admin", "webpubsub.sendToGroupX"});
        CHECK(unknown == std::vector<std::string>{"admin", "webpubsub.sendToGroupX"});
        CHECK(p.allows(WpsPermission::JoinLeaveGroup, "lobby"));
        CHECK_FALSE(p.allows(WpsPermission::JoinLeaveGroup, "other"));
        CHECK(p.allows(WpsPermission::SendToGroup, "anything"));
        // A group name may itself contain dots: everything after the role's own name is the group.
        p.addRoles({"webpubsub.joinLeaveGroup.a.b"});
        CHECK(p.allows(WpsPermission::JoinLeaveGroup, "a.b"));
        CHECK(p.roles() == std::vector<std::string>{"webpubsub.joinLeaveGroup.a.b", "webpubsub.joinLeaveGroup.lobby",
                                                    "webpubsub.sendToGroup"});
    }

    TEST_CASE("grant, revoke and check as the REST API does them") {
        CHECK(wpsPermissionOf("sendToGroup") == WpsPermission::SendToGroup);
        CHECK(wpsPermissionOf("JOINLEAVEGROUP") == WpsPermission::JoinLeaveGroup);
        CHECK_FALSE(wpsPermissionOf("admin"));
        WpsPermissions p;
        p.grant(WpsPermission::SendToGroup, "g1");
        CHECK(p.check(WpsPermission::SendToGroup, "g1"));
        CHECK_FALSE(p.check(WpsPermission::SendToGroup, ""));
        p.grant(WpsPermission::SendToGroup, "");
        CHECK(p.check(WpsPermission::SendToGroup, ""));
        CHECK(p.check(WpsPermission::SendToGroup, "g2"));
        p.revoke(WpsPermission::SendToGroup, "");
        CHECK_FALSE(p.allows(WpsPermission::SendToGroup, "g1"));  // revoking the whole permission drops the groups too
        p.grant(WpsPermission::JoinLeaveGroup, "a");
        p.revoke(WpsPermission::JoinLeaveGroup, "a");
        CHECK_FALSE(p.allows(WpsPermission::JoinLeaveGroup, "a"));
    }

    TEST_CASE("a frame nested deeper than 512 levels is refused before it is parsed, as is such JSON data") {
        CHECK(refused(std::string(125000, '[')).message.find("deeper than 512 levels") != std::string::npos);
        std::string deepData = R"({"type":"sendToGroup","group":"g","dataType":"json","data":)" + std::string(100000, '[') +
                               std::string(100000, ']') + "}";
        CHECK(refused(deepData).message.size() > 0);
    }
}
