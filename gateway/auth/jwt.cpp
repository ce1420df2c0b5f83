#include "jwt.h"

#include "json_text.h"

#include "base64.h"
#include "config_file.h"
#include "text.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <ctime>
#include <optional>
#include <utility>

namespace wsgw {
namespace {

constexpr int kMaxJsonDepth = 32;               // claims and JWKS are shallow; bounds the writer's recursion
constexpr size_t kMaxKeyFileBytes = 1 << 20;    // PEM and JWKS files
constexpr int kRsaMinBits = 2048, kRsaMaxBits = 16384;
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

using Value = rapidjson::Value;

JwtResult reject(int status, std::string reason) {
    JwtResult r;
    r.status = status;
    r.reason = std::move(reason);
    return r;
}

// A token field for a reason: quoted, at most 40 bytes, non-printable bytes as '?'.
std::string quoted(std::string_view s) {
    constexpr size_t kMax = 40;
    std::string out = "\"";
    for (size_t i = 0; i < s.size() && i < kMax; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? static_cast<char>(c) : '?';
    }
    if (s.size() > kMax) out += "...";
    out += '"';
    return out;
}

std::string_view viewOf(const Value &v) { return {v.GetString(), v.GetStringLength()}; }

// Parses `text` as one JSON object with unique member names (RFC 7519 section 4: duplicate claim names must
// be rejected or resolved to the last; rejecting avoids disagreeing with other parsers). "" or the error.
std::string parseObject(std::string_view text, rapidjson::Document &doc, const char *what) {
    if (text.empty()) return std::string(what) + " is empty";
    if (!jsonDepthWithin(text, kMaxJsonDepth))
        return std::string(what) + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    doc.Parse<kParseFlags>(text.data(), text.size());
    if (doc.HasParseError())
        return std::string(what) + " is not valid JSON (" + rapidjson::GetParseError_En(doc.GetParseError()) +
               " at offset " + std::to_string(doc.GetErrorOffset()) + ")";
    if (!doc.IsObject()) return std::string(what) + " is not a JSON object";
    std::vector<std::string_view> names;
    names.reserve(doc.MemberCount());
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) names.push_back(viewOf(m->name));
    std::sort(names.begin(), names.end());
    auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) return std::string(what) + " has the member " + quoted(*dup) + " more than once";
    return "";
}

int64_t saturatingAdd(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

// A NumericDate claim as whole seconds (fractions rounded down, or up for roundUp), saturated to int64.
bool numericDate(const Value &v, bool roundUp, int64_t &out) {
    if (v.IsInt64()) {
        out = v.GetInt64();
        return true;
    }
    if (v.IsUint64()) {  // above INT64_MAX
        out = INT64_MAX;
        return true;
    }
    if (!v.IsNumber()) return false;
    double d = v.GetDouble();
    if (!std::isfinite(d)) return false;
    d = roundUp ? std::ceil(d) : std::floor(d);
    if (d >= 9223372036854775808.0) out = INT64_MAX;
    else if (d <= -9223372036854775808.0) out = INT64_MIN;
    else out = static_cast<int64_t>(d);
    return true;
}

std::string describeTime(int64_t t) {
    std::string s = std::to_string(t);
    if (t >= 0 && t <= 253402300799) {  // through 9999-12-31T23:59:59Z
        time_t tt = static_cast<time_t>(t);
        struct tm tm {};
        char buf[32];
        if (gmtime_r(&tt, &tm) && std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
            s += std::string(" (") + buf + ")";
    }
    return s;
}

std::vector<std::string> splitScopes(std::string_view s) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < s.size()) {
        size_t j = s.find(' ', i);
        if (j == std::string_view::npos) j = s.size();
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

bool isAllowed(const JwtSettings &settings, std::string_view alg) {
    return std::find(settings.algorithms.begin(), settings.algorithms.end(), alg) != settings.algorithms.end();
}

// ---- keys ----

EVP_PKEY *pkeyOf(const JwtKey &k) { return static_cast<EVP_PKEY *>(k.publicKey.get()); }

std::shared_ptr<void> ownKey(EVP_PKEY *p) {
    return std::shared_ptr<void>(p, [](void *q) { EVP_PKEY_free(static_cast<EVP_PKEY *>(q)); });
}

bool isP256(EVP_PKEY *p) {
    if (!p || EVP_PKEY_get_base_id(p) != EVP_PKEY_EC) return false;
    char name[80] = {};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(p, name, sizeof name, &len) != 1) return false;
    std::string_view n(name, std::min(len, sizeof name));
    return n == "prime256v1" || n == "P-256" || n == "secp256r1";
}

// "" when `p` is an RSA key usable for RS256: 2048..16384 bits, odd modulus, odd exponent of 2..64 bits.
std::string checkRsa(EVP_PKEY *p) {
    if (!p || EVP_PKEY_get_base_id(p) != EVP_PKEY_RSA) return "not an RSA key";
    int bits = EVP_PKEY_get_bits(p);
    if (bits < kRsaMinBits || bits > kRsaMaxBits)
        return "RSA key has " + std::to_string(bits) + " bits (" + std::to_string(kRsaMinBits) + " to " +
               std::to_string(kRsaMaxBits) + " accepted)";
    BIGNUM *n = nullptr, *e = nullptr;
    std::string err;
    if (EVP_PKEY_get_bn_param(p, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(p, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
        err = "RSA key parameters are unreadable";
    else if (!BN_is_odd(n))
        err = "RSA modulus is even";
    else if (!BN_is_odd(e) || BN_num_bits(e) < 2 || BN_num_bits(e) > 64)
        err = "RSA public exponent must be odd, at least 3 and at most 64 bits";
    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return err;
}

// "" when `p` is an EC P-256 public key whose point is valid.
std::string checkP256(EVP_PKEY *p) {
    if (!isP256(p)) return "EC key is not on curve P-256";
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, p, nullptr);
    bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok ? "" : "EC public key is not a valid P-256 point";
}

// Classifies a loaded public key: sets alg, or returns why it is unusable.
std::string classify(EVP_PKEY *p, std::string &alg) {
    int id = EVP_PKEY_get_base_id(p);
    if (id == EVP_PKEY_RSA) {
        std::string err = checkRsa(p);
        if (!err.empty()) return err;
        alg = "RS256";
        return "";
    }
    if (id == EVP_PKEY_EC) {
        std::string err = checkP256(p);
        if (!err.empty()) return err;
        alg = "ES256";
        return "";
    }
    return std::string("unsupported key type ") + (OBJ_nid2sn(id) ? OBJ_nid2sn(id) : "?") +
           " (RSA for RS256 or EC P-256 for ES256 needed)";
}

EVP_PKEY *rsaFromComponents(const std::string &n, const std::string &e) {
    if (n.empty() || e.empty() || n.size() > static_cast<size_t>(kRsaMaxBits / 8 + 1) || e.size() > 64) return nullptr;
    BIGNUM *bn = BN_bin2bn(reinterpret_cast<const unsigned char *>(n.data()), static_cast<int>(n.size()), nullptr);
    BIGNUM *be = BN_bin2bn(reinterpret_cast<const unsigned char *>(e.data()), static_cast<int>(e.size()), nullptr);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = nullptr;
    EVP_PKEY_CTX *ctx = nullptr;
    EVP_PKEY *pkey = nullptr;
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1 && (params = OSSL_PARAM_BLD_to_param(bld)) &&
        (ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr)) && EVP_PKEY_fromdata_init(ctx) == 1) {
        if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) pkey = nullptr;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    ERR_clear_error();
    return pkey;
}

EVP_PKEY *p256FromCoordinates(const std::string &x, const std::string &y) {
    if (x.size() != 32 || y.size() != 32) return nullptr;
    unsigned char point[65];
    point[0] = 0x04;  // uncompressed
    std::memcpy(point + 1, x.data(), 32);
    std::memcpy(point + 33, y.data(), 32);
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *pkey = nullptr;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = nullptr;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return pkey;
}

// "" and the file's bytes, or "<path>: <what is wrong>". Read as every operator's file is (config_file.h):
// a FIFO named as a key file made the open wait for a writer for ever, and with it the start-up, or the
// reloader, every later reload and the shutdown.
std::string readKeyFile(const std::string &path, std::string &out) {
    std::string error;
    std::optional<std::string> bytes = readConfigFile(path, "the key file", &error, kMaxKeyFileBytes);
    if (!bytes) return path + ": " + error;
    out = std::move(*bytes);
    return "";
}

// ---- signatures ----

bool verifyHs256(const JwtKey &key, std::string_view signingInput, const std::string &sig) {
    if (key.secret.empty() || key.secret.size() > static_cast<size_t>(INT_MAX)) return false;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
              reinterpret_cast<const unsigned char *>(signingInput.data()), signingInput.size(), mac, &len))
        return false;
    return sig.size() == len && CRYPTO_memcmp(mac, sig.data(), len) == 0;
}

bool verifyDigestSignature(EVP_PKEY *pkey, bool rsa, std::string_view signingInput, const std::string &sig) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = nullptr;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), nullptr, pkey) == 1 &&
              (!rsa || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
              EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char *>(sig.data()), sig.size(),
                               reinterpret_cast<const unsigned char *>(signingInput.data()),
                               signingInput.size()) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

bool verifyRs256(const JwtKey &key, std::string_view signingInput, const std::string &sig) {
    EVP_PKEY *p = pkeyOf(key);
    if (!p || EVP_PKEY_get_base_id(p) != EVP_PKEY_RSA) return false;
    if (sig.size() != static_cast<size_t>(EVP_PKEY_get_size(p))) return false;
    return verifyDigestSignature(p, true, signingInput, sig);
}

// JWS ES256 signatures are R||S, 32 bytes each (RFC 7518 section 3.4); OpenSSL verifies DER ECDSA-Sig-Value.
bool es256RawToDer(const std::string &raw, std::string &der) {
    if (raw.size() != 64) return false;
    const auto *bytes = reinterpret_cast<const unsigned char *>(raw.data());
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(bytes, 32, nullptr);
    BIGNUM *s = BN_bin2bn(bytes + 32, 32, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        ERR_clear_error();
        return false;
    }
    bool ok = false;
    int len = i2d_ECDSA_SIG(sig, nullptr);
    if (len > 0) {
        der.assign(static_cast<size_t>(len), '\0');
        unsigned char *p = reinterpret_cast<unsigned char *>(der.data());
        ok = i2d_ECDSA_SIG(sig, &p) == len;
    }
    ECDSA_SIG_free(sig);  // frees r and s
    ERR_clear_error();
    return ok;
}

bool verifyEs256(const JwtKey &key, std::string_view signingInput, const std::string &derSig) {
    EVP_PKEY *p = pkeyOf(key);
    if (!isP256(p)) return false;
    return verifyDigestSignature(p, false, signingInput, derSig);
}

}  // namespace

std::string jwtBase64UrlEncode(std::string_view bytes) {
    return encodeBase64(reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size(), kBase64Url, /*pad=*/false);
}

bool jwtBase64UrlDecode(std::string_view text, std::string &out) {
    return decodeBase64(text, out, /*url=*/true, /*standard=*/false, /*allowPadding=*/false, /*canonical=*/true);
}

namespace {

// A token taken apart: its signature decoded, its header and payload parsed (with what a 401 checks).
struct DecodedJwt {
    std::string_view signingInput;  // header.payload, as signed
    std::string signature;
    rapidjson::Document header, payload;
    const Value *alg = nullptr, *kid = nullptr;  // in header; kid may be null
    const Value *exp = nullptr, *nbf = nullptr;  // in payload; either may be null
    int64_t expSeconds = 0, nbfSeconds = 0;
};
using JwtRejection = std::optional<JwtResult>;  // nullopt: the check passed

// Three dot-separated parts, each valid unpadded base64url (401).
JwtRejection decodeJwtParts(std::string_view token, std::string &headerJson, std::string &payloadJson, DecodedJwt &t) {
    if (token.empty()) return reject(401, "missing token");
    if (token.size() > kJwtMaxTokenLength)
        return reject(401, "token too long (" + std::to_string(token.size()) + " bytes, at most " +
                               std::to_string(kJwtMaxTokenLength) + ")");
    size_t dot1 = token.find('.');
    size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
        size_t parts = static_cast<size_t>(std::count(token.begin(), token.end(), '.')) + 1;
        return reject(401, "token has " + std::to_string(parts) +
                               " dot-separated parts, expected 3 (header.payload.signature)");
    }
    std::string_view headerB64 = token.substr(0, dot1);
    std::string_view payloadB64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    std::string_view signatureB64 = token.substr(dot2 + 1);
    t.signingInput = token.substr(0, dot2);
    if (headerB64.empty()) return reject(401, "token header is empty");
    if (payloadB64.empty()) return reject(401, "token payload is empty");
    if (!jwtBase64UrlDecode(headerB64, headerJson))
        return reject(401, "token header is not valid unpadded base64url");
    if (!jwtBase64UrlDecode(payloadB64, payloadJson))
        return reject(401, "token payload is not valid unpadded base64url");
    if (!jwtBase64UrlDecode(signatureB64, t.signature))
        return reject(401, "token signature is not valid unpadded base64url");
    return std::nullopt;
}

// The header and payload as JSON objects, with "alg", "kid", "typ", "exp" and "nbf" of the right types (401).
JwtRejection parseJwtJson(const std::string &headerJson, const std::string &payloadJson, DecodedJwt &t) {
    std::string err = parseObject(headerJson, t.header, "token header");
    if (!err.empty()) return reject(401, err);
    t.alg = findMember(t.header, "alg");
    if (!t.alg || !t.alg->IsString()) return reject(401, "token header has no \"alg\" string");
    t.kid = findMember(t.header, "kid");
    if (t.kid && !t.kid->IsString()) return reject(401, "token header \"kid\" is not a string");
    const Value *typV = findMember(t.header, "typ");
    if (typV && !typV->IsString()) return reject(401, "token header \"typ\" is not a string");

    err = parseObject(payloadJson, t.payload, "token payload");
    if (!err.empty()) return reject(401, err);
    t.exp = findMember(t.payload, "exp");
    if (t.exp && !numericDate(*t.exp, false, t.expSeconds)) return reject(401, "\"exp\" claim is not a number");
    t.nbf = findMember(t.payload, "nbf");
    if (t.nbf && !numericDate(*t.nbf, true, t.nbfSeconds)) return reject(401, "\"nbf\" claim is not a number");
    return std::nullopt;
}

// The algorithm is allowed and supported, and no critical extension is asked for (403). An ES256
// signature comes back in `derSignature`, the form OpenSSL verifies.
JwtRejection checkJwtAlgorithm(const DecodedJwt &t, const JwtSettings &settings, std::string &derSignature) {
    std::string_view alg = viewOf(*t.alg);
    if (equalsIgnoreCase(alg, "none")) return reject(403, "alg \"none\" (unsigned token) is never allowed");
    if (!isAllowed(settings, alg)) {
        std::string allowed;
        for (const auto &a : settings.algorithms)
            if (!equalsIgnoreCase(a, "none")) allowed += (allowed.empty() ? "" : ", ") + a;
        return reject(403, "alg " + quoted(alg) + " is not allowed (allowed: " +
                               (allowed.empty() ? std::string("none configured") : allowed) + ")");
    }
    if (findMember(t.header, "crit"))
        return reject(403, "token header lists critical extensions (\"crit\"); none are supported");
    if (alg != "HS256" && alg != "RS256" && alg != "ES256")
        return reject(403, "alg " + quoted(alg) + " is not supported (HS256, RS256, ES256)");
    if (alg == "ES256" && !es256RawToDer(t.signature, derSignature))
        return reject(403, "ES256 signature is " + std::to_string(t.signature.size()) +
                               " bytes, expected 64 (raw R||S)");
    return std::nullopt;
}

// One of the configured keys of the token's algorithm (and kid, when both have one) verifies it (403).
JwtRejection checkJwtSignature(const DecodedJwt &t, const JwtSettings &settings, const std::string &derSignature) {
    std::string_view alg = viewOf(*t.alg);
    bool hs = alg == "HS256", rs = alg == "RS256";
    std::string_view kid = t.kid ? viewOf(*t.kid) : std::string_view();
    size_t tried = 0;
    for (const JwtKey &key : settings.keys) {
        if (key.alg != alg) continue;  // a key only ever verifies its own algorithm (no HS/RS confusion)
        if (t.kid && !key.kid.empty() && key.kid != kid) continue;
        ++tried;
        if (hs ? verifyHs256(key, t.signingInput, t.signature)
               : rs ? verifyRs256(key, t.signingInput, t.signature) : verifyEs256(key, t.signingInput, derSignature))
            return std::nullopt;
    }
    if (tried == 0)
        return reject(403, "no " + std::string(alg) + " key" + (t.kid ? " with kid " + quoted(kid) : std::string()) +
                               " is configured");
    return reject(403, "signature verification failed (" + std::string(alg) + ", " + std::to_string(tried) +
                           (tried == 1 ? " key" : " keys") + " tried)");
}

// "exp" and "nbf" against the clock, with the configured skew (403).
JwtRejection checkJwtTimes(const DecodedJwt &t, const JwtSettings &settings, int64_t nowSeconds) {
    int64_t skew = std::max<int64_t>(settings.clockSkewSeconds, 0);
    if (t.exp && nowSeconds > saturatingAdd(t.expSeconds, skew))
        return reject(403, "token expired at " + describeTime(t.expSeconds) + ", now " + std::to_string(nowSeconds) +
                               ", clock skew " + std::to_string(skew) + " s");
    if (t.nbf && saturatingAdd(nowSeconds, skew) < t.nbfSeconds)
        return reject(403, "token not valid before " + describeTime(t.nbfSeconds) + ", now " + std::to_string(nowSeconds) +
                               ", clock skew " + std::to_string(skew) + " s");
    return std::nullopt;
}

// "iss" is the configured issuer, when one is (403).
JwtRejection checkJwtIssuer(const DecodedJwt &t, const JwtSettings &settings) {
    if (settings.issuer.empty()) return std::nullopt;
    const Value *iss = findMember(t.payload, "iss");
    if (!iss || !iss->IsString()) return reject(403, "token has no \"iss\" string; issuer " +
                                                         quoted(settings.issuer) + " is required");
    if (viewOf(*iss) != settings.issuer)
        return reject(403, "token issuer " + quoted(viewOf(*iss)) + " is not " + quoted(settings.issuer));
    return std::nullopt;
}

// "aud" (a string or an array) holds one of the configured audiences, when any are (403).
JwtRejection checkJwtAudience(const DecodedJwt &t, const JwtSettings &settings) {
    if (settings.audience.empty()) return std::nullopt;
    const Value *aud = findMember(t.payload, "aud");
    auto accepted = [&](const Value &v) {
        return v.IsString() && std::find(settings.audience.begin(), settings.audience.end(), viewOf(v)) !=
                                   settings.audience.end();
    };
    bool match = false;
    if (aud && aud->IsString()) match = accepted(*aud);
    else if (aud && aud->IsArray())
        for (const Value &a : aud->GetArray()) match = match || accepted(a);
    if (match) return std::nullopt;
    std::string expected;
    for (const auto &a : settings.audience) expected += (expected.empty() ? "" : ", ") + quoted(a);
    return reject(403, std::string(aud ? "token audience does not include " : "token has no \"aud\"; need ") +
                           (settings.audience.size() > 1 ? "one of " : "") + expected);
}

// What a verified token gives the authorizer: its claims, subject, scopes ("scope" or "scp") and expiry.
JwtResult acceptedJwt(const DecodedJwt &t) {
    JwtResult r;
    r.ok = true;
    r.status = 200;
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
    t.payload.Accept(writer);
    r.claimsJson.assign(buf.GetString(), buf.GetSize());
    if (const Value *sub = findMember(t.payload, "sub"); sub && sub->IsString()) r.subject = std::string(viewOf(*sub));
    const Value *scope = findMember(t.payload, "scope");
    const Value *scp = findMember(t.payload, "scp");
    if (scope && scope->IsString()) {
        r.scopes = splitScopes(viewOf(*scope));
    } else if (scp && scp->IsString()) {
        r.scopes = splitScopes(viewOf(*scp));
    } else if (scp && scp->IsArray()) {
        for (const Value &s : scp->GetArray())
            if (s.IsString() && s.GetStringLength() > 0) r.scopes.emplace_back(viewOf(s));
    }
    r.expiresAt = t.exp ? t.expSeconds : 0;
    return r;
}

}  // namespace

// The structure first (401), then the algorithm and signature, then the claims (403): the first failure is
// the reason given.
JwtResult verifyJwt(std::string_view token, const JwtSettings &settings, int64_t nowSeconds) {
    DecodedJwt t;
    std::string headerJson, payloadJson, derSignature;
    if (auto r = decodeJwtParts(token, headerJson, payloadJson, t)) return std::move(*r);
    if (auto r = parseJwtJson(headerJson, payloadJson, t)) return std::move(*r);
    if (auto r = checkJwtAlgorithm(t, settings, derSignature)) return std::move(*r);
    if (auto r = checkJwtSignature(t, settings, derSignature)) return std::move(*r);
    if (auto r = checkJwtTimes(t, settings, nowSeconds)) return std::move(*r);
    if (auto r = checkJwtIssuer(t, settings)) return std::move(*r);
    if (auto r = checkJwtAudience(t, settings)) return std::move(*r);
    return acceptedJwt(t);
}

std::string loadJwtSecret(std::string_view secretText, JwtKey &out) {
    constexpr std::string_view kPrefix = "base64:";
    std::string secret;
    if (secretText.substr(0, kPrefix.size()) == kPrefix) {
        std::string_view b64 = secretText.substr(kPrefix.size());
        auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
        while (!b64.empty() && isSpace(b64.front())) b64.remove_prefix(1);
        while (!b64.empty() && isSpace(b64.back())) b64.remove_suffix(1);
        if (!decodeBase64(b64, secret, /*url=*/true, /*standard=*/true, /*allowPadding=*/true, /*canonical=*/false))
            return "JWT secret: the value after \"base64:\" is not valid base64";
    } else {
        secret = std::string(secretText);
    }
    if (secret.empty()) return "JWT secret is empty";
    out.alg = "HS256";
    out.secret = std::move(secret);
    out.publicKey.reset();
    return "";
}

std::string loadPemPublicKey(const std::string &path, JwtKey &out) {
    std::string pem;
    std::string err = readKeyFile(path, pem);
    if (!err.empty()) return err;
    EVP_PKEY *pkey = nullptr;
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", nullptr, nullptr, EVP_PKEY_PUBLIC_KEY, nullptr, nullptr);
    if (dctx) {
        const unsigned char *data = reinterpret_cast<const unsigned char *>(pem.data());
        size_t len = pem.size();
        if (OSSL_DECODER_from_data(dctx, &data, &len) != 1) pkey = nullptr;
        OSSL_DECODER_CTX_free(dctx);
    }
    if (!pkey && pem.size() <= static_cast<size_t>(INT_MAX)) {  // an X.509 certificate's public key
        BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
        X509 *cert = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
        if (cert) pkey = X509_get_pubkey(cert);
        X509_free(cert);
        BIO_free(bio);
    }
    ERR_clear_error();
    if (!pkey) return path + ": no PEM public key (\"PUBLIC KEY\", \"RSA PUBLIC KEY\") or certificate found";
    std::string alg;
    err = classify(pkey, alg);
    if (!err.empty()) {
        EVP_PKEY_free(pkey);
        return path + ": " + err;
    }
    out.alg = alg;
    out.secret.clear();
    out.publicKey = ownKey(pkey);
    return "";
}

std::string parseJwks(std::string_view json, std::vector<JwtKey> &out) {
    if (json.size() > kMaxKeyFileBytes) return "JWKS is larger than 1 MiB";
    rapidjson::Document doc;
    std::string err = parseObject(json, doc, "JWKS");
    if (!err.empty()) return err;
    const Value *keys = findMember(doc, "keys");
    if (!keys || !keys->IsArray()) return "JWKS has no \"keys\" array";
    std::vector<JwtKey> parsed;
    size_t index = 0;
    for (const Value &jwk : keys->GetArray()) {
        std::string where = "JWKS key #" + std::to_string(index++);
        if (!jwk.IsObject()) return where + " is not an object";
        const Value *kty = findMember(jwk, "kty");
        const Value *kid = findMember(jwk, "kid");
        const Value *use = findMember(jwk, "use");
        const Value *alg = findMember(jwk, "alg");
        if (!kty || !kty->IsString()) return where + " has no \"kty\" string";
        if (kid && !kid->IsString()) return where + ": \"kid\" is not a string";
        if (use && !use->IsString()) return where + ": \"use\" is not a string";
        if (alg && !alg->IsString()) return where + ": \"alg\" is not a string";
        if (kid) where += " (kid " + quoted(viewOf(*kid)) + ")";
        if (use && viewOf(*use) != "sig") continue;  // an encryption key
        std::string_view type = viewOf(*kty);
        auto b64Member = [&](const char *name, std::string &value) -> std::string {
            const Value *v = findMember(jwk, name);
            if (!v || !v->IsString()) return where + " has no \"" + name + "\" string";
            // Unpadded base64url per RFC 7518; padding and non-zero trailing bits are tolerated in key files.
            if (!decodeBase64(viewOf(*v), value, /*url=*/true, /*standard=*/false, /*allowPadding=*/true,
                              /*canonical=*/false))
                return where + ": \"" + name + "\" is not valid base64url";
            return "";
        };
        JwtKey key;
        if (kid) key.kid = std::string(viewOf(*kid));
        if (type == "RSA") {
            if (alg && viewOf(*alg) != "RS256") continue;
            std::string n, e;
            if (!(err = b64Member("n", n)).empty() || !(err = b64Member("e", e)).empty()) return err;
            EVP_PKEY *pkey = rsaFromComponents(n, e);
            if (!pkey) return where + ": \"n\"/\"e\" do not form an RSA public key";
            key.publicKey = ownKey(pkey);
            if (!(err = checkRsa(pkey)).empty()) return where + ": " + err;
            key.alg = "RS256";
        } else if (type == "EC") {
            const Value *crv = findMember(jwk, "crv");
            if (!crv || !crv->IsString()) return where + " has no \"crv\" string";
            if (viewOf(*crv) != "P-256" || (alg && viewOf(*alg) != "ES256")) continue;
            std::string x, y;
            if (!(err = b64Member("x", x)).empty() || !(err = b64Member("y", y)).empty()) return err;
            if (x.size() != 32 || y.size() != 32) return where + ": P-256 \"x\" and \"y\" must be 32 bytes each";
            EVP_PKEY *pkey = p256FromCoordinates(x, y);
            if (!pkey) return where + ": \"x\"/\"y\" are not a point on P-256";
            key.publicKey = ownKey(pkey);
            if (!(err = checkP256(pkey)).empty()) return where + ": " + err;
            key.alg = "ES256";
        } else if (type == "oct") {
            if (alg && viewOf(*alg) != "HS256") continue;
            if (!(err = b64Member("k", key.secret)).empty()) return err;
            if (key.secret.empty()) return where + ": \"k\" is empty";
            key.alg = "HS256";
        } else {
            continue;  // OKP and others: not supported, not an error
        }
        parsed.push_back(std::move(key));
    }
    if (parsed.empty()) return "JWKS has no usable key (RSA for RS256, EC P-256 for ES256, oct for HS256)";
    for (auto &k : parsed) out.push_back(std::move(k));
    return "";
}

std::string loadJwks(const std::string &path, std::vector<JwtKey> &out) {
    std::string json;
    std::string err = readKeyFile(path, json);
    if (!err.empty()) return err;
    err = parseJwks(json, out);
    return err.empty() ? err : path + ": " + err;
}

}  // namespace wsgw
