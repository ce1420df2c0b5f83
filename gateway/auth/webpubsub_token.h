// Azure Web PubSub access tokens (docs/webpubsub.md): the HS256 JWTs that @azure/web-pubsub's
// getClientAccessToken makes for clients (audience {scheme}://{host}/client/hubs/{hub}, "sub" the user ID,
// "role" the roles, "webpubsub.group" the groups to join at connect) and that its REST pipeline puts on
// every request (audience the request URL). Verified with any of routes.json's webPubSub.accessKeys through
// verifyJwt (jwt.h); the audience is checked here against the request's Host and path, because the SDK
// writes the URL it was given (http or https, the host as the user typed it, a default port or not).
// Status: 401 when no token was presented, 403 for any token that is not accepted (docs/webpubsub.md).
// Also signs such tokens (the REST API's :generateToken, and tests). No clock: callers pass "now".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

struct WpsTokenCheck {
    int status = 401;          // 200 accepted, 401 no token, 403 refused
    std::string reason;        // why not, never a key
    std::string userId;        // "sub", "" when the token has none
    std::vector<std::string> roles;   // "role": a string or an array of strings
    std::vector<std::string> groups;  // "webpubsub.group": likewise
    std::string claimsJson;    // the payload, compact
    int64_t expiresAt = 0;
    bool ok() const { return status == 200; }
};

// The token from "Authorization: Bearer <token>" ("" when the header is absent or another scheme).
std::string_view wpsBearerToken(std::string_view authorizationHeader);

// A client connecting to /client/hubs/{hub} of this gateway, reached as `host` (the Host header).
WpsTokenCheck verifyWpsClientToken(std::string_view token, const std::vector<std::string> &accessKeys,
                                   std::string_view hub, std::string_view host, int64_t nowSeconds);

// A REST request for `target` (path and query as on the request line), reached as `host`.
WpsTokenCheck verifyWpsServerToken(std::string_view token, const std::vector<std::string> &accessKeys,
                                   std::string_view host, std::string_view target, int64_t nowSeconds);

struct WpsTokenClaims {
    std::string audience;
    std::string userId;               // "" = no "sub"
    std::vector<std::string> roles;   // written as an array when not empty
    std::vector<std::string> groups;  // "webpubsub.group", likewise
    int64_t issuedAt = 0;
    int64_t lifetimeSeconds = 3600;
};
// An HS256 JWT with these claims, signed with `key`.
std::string signWpsToken(std::string_view key, const WpsTokenClaims &claims);

}  // namespace wsgw
