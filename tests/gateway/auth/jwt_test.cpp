#include "jwt.h"

#include <doctest/doctest.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <sys/stat.h>
#include <unistd.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using namespace wsgw;

namespace {

const int64_t kNow = 1795362413;  // 2026-11-22T15:46:53Z
const std::string kSecret = "correct horse battery staple, 32+ bytes";

std::string b64(std::string_view s) { return jwtBase64UrlEncode(s); }

std::shared_ptr<void> own(EVP_PKEY *p) {
    return std::shared_ptr<void>(p, [](void *q) { EVP_PKEY_free(static_cast<EVP_PKEY *>(q)); });
}

// The public half of a key pair, as a separate EVP_PKEY (what a verifier would load).
std::shared_ptr<void> publicOnly(EVP_PKEY *pair) {
    unsigned char *der = nullptr;
    int len = i2d_PUBKEY(pair, &der);
    REQUIRE(len > 0);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(nullptr, &p, len);
    OPENSSL_free(der);
    REQUIRE(pub != nullptr);
    return own(pub);
}

struct TestKeys {
    std::shared_ptr<void> rsa, rsa2, ec, ec2;  // key pairs
    TestKeys() {
        rsa = own(EVP_RSA_gen(2048));
        rsa2 = own(EVP_RSA_gen(2048));
        ec = own(EVP_EC_gen("P-256"));
        ec2 = own(EVP_EC_gen("P-256"));
    }
};

const TestKeys &keys() {
    static TestKeys k;
    return k;
}

EVP_PKEY *pk(const std::shared_ptr<void> &p) { return static_cast<EVP_PKEY *>(p.get()); }

std::string signHs256(std::string_view secret, std::string_view input) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char *>(input.data()), input.size(), mac, &len);
    return std::string(reinterpret_cast<char *>(mac), len);
}

std::string digestSign(EVP_PKEY *key, std::string_view input) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = 0;
    REQUIRE(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1);
    REQUIRE(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char *>(input.data()),
                           input.size()) == 1);
    std::string sig(len, '\0');
    REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(sig.data()), &len,
                           reinterpret_cast<const unsigned char *>(input.data()), input.size()) == 1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    return sig;
}

std::string signRs256(EVP_PKEY *key, std::string_view input) { return digestSign(key, input); }

// ES256 as JWS wants it: raw R||S, 32 bytes each.
std::string signEs256(EVP_PKEY *key, std::string_view input) {
    std::string der = digestSign(key, input);
    const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
    ECDSA_SIG *sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    REQUIRE(sig != nullptr);
    unsigned char raw[64];
    REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32);
    REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32);
    ECDSA_SIG_free(sig);
    return std::string(reinterpret_cast<char *>(raw), 64);
}

std::string header(std::string_view alg, std::string_view kid = {}) {
    std::string h = "{\"alg\":\"" + std::string(alg) + "\",\"typ\":\"JWT\"";
    if (!kid.empty()) h += ",\"kid\":\"" + std::string(kid) + "\"";
    return h + "}";
}

std::string hsToken(std::string_view payload, std::string_view secret = kSecret, std::string_view kid = {}) {
    std::string input = b64(header("HS256", kid)) + "." + b64(payload);
    return input + "." + b64(signHs256(secret, input));
}

std::string rsToken(std::string_view payload, EVP_PKEY *key, std::string_view kid = {}) {
    std::string input = b64(header("RS256", kid)) + "." + b64(payload);
    return input + "." + b64(signRs256(key, input));
}

std::string esToken(std::string_view payload, EVP_PKEY *key, std::string_view kid = {}) {
    std::string input = b64(header("ES256", kid)) + "." + b64(payload);
    return input + "." + b64(signEs256(key, input));
}

JwtKey hsKey(std::string secret = kSecret, std::string kid = {}) {
    JwtKey k;
    k.kid = std::move(kid);
    k.alg = "HS256";
    k.secret = std::move(secret);
    return k;
}

JwtKey pubKey(const std::shared_ptr<void> &pair, std::string alg, std::string kid = {}) {
    JwtKey k;
    k.kid = std::move(kid);
    k.alg = std::move(alg);
    k.publicKey = publicOnly(pk(pair));
    return k;
}

JwtSettings allAlgs() {
    JwtSettings s;
    s.algorithms = {"HS256", "RS256", "ES256"};
    s.keys = {hsKey(), pubKey(keys().rsa, "RS256"), pubKey(keys().ec, "ES256")};
    return s;
}

std::string bigNumB64(EVP_PKEY *key, const char *param, int pad = 0) {
    BIGNUM *bn = nullptr;
    REQUIRE(EVP_PKEY_get_bn_param(key, param, &bn) == 1);
    std::string bytes(pad ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn)), '\0');
    if (pad) REQUIRE(BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(bytes.data()), pad) == pad);
    else BN_bn2bin(bn, reinterpret_cast<unsigned char *>(bytes.data()));
    BN_free(bn);
    return b64(bytes);
}

std::string rsaJwk(EVP_PKEY *key, std::string_view kid) {
    return "{\"kty\":\"RSA\",\"kid\":\"" + std::string(kid) + "\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"" +
           bigNumB64(key, OSSL_PKEY_PARAM_RSA_N) + "\",\"e\":\"" + bigNumB64(key, OSSL_PKEY_PARAM_RSA_E) + "\"}";
}

std::string ecJwk(EVP_PKEY *key, std::string_view kid) {
    return "{\"kty\":\"EC\",\"kid\":\"" + std::string(kid) + "\",\"crv\":\"P-256\",\"x\":\"" +
           bigNumB64(key, OSSL_PKEY_PARAM_EC_PUB_X, 32) + "\",\"y\":\"" +
           bigNumB64(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32) + "\"}";
}

std::string tmpPath(std::string_view name) {
    return "/tmp/wsgw_jwt_test_" + std::to_string(::getpid()) + "_" + std::string(name);
}

void writeFile(const std::string &path, std::string_view text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
}

std::string publicPem(EVP_PKEY *key) {
    BIO *bio = BIO_new(BIO_s_mem());
    REQUIRE(PEM_write_bio_PUBKEY(bio, key) == 1);
    char *data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(len));
    BIO_free(bio);
    return pem;
}

}  // namespace

TEST_SUITE("jwt") {

TEST_CASE("base64url round-trips and the decoder is strict") {
    std::string out;
    std::vector<std::string> samples{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\xff\xfe\x00\x01", 4)};
    for (const std::string &s : samples) {
        CHECK(jwtBase64UrlDecode(b64(s), out));
        CHECK(out == s);
    }
    CHECK(b64("\xfb\xff") == "-_8");
    CHECK_FALSE(jwtBase64UrlDecode("Zm9v=", out));     // padding
    CHECK_FALSE(jwtBase64UrlDecode("Zg==", out));      // padding
    CHECK_FALSE(jwtBase64UrlDecode("Zm+v", out));      // standard alphabet
    CHECK_FALSE(jwtBase64UrlDecode("Zm9vY", out));     // 4n+1 characters
    CHECK_FALSE(jwtBase64UrlDecode("Zh", out));        // non-zero unused bits ("Zg" is canonical)
    CHECK_FALSE(jwtBase64UrlDecode("Zm 9v", out));
}

TEST_CASE("valid HS256, RS256 and ES256 tokens are accepted with their claims") {
    JwtSettings s = allAlgs();
    std::string payload = "{\"sub\":\"user-42\",\"scope\":\"read  write\",\"exp\":" + std::to_string(kNow + 600) +
                          ",\"n\":[1,2.5,{\"x\":null}],\"name\":\"J\\u00f6rg\"}";
    for (const std::string &token :
         {hsToken(payload), rsToken(payload, pk(keys().rsa)), esToken(payload, pk(keys().ec))}) {
        JwtResult r = verifyJwt(token, s, kNow);
        CAPTURE(r.reason);
        REQUIRE(r.ok);
        CHECK(r.status == 200);
        CHECK(r.reason.empty());
        CHECK(r.subject == "user-42");
        CHECK(r.scopes == std::vector<std::string>{"read", "write"});
        CHECK(r.expiresAt == kNow + 600);
        CHECK(r.claimsJson == "{\"sub\":\"user-42\",\"scope\":\"read  write\",\"exp\":" +
                                  std::to_string(kNow + 600) + ",\"n\":[1,2.5,{\"x\":null}],\"name\":\"J\xc3\xb6rg\"}");
    }

    JwtResult r = verifyJwt(esToken("{\"scp\":[\"a\",\"b:c\"],\"sub\":7}", pk(keys().ec)), s, kNow);
    REQUIRE(r.ok);
    CHECK(r.scopes == std::vector<std::string>{"a", "b:c"});
    CHECK(r.subject.empty());  // not a string
    CHECK(r.expiresAt == 0);
    CHECK(r.claimsJson == "{\"scp\":[\"a\",\"b:c\"],\"sub\":7}");
}

TEST_CASE("a wrong or tampered signature is refused with 403") {
    JwtSettings s = allAlgs();
    std::string payload = "{\"sub\":\"a\"}";
    std::vector<std::string> bad = {
        hsToken(payload, "another secret"),
        rsToken(payload, pk(keys().rsa2)),
        esToken(payload, pk(keys().ec2)),
    };
    // Same header and signature over another payload.
    for (std::string token : {hsToken(payload), rsToken(payload, pk(keys().rsa)), esToken(payload, pk(keys().ec))}) {
        size_t d1 = token.find('.'), d2 = token.rfind('.');
        bad.push_back(token.substr(0, d1 + 1) + b64("{\"sub\":\"b\"}") + token.substr(d2));
        // One signature byte flipped.
        std::string sig;
        REQUIRE(jwtBase64UrlDecode(token.substr(d2 + 1), sig));
        sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 1);
        bad.push_back(token.substr(0, d2 + 1) + b64(sig));
        // No signature at all.
        bad.push_back(token.substr(0, d2 + 1));
    }
    for (const auto &token : bad) {
        JwtResult r = verifyJwt(token, s, kNow);
        CAPTURE(token);
        CHECK_FALSE(r.ok);
        CHECK(r.status == 403);
        CHECK(r.claimsJson.empty());
        CHECK(r.reason.find(kSecret) == std::string::npos);
    }
    JwtResult r = verifyJwt(hsToken(payload, "another secret"), s, kNow);
    CHECK(r.reason.find("signature verification failed") != std::string::npos);
}

TEST_CASE("ES256 signatures must be 64 raw bytes; DER is refused") {
    JwtSettings s = allAlgs();
    std::string input = b64(header("ES256")) + "." + b64("{}");
    JwtResult r = verifyJwt(input + "." + b64(digestSign(pk(keys().ec), input)), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("expected 64") != std::string::npos);
    r = verifyJwt(input + "." + b64(std::string(64, '\0')), s, kNow);  // r = s = 0
    CHECK(r.status == 403);
    r = verifyJwt(input + "." + b64(std::string(64, '\xff')), s, kNow);  // r, s >= n
    CHECK(r.status == 403);
}

TEST_CASE("an algorithm that is not allowed is refused with 403, and \"none\" never passes") {
    JwtSettings s = allAlgs();
    s.algorithms = {"RS256"};
    JwtResult r = verifyJwt(hsToken("{}"), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("not allowed") != std::string::npos);
    CHECK(verifyJwt(esToken("{}", pk(keys().ec)), s, kNow).status == 403);
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa)), s, kNow).ok);

    s.algorithms = {"none", "HS256", "RS256", "ES256", "HS512"};
    for (std::string alg : {"none", "None", "NONE"}) {
        for (std::string sig : std::vector<std::string>{"", b64(signHs256(kSecret, "x"))}) {
            std::string token = b64("{\"alg\":\"" + alg + "\"}") + "." + b64("{\"sub\":\"x\"}") + "." + sig;
            r = verifyJwt(token, s, kNow);
            CAPTURE(token);
            CHECK_FALSE(r.ok);
            CHECK(r.status == 403);
        }
    }
    std::string input = b64("{\"alg\":\"HS512\"}") + "." + b64("{}");
    r = verifyJwt(input + "." + b64(signHs256(kSecret, input)), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("not supported") != std::string::npos);

    s.algorithms = {};
    CHECK(verifyJwt(hsToken("{}"), s, kNow).status == 403);
}

TEST_CASE("an HS256 token cannot be verified with an RSA public key as its secret") {
    // The classic confusion: the attacker HMACs with the server's public key (PEM or DER) as the secret.
    std::string pem = publicPem(pk(keys().rsa));
    unsigned char *der = nullptr;
    int derLen = i2d_PUBKEY(pk(keys().rsa), &der);
    std::string derBytes(reinterpret_cast<char *>(der), static_cast<size_t>(derLen));
    OPENSSL_free(der);

    JwtSettings s;
    s.keys = {pubKey(keys().rsa, "RS256")};
    for (auto algs : {std::vector<std::string>{"RS256"}, std::vector<std::string>{"RS256", "HS256"}}) {
        s.algorithms = algs;
        for (const std::string &secret : {pem, derBytes}) {
            JwtResult r = verifyJwt(hsToken("{\"sub\":\"admin\"}", secret), s, kNow);
            CHECK_FALSE(r.ok);
            CHECK(r.status == 403);
        }
    }
    CHECK(verifyJwt(hsToken("{\"sub\":\"admin\"}", pem), s, kNow).reason.find("no HS256 key") != std::string::npos);

    // A key is only used for its own algorithm even if it is mislabelled: an RSA key labelled HS256 has no secret.
    JwtKey mislabelled = pubKey(keys().rsa, "HS256");
    s.keys = {mislabelled};
    CHECK(verifyJwt(hsToken("{}", pem), s, kNow).status == 403);
    CHECK(verifyJwt(hsToken("{}", ""), s, kNow).status == 403);
    // And an EC key labelled RS256 does not verify RS256 tokens (nor crash).
    s.keys = {pubKey(keys().ec, "RS256")};
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa)), s, kNow).status == 403);
}

TEST_CASE("exp and nbf are checked with the clock skew") {
    JwtSettings s = allAlgs();
    auto with = [&](std::string claims, int64_t skew) {
        s.clockSkewSeconds = skew;
        return verifyJwt(hsToken(claims), s, kNow);
    };
    std::string expPast = "{\"exp\":" + std::to_string(kNow - 30) + "}";
    CHECK(with(expPast, 60).ok);
    JwtResult r = with(expPast, 0);
    CHECK(r.status == 403);
    CHECK(r.reason.find("token expired at " + std::to_string(kNow - 30)) == 0);
    CHECK(r.reason.find("2026-11-22T15:46:23Z") != std::string::npos);
    CHECK(with(expPast, 29).status == 403);
    CHECK(with(expPast, 30).ok);
    CHECK(with("{\"exp\":" + std::to_string(kNow) + "}", 0).ok);  // expires after, not at, exp
    CHECK(with("{\"exp\":" + std::to_string(kNow - 1) + ".5}", 0).status == 403);
    CHECK(with("{\"exp\":" + std::to_string(kNow) + ".5}", 0).ok);
    CHECK(with("{\"exp\":" + std::to_string(kNow) + ".5}", 0).expiresAt == kNow);

    std::string nbfFuture = "{\"nbf\":" + std::to_string(kNow + 30) + "}";
    CHECK(with(nbfFuture, 60).ok);
    r = with(nbfFuture, 0);
    CHECK(r.status == 403);
    CHECK(r.reason.find("not valid before") != std::string::npos);
    CHECK(with(nbfFuture, 30).ok);
    CHECK(with(nbfFuture, 29).status == 403);
    CHECK(with("{\"nbf\":" + std::to_string(kNow) + "}", 0).ok);
    CHECK(with("{\"nbf\":" + std::to_string(kNow) + ".5}", 0).status == 403);
    CHECK(with("{\"nbf\":" + std::to_string(kNow - 1) + ".5}", 0).ok);

    // Extremes saturate instead of overflowing.
    CHECK(with("{\"exp\":9223372036854775807}", INT64_MAX).ok);
    CHECK(with("{\"exp\":18446744073709551615}", 60).ok);
    CHECK(with("{\"exp\":1e300}", 60).ok);
    CHECK(with("{\"exp\":-1e300}", INT64_MAX).status == 403);
    CHECK(with("{\"exp\":-9223372036854775808}", INT64_MAX).status == 403);  // -1 after adding the skew
    CHECK(with("{\"nbf\":-1e300,\"exp\":1e300}", -5).ok);
    CHECK(verifyJwt(hsToken("{\"exp\":0}"), s, INT64_MAX).status == 403);
    CHECK(verifyJwt(hsToken("{\"nbf\":0}"), s, INT64_MIN).status == 403);

    // Non-numbers are malformed.
    for (std::string claims : {"{\"exp\":\"2030-01-01\"}", "{\"exp\":null}", "{\"nbf\":true}", "{\"nbf\":[1]}"}) {
        r = with(claims, 60);
        CHECK(r.status == 401);
        CHECK(r.reason.find("is not a number") != std::string::npos);
    }
}

TEST_CASE("iss must equal the configured issuer") {
    JwtSettings s = allAlgs();
    s.issuer = "https://issuer.example/";
    CHECK(verifyJwt(hsToken("{\"iss\":\"https://issuer.example/\"}"), s, kNow).ok);
    JwtResult r = verifyJwt(hsToken("{\"iss\":\"https://evil.example/\"}"), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("issuer") != std::string::npos);
    CHECK(verifyJwt(hsToken("{\"iss\":\"https://issuer.example\"}"), s, kNow).status == 403);
    CHECK(verifyJwt(hsToken("{}"), s, kNow).status == 403);
    CHECK(verifyJwt(hsToken("{\"iss\":[\"https://issuer.example/\"]}"), s, kNow).status == 403);
    s.issuer.clear();
    CHECK(verifyJwt(hsToken("{\"iss\":\"anyone\"}"), s, kNow).ok);
}

TEST_CASE("aud (string or array) must contain one of the configured audiences") {
    JwtSettings s = allAlgs();
    s.audience = {"api://chat", "api://other"};
    CHECK(verifyJwt(hsToken("{\"aud\":\"api://chat\"}"), s, kNow).ok);
    CHECK(verifyJwt(hsToken("{\"aud\":\"api://other\"}"), s, kNow).ok);
    CHECK(verifyJwt(hsToken("{\"aud\":[\"x\",\"api://chat\"]}"), s, kNow).ok);
    CHECK(verifyJwt(hsToken("{\"aud\":[1,null,\"api://other\"]}"), s, kNow).ok);
    JwtResult r = verifyJwt(hsToken("{\"aud\":[\"x\",\"y\"]}"), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("audience") != std::string::npos);
    CHECK(verifyJwt(hsToken("{\"aud\":\"api://chatx\"}"), s, kNow).status == 403);
    CHECK(verifyJwt(hsToken("{\"aud\":[]}"), s, kNow).status == 403);
    CHECK(verifyJwt(hsToken("{\"aud\":{\"api://chat\":1}}"), s, kNow).status == 403);
    CHECK(verifyJwt(hsToken("{}"), s, kNow).status == 403);
    s.audience.clear();
    CHECK(verifyJwt(hsToken("{\"aud\":\"whatever\"}"), s, kNow).ok);
    CHECK(verifyJwt(hsToken("{}"), s, kNow).ok);
}

TEST_CASE("kid selects the keys that are tried") {
    JwtSettings s;
    s.algorithms = {"HS256", "RS256"};
    s.keys = {hsKey("secret-a", "a"), hsKey("secret-b", "b"), pubKey(keys().rsa, "RS256", "r1"),
              pubKey(keys().rsa2, "RS256", "r2")};
    CHECK(verifyJwt(hsToken("{}", "secret-b", "b"), s, kNow).ok);
    CHECK(verifyJwt(hsToken("{}", "secret-a", "a"), s, kNow).ok);
    // Right secret, wrong kid: only key "a" is tried.
    JwtResult r = verifyJwt(hsToken("{}", "secret-b", "a"), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("1 key tried") != std::string::npos);
    r = verifyJwt(hsToken("{}", "secret-a", "zzz"), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("no HS256 key with kid \"zzz\"") != std::string::npos);
    // No kid in the token: every key of the family is tried.
    CHECK(verifyJwt(hsToken("{}", "secret-b"), s, kNow).ok);
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa2)), s, kNow).ok);
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa2), "r2"), s, kNow).ok);
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa2), "r1"), s, kNow).status == 403);
    // A key without kid matches any kid.
    s.keys.push_back(hsKey("secret-c"));
    CHECK(verifyJwt(hsToken("{}", "secret-c", "unknown"), s, kNow).ok);
    CHECK(verifyJwt(hsToken("{}", "secret-c", "a"), s, kNow).ok);
}

TEST_CASE("malformed tokens are refused with 401") {
    JwtSettings s = allAlgs();
    std::string h = b64(header("HS256")), p = b64("{\"sub\":\"x\"}");
    auto signedWith = [](std::string hb, std::string pb) {
        std::string input = hb + "." + pb;
        return input + "." + b64(signHs256(kSecret, input));
    };
    std::string good = signedWith(h, p);
    REQUIRE(verifyJwt(good, s, kNow).ok);
    std::vector<std::string> bad = {
        "",
        "abc",
        h + "." + p,                                  // 2 parts
        good + ".x",                                  // 4 parts
        good + "..",                                  // 5 parts (JWE-like)
        "." + p + ".sig",                             // empty header
        h + "..sig",                                  // empty payload
        signedWith(h + "=", p),                       // padding in the header
        signedWith(h, p + "="),                       // padding in the payload
        good + "=",                                   // padding in the signature
        signedWith(h, p.substr(0, 3) + "!" + p.substr(4)),  // invalid character
        signedWith(h, p.substr(0, 3) + "+" + p.substr(4)),  // standard alphabet
        signedWith(h + "A", p),                       // 4n+1 length
        good.substr(0, good.size() - 1) + "_",        // non-canonical trailing bits in the signature (43 chars)
        signedWith(b64("[\"alg\",\"HS256\"]"), p),    // header not an object
        signedWith(b64("\"HS256\""), p),
        signedWith(b64("{\"alg\":\"HS256\""), p),     // invalid JSON
        signedWith(b64("{\"alg\":\"HS256\"} x"), p),  // trailing garbage
        signedWith(b64("{}"), p),                     // no alg
        signedWith(b64("{\"alg\":256}"), p),          // alg not a string
        signedWith(b64("{\"alg\":\"HS256\",\"kid\":1}"), p),
        signedWith(b64("{\"alg\":\"HS256\",\"typ\":false}"), p),
        signedWith(b64("{\"alg\":\"HS256\",\"alg\":\"none\"}"), p),  // duplicate member
        signedWith(h, b64("123")),                    // payload not an object
        signedWith(h, b64("[]")),
        signedWith(h, b64("null")),
        signedWith(h, b64("not json")),
        signedWith(h, b64("{\"sub\":\"a\",\"sub\":\"b\"}")),  // duplicate claim
        signedWith(h, b64("{\"s\":\"\xff\"}")),       // invalid UTF-8
        signedWith(h, b64(std::string(40, '[') + std::string(40, ']'))),
        signedWith(h, b64("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}")),  // too deep
        std::string(kJwtMaxTokenLength + 1, 'a'),
    };
    for (const auto &token : bad) {
        JwtResult r = verifyJwt(token, s, kNow);
        CAPTURE(token.substr(0, 120));
        CAPTURE(r.reason);
        CHECK_FALSE(r.ok);
        CHECK(r.status == 401);
        CHECK_FALSE(r.reason.empty());
    }
    CHECK(verifyJwt("", s, kNow).reason == "missing token");
    CHECK(verifyJwt(std::string(kJwtMaxTokenLength + 1, 'a'), s, kNow).reason.find("token too long") == 0);
    CHECK(verifyJwt(h + "." + p, s, kNow).reason.find("3") != std::string::npos);
    // Deep but legal nesting within the limit is fine.
    CHECK(verifyJwt(signedWith(h, b64("{\"a\":" + std::string(30, '[') + std::string(30, ']') + "}")), s, kNow).ok);
    // A large but bounded token is fine.
    std::string bigClaim = "{\"pad\":\"" + std::string(10000, 'x') + "\"}";
    CHECK(verifyJwt(signedWith(h, b64(bigClaim)), s, kNow).ok);
}

TEST_CASE("crit headers are refused") {
    JwtSettings s = allAlgs();
    std::string input = b64("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}") + "." + b64("{}");
    JwtResult r = verifyJwt(input + "." + b64(signHs256(kSecret, input)), s, kNow);
    CHECK(r.status == 403);
    CHECK(r.reason.find("crit") != std::string::npos);
}

TEST_CASE("reasons never contain the secret") {
    JwtSettings s = allAlgs();
    for (const std::string &token : {hsToken("{\"exp\":1}"), hsToken("{}", "wrong"), hsToken("{\"iss\":\"x\"}")}) {
        s.issuer = "y";
        JwtResult r = verifyJwt(token, s, kNow);
        CHECK_FALSE(r.ok);
        CHECK(r.reason.find(kSecret) == std::string::npos);
    }
    JwtKey k;
    CHECK(loadJwtSecret("base64:!!!" + kSecret, k).find(kSecret) == std::string::npos);
}

TEST_CASE("loadJwtSecret takes text or base64: bytes") {
    JwtKey k;
    k.kid = "keep";
    CHECK(loadJwtSecret("plain text secret", k) == "");
    CHECK(k.alg == "HS256");
    CHECK(k.secret == "plain text secret");
    CHECK(k.kid == "keep");

    std::string raw("\x00\x01\xfe\xff secret bytes \x80", 19);
    CHECK(loadJwtSecret("base64:AAH+/yBzZWNyZXQgYnl0ZXMggA==", k) == "");
    CHECK(k.secret == raw);
    CHECK(loadJwtSecret("base64: AAH-_yBzZWNyZXQgYnl0ZXMggA\n", k) == "");  // URL-safe, unpadded, trimmed
    CHECK(k.secret == raw);

    JwtSettings s;
    s.algorithms = {"HS256"};
    s.keys = {k};
    std::string input = b64(header("HS256")) + "." + b64("{\"sub\":\"b\"}");
    CHECK(verifyJwt(input + "." + b64(signHs256(raw, input)), s, kNow).ok);

    JwtKey untouched = k;
    CHECK(loadJwtSecret("base64:not base64!", k) != "");
    CHECK(loadJwtSecret("base64:", k).find("empty") != std::string::npos);
    CHECK(loadJwtSecret("", k).find("empty") != std::string::npos);
    CHECK(k.secret == untouched.secret);
}

TEST_CASE("loadPemPublicKey reads RSA and EC P-256 public keys") {
    std::string rsaPath = tmpPath("rsa.pem"), ecPath = tmpPath("ec.pem"), junkPath = tmpPath("junk.pem"),
                smallPath = tmpPath("rsa1024.pem");
    writeFile(rsaPath, publicPem(pk(keys().rsa)));
    writeFile(ecPath, publicPem(pk(keys().ec)));
    writeFile(junkPath, "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
    EVP_PKEY *small = EVP_RSA_gen(1024);
    writeFile(smallPath, publicPem(small));
    EVP_PKEY_free(small);

    JwtKey rsa, ec;
    rsa.kid = "r";
    CHECK(loadPemPublicKey(rsaPath, rsa) == "");
    CHECK(rsa.alg == "RS256");
    CHECK(rsa.kid == "r");
    CHECK(loadPemPublicKey(ecPath, ec) == "");
    CHECK(ec.alg == "ES256");

    JwtSettings s;
    s.algorithms = {"RS256", "ES256"};
    s.keys = {rsa, ec};
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa), "r"), s, kNow).ok);
    CHECK(verifyJwt(esToken("{}", pk(keys().ec)), s, kNow).ok);
    CHECK(verifyJwt(esToken("{}", pk(keys().ec2)), s, kNow).status == 403);

    JwtKey k;
    std::string err = loadPemPublicKey(junkPath, k);
    CHECK(err.find(junkPath) == 0);
    CHECK(err.find("no PEM public key") != std::string::npos);
    err = loadPemPublicKey(smallPath, k);
    CHECK(err.find("1024 bits") != std::string::npos);
    err = loadPemPublicKey(tmpPath("missing.pem"), k);
    CHECK(err.find(tmpPath("missing.pem") + ": cannot read the key file") == 0);
    CHECK(loadPemPublicKey("/tmp", k).find("not a regular file") != std::string::npos);
    // A FIFO is refused at once: opened as it was, it waited for a writer for ever (start-up, a reload and
    // then the shutdown hung on it).
    std::string fifo = tmpPath("key-fifo.pem");
    ::unlink(fifo.c_str());
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(loadPemPublicKey(fifo, k).find("is a FIFO, not a regular file") != std::string::npos);
    std::vector<JwtKey> fifoSet;
    CHECK(loadJwks(fifo, fifoSet).find("is a FIFO, not a regular file") != std::string::npos);
    ::unlink(fifo.c_str());
    CHECK(k.alg.empty());
    CHECK(k.publicKey == nullptr);

    for (const auto &p : {rsaPath, ecPath, junkPath, smallPath}) std::remove(p.c_str());
}

TEST_CASE("loadJwks reads RSA, EC and oct keys that then verify tokens") {
    std::string jwks = "{\"keys\":[" + rsaJwk(pk(keys().rsa), "rsa-1") + "," + ecJwk(pk(keys().ec), "ec-1") +
                       ",{\"kty\":\"oct\",\"kid\":\"hs-1\",\"k\":\"" + b64(kSecret) + "\"}" +
                       ",{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}" +   // skipped: encryption
                       ",{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}" +              // skipped: unsupported
                       ",{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AAAA\",\"y\":\"AAAA\"}" +  // skipped: curve
                       ",{\"kty\":\"RSA\",\"kid\":\"rsa-2\",\"alg\":\"RS512\",\"n\":\"" +  // skipped: alg
                       bigNumB64(pk(keys().rsa2), OSSL_PKEY_PARAM_RSA_N) + "\",\"e\":\"AQAB\"}" + "]}";
    std::string path = tmpPath("jwks.json");
    writeFile(path, jwks);
    std::vector<JwtKey> loaded;
    REQUIRE(loadJwks(path, loaded) == "");
    std::remove(path.c_str());
    REQUIRE(loaded.size() == 3);
    CHECK(loaded[0].kid == "rsa-1");
    CHECK(loaded[0].alg == "RS256");
    CHECK(loaded[1].kid == "ec-1");
    CHECK(loaded[1].alg == "ES256");
    CHECK(loaded[2].kid == "hs-1");
    CHECK(loaded[2].alg == "HS256");
    CHECK(loaded[2].secret == kSecret);

    JwtSettings s;
    s.algorithms = {"RS256", "ES256", "HS256"};
    s.keys = loaded;
    CHECK(verifyJwt(rsToken("{\"sub\":\"r\"}", pk(keys().rsa), "rsa-1"), s, kNow).ok);
    CHECK(verifyJwt(esToken("{\"sub\":\"e\"}", pk(keys().ec), "ec-1"), s, kNow).ok);
    CHECK(verifyJwt(hsToken("{\"sub\":\"h\"}", kSecret, "hs-1"), s, kNow).ok);
    CHECK(verifyJwt(esToken("{}", pk(keys().ec)), s, kNow).ok);                       // no kid: all tried
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa2), "rsa-2"), s, kNow).status == 403);  // its key was skipped
    CHECK(verifyJwt(rsToken("{}", pk(keys().rsa), "ec-1"), s, kNow).status == 403);    // kid of another family

    // Padded values are tolerated in key files.
    std::vector<JwtKey> more;
    CHECK(parseJwks("{\"keys\":[{\"kty\":\"oct\",\"k\":\"YWJj\"},{\"kty\":\"oct\",\"k\":\"YWI=\"}]}", more) == "");
    REQUIRE(more.size() == 2);
    CHECK(more[1].secret == "ab");
}

TEST_CASE("parseJwks reports what is wrong and adds nothing on error") {
    std::string ec = ecJwk(pk(keys().ec), "e");
    std::string badPoint = ec;
    size_t y = badPoint.find("\"y\":\"") + 5;
    badPoint[y + 3] = badPoint[y + 3] == 'A' ? 'B' : 'A';  // no longer on the curve
    struct Case {
        std::string json, error;
    };
    std::vector<Case> cases = {
        {"", "JWKS is empty"},
        {"[]", "not a JSON object"},
        {"{\"keys\":", "not valid JSON"},
        {"{}", "no \"keys\" array"},
        {"{\"keys\":{}}", "no \"keys\" array"},
        {"{\"keys\":[]}", "no usable key"},
        {"{\"keys\":[{\"kty\":\"OKP\"}]}", "no usable key"},
        {"{\"keys\":[1]}", "key #0 is not an object"},
        {"{\"keys\":[{\"kid\":\"a\"}]}", "no \"kty\""},
        {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"e\":\"AQAB\"}]}", "key #0 (kid \"a\") has no \"n\""},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "bits"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}", "\"n\" is not valid base64url"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", "32 bytes"},
        {"{\"keys\":[" + badPoint + "]}", "not a point on P-256"},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"\"}]}", "\"k\" is empty"},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"YWJj\",\"kid\":5}]}", "\"kid\" is not a string"},
        {"{\"keys\":[" + ec + ",{\"kty\":\"oct\"}]}", "key #1 has no \"k\""},
    };
    for (const auto &c : cases) {
        std::vector<JwtKey> out;
        std::string err = parseJwks(c.json, out);
        CAPTURE(c.json.substr(0, 200));
        CAPTURE(err);
        CHECK(err.find(c.error) != std::string::npos);
        CHECK(out.empty());
    }
    std::vector<JwtKey> out;
    CHECK(loadJwks(tmpPath("no-such-jwks.json"), out).find("no-such-jwks.json: cannot read") != std::string::npos);
}

}  // TEST_SUITE
