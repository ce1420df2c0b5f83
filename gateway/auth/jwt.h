// JWT verification for the $connect JWT authorizer: compact JWS tokens signed with HS256, RS256 or ES256,
// checked against configured keys (a secret, a PEM public key or a JWKS file), then "exp"/"nbf" (with clock
// skew), "iss" and "aud". Pure: no I/O except in the load* functions, no clock (the caller passes "now").
//
// Status convention: 401 when the token is missing or not a well-formed JWT (wrong number of parts, invalid
// base64url, padding, JSON that is not an object, duplicate claim names, claims of the wrong type);
// 403 when it is well-formed but refused (alg not allowed or "none", no matching key, bad signature, expired,
// not yet valid, wrong issuer or audience). Reasons never contain a secret and quote token fields only
// truncated and with non-printable bytes replaced.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

struct JwtKey {                       // one verification key
    std::string kid;                  // "" = matches any kid
    std::string alg;                  // "HS256" | "RS256" | "ES256": the only algorithm this key verifies
    std::string secret;               // HS256: raw secret bytes
    std::shared_ptr<void> publicKey;  // RS256/ES256: an EVP_PKEY*, freed with EVP_PKEY_free by the deleter
};

struct JwtSettings {
    std::vector<std::string> algorithms;  // allowed, e.g. {"RS256"}; "none" is never allowed, whatever is listed
    std::vector<JwtKey> keys;
    std::string issuer;                   // "" = not checked; else the "iss" claim must equal it
    std::vector<std::string> audience;    // empty = not checked; else "aud" (string or array) must contain one
    int64_t clockSkewSeconds = 60;        // tolerance for exp/nbf; negative values count as 0
};

struct JwtResult {
    bool ok = false;
    int status = 401;                  // 401 missing/unparseable, 403 well-formed but rejected; 200 when ok
    std::string reason;                // empty when ok; otherwise what is wrong, never a secret
    std::string claimsJson;            // compact JSON of the payload object when ok
    std::string subject;               // "sub" claim if a string
    std::vector<std::string> scopes;   // "scope" (space-separated string), else "scp" (array of strings or string)
    int64_t expiresAt = 0;             // "exp" if present (seconds, fractions dropped), else 0
};

// Tokens longer than this are refused with 401 "token too long" before any decoding.
inline constexpr size_t kJwtMaxTokenLength = 16 * 1024;

JwtResult verifyJwt(std::string_view token, const JwtSettings &settings, int64_t nowSeconds);

// Key loading. Each returns "" on success or an error message saying what is wrong (naming the file where
// there is one). On failure `out` is left unchanged.
// "base64:..." => the standard or URL-safe base64 (padding optional, surrounding whitespace ignored) decoded
// bytes, else the text itself. Sets out.alg = "HS256" and out.secret; keeps out.kid. An empty secret is an error.
std::string loadJwtSecret(std::string_view secretText, JwtKey &out);
// A PEM public key (SubjectPublicKeyInfo "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY", or an X.509 certificate):
// RSA (2048..16384 bits) => RS256, EC P-256 => ES256. Sets out.alg and out.publicKey; keeps out.kid.
std::string loadPemPublicKey(const std::string &path, JwtKey &out);
// A JWKS file {"keys":[...]}: appends its usable keys to `out` (nothing on error).
std::string loadJwks(const std::string &path, std::vector<JwtKey> &out);

// The JWKS parser behind loadJwks. Supported: kty "RSA" (n, e), kty "EC" with crv "P-256" (x, y), kty "oct" (k).
// Keys with "use" other than "sig", an "alg" other than their family's (RS256 / ES256 / HS256), or another kty
// or curve are skipped; a supported key with missing or invalid members is an error, and so is a set without
// any usable key. Appends to `out` only on success.
std::string parseJwks(std::string_view json, std::vector<JwtKey> &out);

// base64url without padding (RFC 7515 section 2). The decoder is strict: only [A-Za-z0-9_-], no '=', no
// length of 4n+1, and unused trailing bits must be zero (so every value has exactly one encoding).
std::string jwtBase64UrlEncode(std::string_view bytes);
bool jwtBase64UrlDecode(std::string_view text, std::string &out);

}  // namespace wsgw
