// Fuzz target: JWT verification and the JWKS parser. The whole input is verified as a token against a fixed
// HS256 secret and RS256 / ES256 keys generated once, with all three algorithms allowed; the input is also
// split at its first newline: the first line is parsed as a JWKS document (and as a "base64:" secret), and the
// rest is verified as a token against the keys that JWKS yielded. Nothing may crash, leak or hit undefined
// behaviour; results must be self-consistent and reasons must never contain the secret.
#include "jwt.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

const std::string kSecret = "fuzz-hs256-secret-0123456789abcdef";

const wsgw::JwtSettings &fixedSettings() {
    static const wsgw::JwtSettings settings = [] {
        wsgw::JwtSettings s;
        s.algorithms = {"HS256", "RS256", "ES256", "none"};
        auto own = [](EVP_PKEY *p) {
            if (!p) std::abort();
            return std::shared_ptr<void>(p, [](void *q) { EVP_PKEY_free(static_cast<EVP_PKEY *>(q)); });
        };
        s.keys.push_back({"hs", "HS256", kSecret, nullptr});
        s.keys.push_back({"", "HS256", "second secret", nullptr});
        s.keys.push_back({"rs", "RS256", "", own(EVP_RSA_gen(2048))});
        s.keys.push_back({"es", "ES256", "", own(EVP_EC_gen("P-256"))});
        s.keys.push_back({"", "ES256", "", own(EVP_EC_gen("P-256"))});
        s.issuer = "https://issuer.example/";
        s.audience = {"api://chat", "wsgw"};
        return s;
    }();
    return settings;
}

void check(const wsgw::JwtResult &r, std::string_view input) {
    if (r.ok != r.reason.empty()) std::abort();
    if (r.ok ? r.status != 200 : (r.status != 401 && r.status != 403)) std::abort();
    if (!r.ok && (!r.claimsJson.empty() || !r.subject.empty() || !r.scopes.empty() || r.expiresAt != 0))
        std::abort();
    // A reason may quote (part of) the token, but never a configured secret that the token does not contain.
    if (input.find(kSecret) == std::string_view::npos && r.reason.find(kSecret) != std::string::npos) std::abort();
    for (const auto &s : r.scopes)
        if (s.empty() || s.find(' ') != std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view input(reinterpret_cast<const char *>(data), size);
    const wsgw::JwtSettings &settings = fixedSettings();
    for (int64_t now : {int64_t{1795362413}, int64_t{0}, INT64_MAX, INT64_MIN})
        check(wsgw::verifyJwt(input, settings, now), input);

    size_t nl = input.find('\n');
    std::string_view first = input.substr(0, nl);
    std::string_view rest = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);

    std::vector<wsgw::JwtKey> keys;
    std::string err = wsgw::parseJwks(first, keys);
    if (err.empty() == keys.empty()) std::abort();
    for (const auto &k : keys) {
        bool hs = k.alg == "HS256";
        if (!hs && k.alg != "RS256" && k.alg != "ES256") std::abort();
        if (hs ? (k.secret.empty() || k.publicKey) : (!k.secret.empty() || !k.publicKey)) std::abort();
    }

    wsgw::JwtKey secretKey;
    if (wsgw::loadJwtSecret("base64:" + std::string(first), secretKey).empty() && secretKey.secret.empty())
        std::abort();

    if (!keys.empty()) {
        wsgw::JwtSettings fromJwks;
        fromJwks.algorithms = {"HS256", "RS256", "ES256"};
        fromJwks.keys = std::move(keys);
        fromJwks.clockSkewSeconds = -1;
        check(wsgw::verifyJwt(rest, fromJwks, 1795362413), input);
    }

    // Round trip: the strict base64url decoder accepts exactly what the encoder produces.
    std::string decoded;
    if (wsgw::jwtBase64UrlDecode(first, decoded) && wsgw::jwtBase64UrlEncode(decoded) != first) std::abort();
    if (!wsgw::jwtBase64UrlDecode(wsgw::jwtBase64UrlEncode(rest), decoded) || decoded != rest) std::abort();
    return 0;
}
