// The built-in $connect authorizers of routes.json: API keys (Apigee's x-api-key / apikey, Azure's
// subscription-key) and JWTs (HS256, RS256, ES256 from a secret, a PEM public key or a JWKS file). Built
// once per route table (key files are read then, so a reload re-reads them) and immutable after; authorize()
// runs on a worker thread before the $connect handler. Its outcome becomes requestContext.authorizer of
// every event of the connection and the connection table's authorizer column.
#pragma once

#include "jwt.h"
#include "config.h"
#include "event.h"

#include <memory>
#include <string>
#include <unordered_map>
#include <variant>

namespace wsgw {

struct AuthorizerOutcome {
    bool ok = false;
    int status = 401;        // 401: no credential; 403: a wrong one
    std::string reason;      // what is wrong, for the refusal body and the access log
    std::string contextJson; // requestContext.authorizer
    std::string principalId;
    std::string apiKeyId;    // requestContext.identity.apiKeyId (apiKey only)
    int64_t expiresAt = 0;   // epoch seconds when the connection must close (jwt exp + clockSkewSeconds), else 0
};

// The latest close time a token can ask for: 9999-12-31T23:59:59Z. Far enough to mean "never", and small
// enough that expiresAt * 1000 (milliseconds) cannot overflow.
inline constexpr int64_t kMaxExpirySeconds = 253402300799;
// When a connection admitted with a token whose "exp" is `exp` must close: exp + clockSkewSeconds (the token
// is accepted for that long, so it stays valid for it), saturated and clamped to 1..kMaxExpirySeconds.
int64_t connectionExpiry(int64_t exp, int64_t clockSkewSeconds);

class Authorizer {
public:
    // Reads key files and public keys now; errors name the file and the JSON path.
    static std::variant<std::unique_ptr<Authorizer>, std::string> build(const AuthorizerSpec &spec, const std::string &routesFile);

    AuthorizerOutcome authorize(const ConnectionInfo &connection, int64_t nowSeconds) const;
    // After a reload: may a connection this (older) kind of authorizer admitted as `principalId` stay open?
    // An apiKey authorizer answers whether that key is still configured (Apigee's revocation).
    bool stillAccepts(const std::string &type, const std::string &principalId) const;
    const std::string &type() const { return spec_.type; }

private:
    explicit Authorizer(AuthorizerSpec spec) : spec_(std::move(spec)) {}
    // The first credential found in the configured sources, and where it came from.
    std::string credential(const ConnectionInfo &connection, std::string &from) const;

    AuthorizerSpec spec_;
    std::unordered_map<std::string, std::string> principalByKeyHash_;  // SHA-256 of the key -> principal ID
    std::unordered_map<std::string, bool> principals_;
    JwtSettings jwt_;
};

// "key-" + the first 8 hex digits of the key's SHA-256: an ID for a key configured without one.
std::string apiKeyPrincipal(const std::string &key);
// Parses a key file: one key a line, "id:key" or "key", '#' comments and blank lines ignored.
std::variant<std::vector<std::pair<std::string, std::string>>, std::string> parseKeyFile(std::string_view text, const std::string &path);

}  // namespace wsgw
