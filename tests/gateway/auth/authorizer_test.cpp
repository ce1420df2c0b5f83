// The apiKey authorizer: where the key is read from, 401 versus 403, principals from ids and from the
// key's hash, key files, and which principals survive a reload.
#include "auth/authorizer.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace wsgw;

namespace {

std::unique_ptr<Authorizer> build(AuthorizerSpec spec) {
    auto made = Authorizer::build(spec, "routes.json");
    REQUIRE_MESSAGE(std::holds_alternative<std::unique_ptr<Authorizer>>(made), std::get<std::string>(made));
    return std::move(std::get<std::unique_ptr<Authorizer>>(made));
}

AuthorizerSpec apiKeys() {
    AuthorizerSpec s;
    s.type = "apiKey";
    s.sources = {"header:x-api-key", "query:apikey", "query:subscription-key"};
    s.keys = {{"", "k1"}, {"alice", "alice-secret"}};
    s.jsonPath = "/routes/$connect/authorizer";
    return s;
}

}  // namespace

TEST_SUITE("authorizer") {
    TEST_CASE("apiKey: headers case-insensitively, then the query; 401 without, 403 with a wrong key") {
        auto a = build(apiKeys());
        ConnectionInfo c;
        AuthorizerOutcome none = a->authorize(c, 0);
        CHECK_FALSE(none.ok);
        CHECK(none.status == 401);
        CHECK(none.reason.find("header x-api-key, query apikey or query subscription-key") != std::string::npos);

        c.headers = {{"X-Api-Key", "alice-secret"}};
        AuthorizerOutcome alice = a->authorize(c, 0);
        CHECK(alice.ok);
        CHECK(alice.principalId == "alice");
        CHECK(alice.apiKeyId == "alice");
        CHECK(alice.contextJson == R"({"principalId":"alice"})");

        c.headers.clear();
        c.rawQuery = "room=1&subscription-key=k1";
        AuthorizerOutcome anon = a->authorize(c, 0);
        CHECK(anon.ok);
        CHECK(anon.principalId == apiKeyPrincipal("k1"));
        CHECK(anon.principalId.size() == 12);  // "key-" + 8 hex digits

        c.rawQuery = "apikey=wrong";
        AuthorizerOutcome wrong = a->authorize(c, 0);
        CHECK(wrong.status == 403);
        CHECK(wrong.reason.find("query:apikey") != std::string::npos);
        CHECK(wrong.reason.find("wrong") == std::string::npos);  // a key is never echoed
    }

    TEST_CASE("key files: id:key or key, comments and blanks; a bad line names the file and line") {
        auto parsed = parseKeyFile("# team\n\nbob: bob-secret \nplain\n", "keys.txt");
        REQUIRE(std::holds_alternative<std::vector<std::pair<std::string, std::string>>>(parsed));
        auto &keys = std::get<0>(parsed);
        REQUIRE(keys.size() == 2);
        CHECK(keys[0] == std::pair<std::string, std::string>{"bob", "bob-secret"});
        CHECK(keys[1] == std::pair<std::string, std::string>{"", "plain"});
        auto bad = parseKeyFile("ok\n:nokeyid\n", "keys.txt");
        REQUIRE(std::holds_alternative<std::string>(bad));
        CHECK(std::get<std::string>(bad) == "keys.txt:2: expected 'key' or 'id:key'");

        char dir[] = "/tmp/wsgw-keys-XXXXXX";
        REQUIRE(mkdtemp(dir));
        std::string path = std::string(dir) + "/keys.txt";
        std::ofstream(path) << "carol:carol-secret\n";
        AuthorizerSpec spec = apiKeys();
        spec.keys.clear();
        spec.keyFile = path;
        auto a = build(spec);
        ConnectionInfo c;
        c.headers = {{"x-api-key", "carol-secret"}};
        CHECK(a->authorize(c, 0).principalId == "carol");
        std::remove(path.c_str());
        auto missing = Authorizer::build(spec, "routes.json");
        REQUIRE(std::holds_alternative<std::string>(missing));
        CHECK(std::get<std::string>(missing).find("cannot read the key file") != std::string::npos);
        rmdir(dir);
    }

    TEST_CASE("stillAccepts: a principal whose key is gone, or another kind of authorizer, is not accepted") {
        auto a = build(apiKeys());
        CHECK(a->stillAccepts("apiKey", "alice"));
        CHECK(a->stillAccepts("apiKey", apiKeyPrincipal("k1")));
        CHECK_FALSE(a->stillAccepts("apiKey", "bob"));
        CHECK_FALSE(a->stillAccepts("jwt", "alice"));
    }
}
