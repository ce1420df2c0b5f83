#include "sigv4.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace wsgw;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct CapturedRequest {
    std::string method, path, query, body, amzDate;
    Headers headers;
};

const SigV4Credential kCred{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
const std::vector<SigV4Credential> kCreds{kCred};

// Recorded from @aws-sdk/client-apigatewaymanagementapi 3.1168.0 (node 20) pointed at a local HTTP server
// with endpoint http://127.0.0.1:PORT/prod, region us-east-1 and kCred: PostToConnection (Data "hello"),
// GetConnection, DeleteConnection for ConnectionId k3Jd9xQpS2uYb7vT1mWz0A, then the same three for the
// ConnectionId "ab=c/d e", which the SDK percent-encodes on the wire. Method, raw URL, headers in wire
// order and body are exactly what arrived.
const std::vector<CapturedRequest> kSdkRequests = {
    {"POST", "/prod/@connections/k3Jd9xQpS2uYb7vT1mWz0A", "", "hello", "20261122T154653Z",
     {{"content-type", "application/octet-stream"},
      {"content-length", "5"},
      {"x-amz-user-agent", "aws-sdk-js/3.1168.0"},
      {"user-agent", "aws-sdk-js/3.1168.0 ua/2.1 os/linux#6.18.44-fc-v769 lang/js md/nodejs#20.20.2 api/apigatewaymanagementapi#3.1168.0 m/N,E,e"},
      {"host", "127.0.0.1:33623"},
      {"amz-sdk-invocation-id", "164cf6b2-e74d-4bc8-a9ee-0e3814745bd6"},
      {"amz-sdk-request", "attempt=1; max=3"},
      {"x-amz-date", "20261122T154653Z"},
      {"x-amz-content-sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
      {"authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=449f2d7972fcad5a970b6b50553ae9fc6f75dee3649fc50b02ac03717ba5f0a5"},
      {"Connection", "keep-alive"}}},
    {"GET", "/prod/@connections/k3Jd9xQpS2uYb7vT1mWz0A", "", "", "20261122T154653Z",
     {{"x-amz-user-agent", "aws-sdk-js/3.1168.0"},
      {"user-agent", "aws-sdk-js/3.1168.0 ua/2.1 os/linux#6.18.44-fc-v769 lang/js md/nodejs#20.20.2 api/apigatewaymanagementapi#3.1168.0 m/N,E,e"},
      {"host", "127.0.0.1:33623"},
      {"amz-sdk-invocation-id", "fa255631-7cca-4d8a-9216-413859595b3c"},
      {"amz-sdk-request", "attempt=1; max=3"},
      {"x-amz-date", "20261122T154653Z"},
      {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=c8a2639b1c90e970b55cd584fc309cecc48868fb925bd76732462404b4f7e101"},
      {"Connection", "keep-alive"}}},
    {"DELETE", "/prod/@connections/k3Jd9xQpS2uYb7vT1mWz0A", "", "", "20261122T154653Z",
     {{"x-amz-user-agent", "aws-sdk-js/3.1168.0"},
      {"user-agent", "aws-sdk-js/3.1168.0 ua/2.1 os/linux#6.18.44-fc-v769 lang/js md/nodejs#20.20.2 api/apigatewaymanagementapi#3.1168.0 m/N,E,e"},
      {"host", "127.0.0.1:33623"},
      {"amz-sdk-invocation-id", "be004f41-f9e2-4e7a-9e5e-89473f225f0a"},
      {"amz-sdk-request", "attempt=1; max=3"},
      {"x-amz-date", "20261122T154653Z"},
      {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=ff6596294e717936914e5a2069f1da9dfcea9cc642e13ea1e56c01685f68844f"},
      {"Connection", "keep-alive"}}},
    {"POST", "/prod/@connections/ab%3Dc%2Fd%20e", "", "hello", "20261122T154653Z",
     {{"content-type", "application/octet-stream"},
      {"content-length", "5"},
      {"x-amz-user-agent", "aws-sdk-js/3.1168.0"},
      {"user-agent", "aws-sdk-js/3.1168.0 ua/2.1 os/linux#6.18.44-fc-v769 lang/js md/nodejs#20.20.2 api/apigatewaymanagementapi#3.1168.0 m/N,E,e"},
      {"host", "127.0.0.1:40197"},
      {"amz-sdk-invocation-id", "69a00385-73bd-4444-94db-3670fb8cbc23"},
      {"amz-sdk-request", "attempt=1; max=3"},
      {"x-amz-date", "20261122T154653Z"},
      {"x-amz-content-sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
      {"authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=2ae61fe1eb55c4eb0b16833f422674b9db2be66e87248cdd248e966da16cbcc9"},
      {"Connection", "keep-alive"}}},
    {"GET", "/prod/@connections/ab%3Dc%2Fd%20e", "", "", "20261122T154653Z",
     {{"x-amz-user-agent", "aws-sdk-js/3.1168.0"},
      {"user-agent", "aws-sdk-js/3.1168.0 ua/2.1 os/linux#6.18.44-fc-v769 lang/js md/nodejs#20.20.2 api/apigatewaymanagementapi#3.1168.0 m/N,E,e"},
      {"host", "127.0.0.1:40197"},
      {"amz-sdk-invocation-id", "81828503-fc83-456a-8e28-3e197d6a9a04"},
      {"amz-sdk-request", "attempt=1; max=3"},
      {"x-amz-date", "20261122T154653Z"},
      {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=8ed98f45dfd0f0d96305e5ae3e07c6599f25ba39d7df97fa28f85befc685ae14"},
      {"Connection", "keep-alive"}}},
    {"DELETE", "/prod/@connections/ab%3Dc%2Fd%20e", "", "", "20261122T154653Z",
     {{"x-amz-user-agent", "aws-sdk-js/3.1168.0"},
      {"user-agent", "aws-sdk-js/3.1168.0 ua/2.1 os/linux#6.18.44-fc-v769 lang/js md/nodejs#20.20.2 api/apigatewaymanagementapi#3.1168.0 m/N,E,e"},
      {"host", "127.0.0.1:40197"},
      {"amz-sdk-invocation-id", "44dafef5-36a2-4735-9afb-d26109fc21b1"},
      {"amz-sdk-request", "attempt=1; max=3"},
      {"x-amz-date", "20261122T154653Z"},
      {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=80fc5e1131ea6286b6e431bcccf554f38edbe868b2fbfff81e2631d8dac24987"},
      {"Connection", "keep-alive"}}}
};
const int64_t kSdkNow = 1795362413;  // 20261122T154653Z, the requests' X-Amz-Date

SigV4Result verifyCaptured(const CapturedRequest &r, int64_t now = kSdkNow,
                           const std::vector<SigV4Credential> &creds = kCreds) {
    return verifySigV4(r.method, r.path, r.query, r.headers, r.body, creds, now);
}

void setHeader(Headers &headers, std::string_view name, std::string value) {
    for (auto &[n, v] : headers)
        if (n == name) {
            v = std::move(value);
            return;
        }
    FAIL("no header " << name);
}

// A request signed by signSigV4 with the given headers plus x-amz-date; the result carries Authorization.
Headers signedHeaders(std::string_view method, std::string_view path, std::string_view query, Headers headers,
                      std::string_view body, std::string_view amzDate, const std::vector<std::string> &names,
                      const SigV4Credential &cred = kCred, std::string_view region = "eu-west-3",
                      std::string_view service = "execute-api") {
    headers.emplace_back("X-Amz-Date", std::string(amzDate));
    headers.emplace_back("Authorization",
                         signSigV4(method, path, query, headers, body, cred, region, service, amzDate, names));
    return headers;
}

const int64_t kRoundTripNow = 1795362413;
const std::string kRoundTripDate = "20261122T154653Z";

}  // namespace

TEST_SUITE("sigv4") {

TEST_CASE("the AWS SDK's PostToConnection, GetConnection and DeleteConnection requests verify") {
    REQUIRE(kSdkRequests.size() == 6);
    for (const auto &r : kSdkRequests) {
        CAPTURE(r.method);
        CAPTURE(r.path);
        SigV4Result result = verifyCaptured(r);
        CHECK(result.reason == "");
        CHECK(result.ok);
        CHECK(result.accessKeyId == "AKIDEXAMPLE");
    }
    CHECK(kSdkRequests[0].method == "POST");
    CHECK(kSdkRequests[1].method == "GET");
    CHECK(kSdkRequests[2].method == "DELETE");
}

TEST_CASE("the SDK's requests verify with header names in another case and order, and among other keys") {
    for (const auto &original : kSdkRequests) {
        CapturedRequest r = original;
        for (auto &[name, value] : r.headers)
            for (char &c : name) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        std::reverse(r.headers.begin(), r.headers.end());
        std::vector<SigV4Credential> creds{{"AKIDOTHER", "other-secret"},
                                           {"AKIDEXAMPLE", "an older secret for the same key"},
                                           kCred};
        SigV4Result result = verifyCaptured(r, kSdkNow, creds);
        CHECK(result.ok);
        CHECK(result.accessKeyId == "AKIDEXAMPLE");
    }
}

TEST_CASE("an SDK request checked against a wrong secret is rejected without revealing a secret") {
    for (const auto &r : kSdkRequests) {
        SigV4Result result = verifyCaptured(r, kSdkNow, {{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ"}});
        CHECK_FALSE(result.ok);
        CHECK(result.reason == "signature does not match");
        CHECK(result.accessKeyId == "");
    }
}

TEST_CASE("an SDK PostToConnection with a tampered body is rejected") {
    CapturedRequest r = kSdkRequests[0];
    r.body = "hellO";
    SigV4Result result = verifyCaptured(r);
    CHECK_FALSE(result.ok);
    CHECK(result.reason == "x-amz-content-sha256 does not match the body");

    // Declaring the tampered body's hash changes a signed header, so the signature no longer matches.
    setHeader(r.headers, "x-amz-content-sha256", "04a6f55face2f46be8c23f627d539827615851e10751b63ec59db6d2c706b770");  // sha256("hellO")
    CHECK(verifyCaptured(r).reason == "signature does not match");
    CapturedRequest withoutHashHeader = kSdkRequests[0];
    withoutHashHeader.body = "hellO";
    std::erase_if(withoutHashHeader.headers, [](const auto &h) { return h.first == "x-amz-content-sha256"; });
    CHECK(verifyCaptured(withoutHashHeader).reason == "signed header 'x-amz-content-sha256' is not in the request");
}

TEST_CASE("SDK requests dated 20 minutes off the server clock are rejected for clock skew") {
    for (const auto &r : kSdkRequests) {
        SigV4Result late = verifyCaptured(r, kSdkNow + 20 * 60);
        CHECK_FALSE(late.ok);
        CHECK(late.reason ==
              "clock skew: X-Amz-Date 20261122T154653Z is 1200 s behind the server clock (at most 900 s allowed)");
        SigV4Result early = verifyCaptured(r, kSdkNow - 20 * 60);
        CHECK_FALSE(early.ok);
        CHECK(early.reason ==
              "clock skew: X-Amz-Date 20261122T154653Z is 1200 s ahead of the server clock (at most 900 s allowed)");
    }
    CHECK(verifyCaptured(kSdkRequests[0], kSdkNow + 900).ok);
    CHECK(verifyCaptured(kSdkRequests[0], kSdkNow - 900).ok);
    CHECK_FALSE(verifyCaptured(kSdkRequests[0], kSdkNow + 901).ok);
    CHECK_FALSE(verifyCaptured(kSdkRequests[0], kSdkNow - 901).ok);
    CHECK(verifyCaptured(kSdkRequests[0], INT64_MAX).reason.starts_with("clock skew: "));
    CHECK(verifyCaptured(kSdkRequests[0], INT64_MIN).reason.starts_with("clock skew: "));
}

TEST_CASE("changing the method, path, host, a signed header or the date of an SDK request breaks the signature") {
    const CapturedRequest &get = kSdkRequests[1];
    CapturedRequest r = get;
    r.method = "DELETE";
    CHECK(verifyCaptured(r).reason == "signature does not match");
    r = get;
    r.path = "/prod/@connections/k3Jd9xQpS2uYb7vT1mWz0B";
    CHECK(verifyCaptured(r).reason == "signature does not match");
    r = get;
    r.path = "/prod/%40connections/k3Jd9xQpS2uYb7vT1mWz0A";  // the same resource, but not what was signed
    CHECK(verifyCaptured(r).reason == "signature does not match");
    r = get;
    r.query = "x=1";
    CHECK(verifyCaptured(r).reason == "signature does not match");
    r = get;
    setHeader(r.headers, "host", "127.0.0.1:9001");
    CHECK(verifyCaptured(r).reason == "signature does not match");
    r = get;
    setHeader(r.headers, "amz-sdk-request", "attempt=2; max=3");
    CHECK(verifyCaptured(r).reason == "signature does not match");
    r = get;
    setHeader(r.headers, "x-amz-date", "20261122T154654Z");
    CHECK(verifyCaptured(r).reason == "signature does not match");
    r = get;
    setHeader(r.headers, "user-agent", "unsigned, so free to change");
    CHECK(verifyCaptured(r).ok);
}

TEST_CASE("an unknown access key id is rejected by name") {
    SigV4Result result = verifyCaptured(kSdkRequests[0], kSdkNow, {{"AKIDSOMEONEELSE", kCred.secretAccessKey}});
    CHECK_FALSE(result.ok);
    CHECK(result.reason == "unknown access key id");
    CHECK(verifyCaptured(kSdkRequests[0], kSdkNow, {}).reason == "unknown access key id");
}

// Expected Authorization values computed by @smithy/signature-v4 (the signer inside AWS SDK v3) for the
// same request, with headers host, my-header1 "  a   b \t c  ", x-amz-content-sha256 and x-amz-date.
TEST_CASE("signSigV4 matches the AWS SDK's signer on paths, queries and header values") {
    struct KnownAnswer {
        std::string method, path, query, service, body, authorization;
    };
    const std::string prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/";
    const std::string names = "/aws4_request, SignedHeaders=host;my-header1;x-amz-content-sha256;x-amz-date, Signature=";
    const std::vector<KnownAnswer> answers = {
        {"GET", "/", "", "service", "",
         prefix + "service" + names + "6dcd61cf8a931dd34228ea9509d0f211c7426abbd9b49795112cbfb8313373bc"},
        {"POST", "/prod/%40connections/abc%3D", "", "execute-api", "hi",
         prefix + "execute-api" + names + "71ad39065f4c07dd714ef079314b7fd1aec2a41d0dc58577ba1b72c5c7ffe343"},
        {"GET", "/prod/@connections", "cursor=a%20b%2Bc%2F%3D&limit=10", "execute-api", "",
         prefix + "execute-api" + names + "f788a69009a3a1b3ea8eb70463bc2ba02faaa14ee21048b89f5aeae34793fb85"},
        {"GET", "/a/./b/../c//d/", "z=1&a=2&a=1", "execute-api", "",
         prefix + "execute-api" + names + "66691b9ecc258657a5d164ecc38cf2d1f9a04f64635c5f619d14edbf99113954"},
        {"GET", "/x/!'()*~._-/%7e", "", "execute-api", "",
         prefix + "execute-api" + names + "6f9a2ceb4fcdf096430ca10f1f974587294e5b34bb47ba10a8612b539eb7055c"},
    };
    const std::string amzDate = "20150830T123600Z";
    const int64_t now = 1440938160;
    for (const auto &a : answers) {
        CAPTURE(a.path);
        Headers headers{{"Host", "example.amazonaws.com"},
                        {"My-Header1", "  a   b \t c  "},
                        {"X-Amz-Content-Sha256", a.body.empty()
                                                     ? "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                                                     : "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"},
                        {"X-Amz-Date", amzDate}};
        std::string auth = signSigV4(a.method, a.path, a.query, headers, a.body, kCred, "us-east-1", a.service, amzDate,
                                     {"X-Amz-Date", "host", "x-amz-content-sha256", "my-header1", "host"});
        CHECK(auth == a.authorization);
        headers.emplace_back("authorization", a.authorization);
        SigV4Result result = verifySigV4(a.method, a.path, a.query, headers, a.body, kCreds, now);
        if (a.service == "execute-api") {
            CHECK(result.ok);
        } else {
            CHECK(result.reason == "Credential scope service is 'service', expected execute-api");
        }
    }
}

TEST_CASE("round trip: what signSigV4 signs, verifySigV4 accepts, and only that") {
    struct Case {
        std::string method, path, query, body;
        Headers headers;
        std::vector<std::string> names;
    };
    const std::vector<Case> cases = {
        {"POST", "/@connections/abc", "", "payload", {{"Host", "gw.example:9001"}}, {"host"}},
        {"POST", "/dev/%40connections/a%2Fb%3D", "", std::string("\0\x01\xff", 3), {{"host", "h"}}, {"host", "x-amz-date"}},
        {"GET", "/@connections", "limit=5&cursor=abc%3D%3D&empty&=v", "", {{"host", "h"}}, {"host"}},
        {"DELETE", "/stage/@connections/%E2%82%AC/", "", "", {{"host", "h"}, {"X-Custom", " a \t b "}, {"x-custom", "c"}},
         {"host", "x-custom"}},
        {"POST", "/p", "", "any body at all", {{"host", "h"}, {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"}},
         {"host", "x-amz-content-sha256"}},
        {"GET", "", "", "", {{"host", "h"}}, {"host"}},
    };
    const SigV4Credential other{"AKIDOTHER", "s3cr3t/with+chars="};
    for (const auto &c : cases) {
        CAPTURE(c.path);
        Headers headers = signedHeaders(c.method, c.path, c.query, c.headers, c.body, kRoundTripDate, c.names, other);
        SigV4Result result = verifySigV4(c.method, c.path, c.query, headers, c.body, {kCred, other}, kRoundTripNow);
        CHECK(result.reason == "");
        CHECK(result.ok);
        CHECK(result.accessKeyId == "AKIDOTHER");
        CHECK_FALSE(verifySigV4(c.method, c.path + "x", c.query, headers, c.body, {other}, kRoundTripNow).ok);
        CHECK_FALSE(verifySigV4("PUT", c.path, c.query, headers, c.body, {other}, kRoundTripNow).ok);
        CHECK_FALSE(verifySigV4(c.method, c.path, c.query + "&q=1", headers, c.body, {other}, kRoundTripNow).ok);
    }
    // With UNSIGNED-PAYLOAD the body is not covered, as in AWS.
    const Case &unsignedPayload = cases[4];
    Headers headers = signedHeaders(unsignedPayload.method, unsignedPayload.path, "", unsignedPayload.headers,
                                    unsignedPayload.body, kRoundTripDate, unsignedPayload.names);
    CHECK(verifySigV4("POST", "/p", "", headers, "another body", kCreds, kRoundTripNow).ok);
    // Without x-amz-content-sha256 the body's own hash is signed.
    headers = signedHeaders("POST", "/p", "", {{"host", "h"}}, "body", kRoundTripDate, {"host"});
    CHECK(verifySigV4("POST", "/p", "", headers, "body", kCreds, kRoundTripNow).ok);
    CHECK(verifySigV4("POST", "/p", "", headers, "bodY", kCreds, kRoundTripNow).reason == "signature does not match");
}

TEST_CASE("canonical query: order and encoding spelling on the wire do not matter, values do") {
    Headers headers = signedHeaders("GET", "/@connections", "b=2&a=%7E%41&a=1", {{"host", "h"}}, "", kRoundTripDate,
                                    {"host"});
    CHECK(verifySigV4("GET", "/@connections", "a=1&a=~A&b=2", headers, "", kCreds, kRoundTripNow).ok);
    CHECK_FALSE(verifySigV4("GET", "/@connections", "a=1&a=~a&b=2", headers, "", kCreds, kRoundTripNow).ok);
    CHECK_FALSE(verifySigV4("GET", "/@connections", "a=1&b=2", headers, "", kCreds, kRoundTripNow).ok);
}

TEST_CASE("malformed Authorization headers are each rejected with a reason") {
    const std::string good = signSigV4("GET", "/@connections/x", "", {{"host", "h"}}, "", kCred, "us-east-1",
                                       "execute-api", kRoundTripDate, {"host"});
    const std::string sig = good.substr(good.find("Signature=") + 10);
    const std::string cred = "Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_request";
    struct Bad {
        std::string authorization, reason;
    };
    const std::vector<Bad> bad = {
        {"", "unsupported Authorization scheme '' (expected AWS4-HMAC-SHA256)"},
        {"Bearer abc", "unsupported Authorization scheme 'Bearer' (expected AWS4-HMAC-SHA256)"},
        {"AWS4-HMAC-SHA1 " + cred + ", SignedHeaders=host, Signature=" + sig,
         "unsupported Authorization scheme 'AWS4-HMAC-SHA1' (expected AWS4-HMAC-SHA256)"},
        {"AWS4-ECDSA-P256-SHA256 " + cred + ", SignedHeaders=host, Signature=" + sig,
         "unsupported Authorization scheme 'AWS4-ECDSA-P256-SHA256' (expected AWS4-HMAC-SHA256)"},
        {"AWS4-HMAC-SHA256", "Authorization AWS4-HMAC-SHA256 has no parameters: it needs Credential=, SignedHeaders= and "
                             "Signature= (AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/execute-api/aws4_request, "
                             "SignedHeaders=..., Signature=...)"},
        {" AWS4-HMAC-SHA256 \t", "Authorization AWS4-HMAC-SHA256 has no parameters: it needs Credential=, SignedHeaders= and "
                                 "Signature= (AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/execute-api/aws4_request, "
                                 "SignedHeaders=..., Signature=...)"},
        {"AWS4-HMAC-SHA256Credential=x", "unsupported Authorization scheme 'AWS4-HMAC-SHA256Credential=x' (expected AWS4-HMAC-SHA256)"},
        {"AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" + sig, "Authorization lacks Credential"},
        {"AWS4-HMAC-SHA256 " + cred + ", Signature=" + sig, "Authorization lacks SignedHeaders"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host", "Authorization lacks Signature"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + sig + ", Signature=" + sig,
         "Authorization repeats Signature"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + sig + ", Extra=1",
         "unknown Authorization component 'Extra'"},
        {"AWS4-HMAC-SHA256 " + cred + " SignedHeaders=host Signature=" + sig,
         "Authorization Credential contains whitespace (components are separated by commas)"},
        {"AWS4-HMAC-SHA256 " + cred + ",, SignedHeaders=host, Signature=" + sig,
         "Authorization component without '=': malformed header"},
        {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api, SignedHeaders=host, Signature=" + sig,
         "Credential must be AccessKeyId/YYYYMMDD/region/service/aws4_request"},
        {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122//execute-api/aws4_request, SignedHeaders=host, Signature=" + sig,
         "Credential must be AccessKeyId/YYYYMMDD/region/service/aws4_request"},
        {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026112/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=" + sig,
         "Credential scope date is not YYYYMMDD"},
        {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/execute-api/aws4_reques, SignedHeaders=host, Signature=" + sig,
         "Credential scope must end in aws4_request"},
        {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261121/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=" + sig,
         "Credential scope date differs from X-Amz-Date"},
        {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + sig,
         "Credential scope service is 's3', expected execute-api"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=, Signature=" + sig, "SignedHeaders has an empty name"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, Signature=" + sig, "SignedHeaders has an empty name"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=Host, Signature=" + sig, "SignedHeaders must be lower-case"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date;host, Signature=" + sig,
         "SignedHeaders must be sorted and unique"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;host, Signature=" + sig, "SignedHeaders must be sorted and unique"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date, Signature=" + sig, "host is not among SignedHeaders"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-missing, Signature=" + sig,
         "signed header 'x-missing' is not in the request"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + sig.substr(1), "Signature must be 64 hex digits"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + sig + "0", "Signature must be 64 hex digits"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + std::string(63, 'a') + "g",
         "Signature must be 64 hex digits"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=", "Signature must be 64 hex digits"},
        {"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + std::string(64, '0'), "signature does not match"},
    };
    Headers base{{"host", "h"}, {"x-amz-date", kRoundTripDate}};
    Headers headers = base;
    headers.emplace_back("Authorization", good);
    REQUIRE(verifySigV4("GET", "/@connections/x", "", headers, "", kCreds, kRoundTripNow).ok);
    for (const auto &b : bad) {
        CAPTURE(b.authorization);
        headers = base;
        headers.emplace_back("Authorization", b.authorization);
        SigV4Result result = verifySigV4("GET", "/@connections/x", "", headers, "", kCreds, kRoundTripNow);
        CHECK_FALSE(result.ok);
        CHECK(result.reason == b.reason);
    }
    // Upper-case hex names the same signature; whitespace around components is tolerated.
    std::string upper = good;
    for (size_t i = upper.find("Signature=") + 10; i < upper.size(); ++i)
        upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
    headers = base;
    headers.emplace_back("authorization", upper);
    CHECK(verifySigV4("GET", "/@connections/x", "", headers, "", kCreds, kRoundTripNow).ok);
    headers = base;
    headers.emplace_back("authorization", "  AWS4-HMAC-SHA256   " + cred + " ,SignedHeaders=host ,  Signature=" + sig + " ");
    CHECK(verifySigV4("GET", "/@connections/x", "", headers, "", kCreds, kRoundTripNow).ok);
}

TEST_CASE("missing, repeated or malformed Authorization, X-Amz-Date and x-amz-content-sha256 headers") {
    Headers headers = signedHeaders("GET", "/p", "", {{"host", "h"}}, "", kRoundTripDate, {"host"});
    auto verify = [&](const Headers &h) { return verifySigV4("GET", "/p", "", h, "", kCreds, kRoundTripNow); };
    REQUIRE(verify(headers).ok);

    Headers h = headers;
    std::erase_if(h, [](const auto &p) { return p.first == "Authorization"; });
    CHECK(verify(h).reason == "missing Authorization header");
    h = headers;
    h.push_back(headers.back());
    CHECK(verify(h).reason == "more than one Authorization header");

    h = headers;
    std::erase_if(h, [](const auto &p) { return p.first == "X-Amz-Date"; });
    CHECK(verify(h).reason == "missing X-Amz-Date header");
    h = headers;
    h.emplace_back("x-amz-date", kRoundTripDate);
    CHECK(verify(h).reason == "more than one X-Amz-Date header");
    for (std::string date : {"20261122T154653", "20261122 154653Z", "2026-11-22T15:46:53Z", "20261322T154653Z",
                             "20260230T154653Z", "20261122T246053Z", "2026112xT154653Z", ""}) {
        CAPTURE(date);
        h = headers;
        setHeader(h, "X-Amz-Date", date);
        CHECK(verify(h).reason == "X-Amz-Date is not YYYYMMDDTHHMMSSZ");
    }

    h = headers;
    h.emplace_back("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    h.emplace_back("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD");
    CHECK(verify(h).reason == "more than one x-amz-content-sha256 header");
    h = headers;
    h.emplace_back("x-amz-content-sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855");
    CHECK(verify(h).reason == "x-amz-content-sha256 does not match the body");
}

}  // TEST_SUITE
