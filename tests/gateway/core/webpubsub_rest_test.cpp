// Azure Web PubSub's data-plane REST API as a pure router (docs/webpubsub.md): every path the server SDK
// (@azure/web-pubsub 1.2.0) calls, as it writes them (captured from the SDK), with the status it expects,
// and the errors for what it does not send.
#include "webpubsub_rest.h"

#include <doctest/doctest.h>

using namespace wsgw;

namespace {

WpsRestOperation routed(std::string_view method, std::string_view target, std::string_view contentType = "",
                        std::string_view body = "") {
    auto r = routeWpsRest({method, target, contentType, body});
    REQUIRE_MESSAGE(std::holds_alternative<WpsRestOperation>(r), method << " " << target << " -> "
                                                                          << std::get<WpsRestError>(r).message);
    return std::get<WpsRestOperation>(r);
}

WpsRestError refused(std::string_view method, std::string_view target, std::string_view contentType = "",
                     std::string_view body = "") {
    auto r = routeWpsRest({method, target, contentType, body});
    REQUIRE_MESSAGE(std::holds_alternative<WpsRestError>(r), method << " " << target << " was accepted");
    return std::get<WpsRestError>(r);
}

constexpr std::string_view kV = "?api-version=2024-12-01";

std::string at(std::string_view path, std::string_view extra = "") { return std::string(path) + std::string(kV) + std::string(extra); }

}  // namespace

TEST_SUITE("webpubsub rest") {
    TEST_CASE("which paths are Web PubSub's") {
        CHECK(isWpsRestPath("/api/hubs/chat/:send?api-version=1"));
        CHECK(isWpsRestPath("/api/health"));
        CHECK_FALSE(isWpsRestPath("/@connections/abc"));
        CHECK_FALSE(isWpsRestPath("/client/hubs/chat"));
    }

    TEST_CASE("sends: to all, a group, a user, a connection; 202; data by Content-Type") {
        auto all = routed("POST", at("/api/hubs/chat/:send", "&excluded=c1&excluded=c2"), "application/json", R"({"hello":"world"})");
        CHECK(all.op == WpsRestOp::SendToAll);
        CHECK(all.successStatus == 202);
        CHECK(all.hub == "chat");
        CHECK(all.excluded == std::vector<std::string>{"c1", "c2"});
        REQUIRE(all.data);
        CHECK(all.data->type == WpsDataType::Json);
        auto group = routed("POST", at("/api/hubs/chat/groups/lobby%20room/:send"), "text/plain", "hi");
        CHECK(group.op == WpsRestOp::SendToGroup);
        CHECK(group.group == "lobby room");
        CHECK(group.data->type == WpsDataType::Text);
        auto user = routed("POST", at("/api/hubs/chat/users/alice/:send"), "application/octet-stream", "\x01");
        CHECK(user.op == WpsRestOp::SendToUser);
        CHECK(user.userId == "alice");
        CHECK(user.data->type == WpsDataType::Binary);
        auto conn = routed("POST", at("/api/hubs/chat/connections/abc/:send", "&messageTtlSeconds=5"), "text/plain", "x");
        CHECK(conn.op == WpsRestOp::SendToConnection);
        CHECK(conn.connectionId == "abc");
    }

    TEST_CASE("groups and users: add, remove, existence, and their statuses") {
        auto add = routed("PUT", at("/api/hubs/chat/groups/g/connections/abc"));
        CHECK(add.op == WpsRestOp::AddConnectionToGroup);
        CHECK(add.successStatus == 200);
        CHECK(add.group == "g");
        CHECK(add.connectionId == "abc");
        CHECK(routed("DELETE", at("/api/hubs/chat/groups/g/connections/abc")).successStatus == 204);
        CHECK(routed("DELETE", at("/api/hubs/chat/connections/abc/groups")).op == WpsRestOp::RemoveConnectionFromAllGroups);
        auto addUser = routed("PUT", at("/api/hubs/chat/users/bob/groups/g"));
        CHECK(addUser.op == WpsRestOp::AddUserToGroup);
        CHECK(addUser.userId == "bob");
        CHECK(addUser.group == "g");
        CHECK(routed("DELETE", at("/api/hubs/chat/users/bob/groups/g")).op == WpsRestOp::RemoveUserFromGroup);
        CHECK(routed("DELETE", at("/api/hubs/chat/users/bob/groups")).op == WpsRestOp::RemoveUserFromAllGroups);
        CHECK(routed("HEAD", at("/api/hubs/chat/groups/g")).op == WpsRestOp::GroupExists);
        CHECK(routed("HEAD", at("/api/hubs/chat/users/bob")).op == WpsRestOp::UserExists);
        CHECK(routed("HEAD", at("/api/hubs/chat/connections/abc")).op == WpsRestOp::ConnectionExists);
        auto list = routed("GET", at("/api/hubs/chat/groups/g/connections", "&maxpagesize=10&top=5"));
        CHECK(list.op == WpsRestOp::ListConnectionsInGroup);
        CHECK(list.maxPageSize == 10);
        CHECK(list.top == 5);
    }

    TEST_CASE("closes with their reasons and exclusions; 204") {
        auto one = routed("DELETE", at("/api/hubs/chat/connections/abc", "&reason=bye%20now"));
        CHECK(one.op == WpsRestOp::CloseConnection);
        CHECK(one.successStatus == 204);
        CHECK(one.reason == "bye now");
        auto all = routed("POST", at("/api/hubs/chat/:closeConnections", "&excluded=x&reason=maintenance"));
        CHECK(all.op == WpsRestOp::CloseAllConnections);
        CHECK(all.excluded == std::vector<std::string>{"x"});
        CHECK(routed("POST", at("/api/hubs/chat/groups/g/:closeConnections")).op == WpsRestOp::CloseGroupConnections);
        CHECK(routed("POST", at("/api/hubs/chat/users/u/:closeConnections")).op == WpsRestOp::CloseUserConnections);
    }

    TEST_CASE("permissions: grant, revoke, check with an optional targetName") {
        auto grant = routed("PUT", at("/api/hubs/chat/permissions/sendToGroup/connections/cid", "&targetName=g1"));
        CHECK(grant.op == WpsRestOp::GrantPermission);
        CHECK(grant.permission == WpsPermission::SendToGroup);
        CHECK(grant.targetName == "g1");
        CHECK(grant.connectionId == "cid");
        auto revoke = routed("DELETE", at("/api/hubs/chat/permissions/joinLeaveGroup/connections/cid"));
        CHECK(revoke.op == WpsRestOp::RevokePermission);
        CHECK(revoke.successStatus == 204);
        CHECK(revoke.targetName.empty());
        CHECK(routed("HEAD", at("/api/hubs/chat/permissions/sendToGroup/connections/cid")).op == WpsRestOp::CheckPermission);
        auto bad = refused("PUT", at("/api/hubs/chat/permissions/admin/connections/cid"));
        CHECK(bad.status == 400);
        CHECK(bad.message.find("joinLeaveGroup or sendToGroup") != std::string::npos);
    }

    TEST_CASE("generateToken and health") {
        auto t = routed("POST", at("/api/hubs/chat/:generateToken", "&userId=u1&role=webpubsub.sendToGroup&role=webpubsub.joinLeaveGroup&minutesToExpire=5&group=a&group=b&clientType=Default"));
        CHECK(t.op == WpsRestOp::GenerateToken);
        CHECK(t.userId == "u1");
        CHECK(t.roles.size() == 2);
        CHECK(t.groups == std::vector<std::string>{"a", "b"});
        CHECK(t.minutesToExpire == 5);
        CHECK(refused("POST", at("/api/hubs/chat/:generateToken", "&clientType=MQTT")).message.find("MQTT") != std::string::npos);
        CHECK(routed("HEAD", "/api/health").op == WpsRestOp::Health);
    }

    TEST_CASE("errors: unknown path 404, wrong method 405 with Allow, missing api-version, bad bodies") {
        auto none = refused("POST", at("/api/hubs/chat/rooms/x"));
        CHECK(none.status == 404);
        CHECK(none.code == "NotFound");
        auto method = refused("GET", at("/api/hubs/chat/:send"));
        CHECK(method.status == 405);
        CHECK(method.allow == "POST");
        CHECK(refused("POST", at("/api/hubs/chat/groups/g/connections/c")).allow == "PUT, DELETE");
        auto version = refused("POST", "/api/hubs/chat/:send", "text/plain", "x");
        CHECK(version.status == 400);
        CHECK(version.message.find("api-version") != std::string::npos);
        CHECK(refused("POST", at("/api/hubs/chat/:send"), "application/json", "{oops").message.find("valid JSON") != std::string::npos);
        CHECK(refused("POST", at("/api/hubs/chat/:send"), "", "x").message.find("Content-Type") != std::string::npos);
        CHECK(refused("POST", at("/api/hubs/chat/:send", "&filter=userId%20eq%20'a'"), "text/plain", "x").message.find("filter") != std::string::npos);
        CHECK(refused("PUT", at("/api/hubs/chat/groups/%zz/connections/c")).message.find("percent-escape") != std::string::npos);
        CHECK(refused("PUT", at("/api/hubs/chat/groups//connections/c")).status == 404);
        CHECK(wpsRestErrorBody({400, "BadRequest", "a \"b\"", ""}) == R"({"code":"BadRequest","message":"a \"b\""})");
    }

    TEST_CASE("percent-decoding: '+' is a space in the query only, %00 is a byte, a bad escape is refused") {
        auto send = routed("POST", at("/api/hubs/a+b%00c/groups/x+y/:send", "&excluded=c+1%2B"), "text/plain", "hi");
        CHECK(send.hub == std::string("a+b\0c", 5));
        CHECK(send.group == "x+y");
        CHECK(send.excluded == std::vector<std::string>{"c 1+"});
        CHECK(refused("POST", at("/api/hubs/a%4/:send"), "text/plain", "hi").message.find("hub name") != std::string::npos);
        CHECK(refused("POST", at("/api/hubs/chat/groups/%g1/:send"), "text/plain", "hi").status == 400);
        CHECK(refused("POST", at("/api/hubs/chat/:send", "&excluded=%"), "text/plain", "hi").status == 400);
    }
}
