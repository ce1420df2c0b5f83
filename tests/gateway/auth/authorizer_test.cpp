// The apiKey authorizer: where the key is read from, 401 versus 403, principals from ids and from the
// key's hash, key files, and which principals survive a reload. The jwt authorizer: 401 versus 403, and
// the connection's close time (exp plus the clock skew, saturated).
#include "authorizer.h"

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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

const std::string kJwtSecret = "a secret of more than thirty-two bytes";

// An HS256 token over `payload` (JSON text), signed with `secret`.
std::string hs256Token(const std::string &payload, const std::string &secret = kJwtSecret) {
    std::string input = jwtBase64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." + jwtBase64UrlEncode(payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char *>(input.data()),
         input.size(), mac, &len);
    return input + "." + jwtBase64UrlEncode(std::string_view(reinterpret_cast<char *>(mac), len));
}

AuthorizerSpec jwtSpec(int64_t skew) {
    AuthorizerSpec s;
    s.type = "jwt";
    s.sources = {"header:Authorization", "query:access_token"};
    s.algorithms = {"HS256"};
    s.secret = kJwtSecret;
    s.clockSkewSeconds = skew;
    s.jsonPath = "/routes/$connect/authorizer";
    return s;
}

ConnectionInfo withBearer(const std::string &token) {
    ConnectionInfo c;
    c.headers = {{"Authorization", "Bearer " + token}};
    return c;
}

}  // namespace

TEST_SUITE("authorizer") {
    TEST_CASE("jwt: a token past exp but within the skew is admitted and the connection closes at exp + skew") {
        const int64_t now = 1795362413;
        auto a = build(jwtSpec(60));
        std::string token = hs256Token(R"({"sub":"alice","exp":)" + std::to_string(now - 30) + "}");
        AuthorizerOutcome out = a->authorize(withBearer(token), now);
        REQUIRE(out.ok);
        CHECK(out.expiresAt == now - 30 + 60);  // not exp: the listener would close it at once
        CHECK(a->authorize(withBearer(token), now + 31).status == 403);  // past exp + skew

        auto noSkew = build(jwtSpec(0));
        std::string fresh = hs256Token(R"({"sub":"bob","exp":)" + std::to_string(now + 100) + "}");
        CHECK(noSkew->authorize(withBearer(fresh), now).expiresAt == now + 100);
        auto negative = build(jwtSpec(-5));  // counts as 0, as the verifier counts it
        CHECK(negative->authorize(withBearer(fresh), now).expiresAt == now + 100);

        std::string forever = hs256Token(R"({"sub":"carol"})");
        CHECK(a->authorize(withBearer(forever), now).expiresAt == 0);  // no exp: no close
    }

    TEST_CASE("jwt: an absurd exp is clamped so that milliseconds cannot overflow") {
        const int64_t now = 1795362413;
        auto a = build(jwtSpec(60));
        for (const char *exp : {"9200000000000000", "9223372036854775807", "18446744073709551615", "1e300"}) {
            CAPTURE(exp);
            AuthorizerOutcome out = a->authorize(withBearer(hs256Token(std::string(R"({"sub":"x","exp":)") + exp + "}")), now);
            REQUIRE(out.ok);
            CHECK(out.expiresAt == kMaxExpirySeconds);
            int64_t ms = 0;
            CHECK_FALSE(__builtin_mul_overflow(out.expiresAt, int64_t{1000}, &ms));
        }
        CHECK(connectionExpiry(INT64_MAX, 60) == kMaxExpirySeconds);
        CHECK(connectionExpiry(INT64_MAX - 10, INT64_MAX) == kMaxExpirySeconds);
        CHECK(connectionExpiry(now, 60) == now + 60);
    }

    TEST_CASE("jwt: no token or garbage is 401; a well-formed token that is refused is 403") {
        const int64_t now = 1795362413;
        auto a = build(jwtSpec(60));
        std::string valid = hs256Token(R"({"sub":"alice","exp":)" + std::to_string(now + 600) + "}");
        CHECK(a->authorize(withBearer(valid), now).ok);

        CHECK(a->authorize(ConnectionInfo{}, now).status == 401);  // nothing sent
        for (const char *garbage : {"garbage", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30"}) {
            CAPTURE(garbage);
            AuthorizerOutcome out = a->authorize(withBearer(garbage), now);
            CHECK_FALSE(out.ok);
            CHECK(out.status == 401);
            CHECK(out.reason.rfind("Unauthorized: ", 0) == 0);
        }
        ConnectionInfo basic;
        basic.headers = {{"Authorization", "Basic dXNlcjpwYXNz"}};
        CHECK(a->authorize(basic, now).status == 401);

        std::string wrongKey = hs256Token(R"({"sub":"alice","exp":)" + std::to_string(now + 600) + "}", "another secret, also long enough!!");
        std::string expired = hs256Token(R"({"sub":"alice","exp":)" + std::to_string(now - 61) + "}");
        std::string tampered = valid;
        tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
        for (const std::string &refused : {wrongKey, expired, tampered}) {
            CAPTURE(refused);
            AuthorizerOutcome out = a->authorize(withBearer(refused), now);
            CHECK_FALSE(out.ok);
            CHECK(out.status == 403);
            CHECK(out.reason.rfind("Forbidden: ", 0) == 0);
        }
        ConnectionInfo query;
        query.rawQuery = "access_token=" + wrongKey;
        CHECK(a->authorize(query, now).status == 403);
    }

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
        // A binary file copied over the key file (found by review: an .so was taken for keys, and every
        // connection's key was revoked on the reload): refused, naming the first line with a control byte.
        auto binary = parseKeyFile(std::string("first-key\n\x7f" "ELF\x02\x01\x01\0\0\0\n", 21), "keys.txt");
        REQUIRE(std::holds_alternative<std::string>(binary));
        CHECK(std::get<std::string>(binary).find("keys.txt:2: holds the control byte 0x7f") == 0);
        auto nul = parseKeyFile(std::string("a\0b\n", 4), "keys.txt");
        REQUIRE(std::holds_alternative<std::string>(nul));
        CHECK(std::get<std::string>(nul).find("keys.txt:1: holds the control byte 0x00") == 0);
        CHECK(std::holds_alternative<std::vector<std::pair<std::string, std::string>>>(parseKeyFile("k\tey\n", "keys.txt")));

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
