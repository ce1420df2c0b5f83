// Azure Web PubSub access tokens: verification of client and REST tokens, and signing (see the header).
#include "webpubsub_token.h"

#include "backend_url.h"
#include "json_text.h"

#include "jwt.h"
#include "log.h"
#include "text.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <rapidjson/document.h>

#include <optional>


namespace wsgw {

namespace {

constexpr UrlScheme kHttp{"http", 80}, kHttps{"https", 443}, kWs{"ws", 80}, kWss{"wss", 443};

// An audience URL (any scheme case, a query or fragment ignored) by the one URL parser (backend_url.h): the
// scheme, the host without an IPv6 literal's brackets, the port (the scheme's default when absent) and the
// path without its query. Empty when it is not an http(s) or ws(s) URL with a host.
std::optional<BackendUrl> parseAudience(std::string_view audience) {
    size_t sep = audience.find("://");
    if (sep == std::string_view::npos) return std::nullopt;
    size_t end = audience.find_first_of("?#", sep + 3);
    std::string url = toLowerAscii(audience.substr(0, sep)) + std::string(audience.substr(sep, end == std::string_view::npos ? end : end - sep));
    auto parsed = parseBackendUrl(url, {kHttp, kHttps, kWs, kWss}, "is not an http(s) or ws(s) URL");
    if (auto *u = std::get_if<BackendUrl>(&parsed)) return std::move(*u);
    return std::nullopt;
}

// The audience's host and port are those the request came to (the Host header, read by the audience's
// scheme, so that a default port written or left out compares equal); host names compare case-insensitively.
bool sameHost(const BackendUrl &audience, std::string_view hostHeader) {
    if (hostHeader.find('/') != std::string_view::npos) return false;
    const bool secure = audience.scheme == kHttps.name || audience.scheme == kWss.name;
    auto parsed = parseBackendUrl(std::string(audience.scheme) + "://" + std::string(hostHeader),
                                  {{audience.scheme, secure ? 443 : 80}}, "is not a Host header");
    const auto *host = std::get_if<BackendUrl>(&parsed);
    return host && host->port == audience.port && toLowerAscii(host->host) == toLowerAscii(audience.host);
}

std::vector<std::string> stringOrStrings(const rapidjson::Value *v) {
    std::vector<std::string> out;
    if (!v) return out;
    if (v->IsString()) out.emplace_back(v->GetString(), v->GetStringLength());
    if (v->IsArray())
        for (const auto &item : v->GetArray())
            if (item.IsString()) out.emplace_back(item.GetString(), item.GetStringLength());
    return out;
}

// Verifies the signature and times with verifyJwt, then the audience with `audienceMatches`.
template <class AudienceMatches>
WpsTokenCheck verify(std::string_view token, const std::vector<std::string> &accessKeys, int64_t now,
                     AudienceMatches &&audienceMatches, const std::string &expectedText) {
    WpsTokenCheck check;
    if (token.empty()) {
        check.status = 401;
        check.reason = "no access token: give ?access_token=<token> or Authorization: Bearer <token> "
                       "(the server SDK's getClientAccessToken makes one)";
        return check;
    }
    JwtSettings settings;
    settings.algorithms = {"HS256"};
    for (const std::string &key : accessKeys) {
        JwtKey k;
        k.alg = "HS256";
        k.secret = key;
        settings.keys.push_back(std::move(k));
    }
    JwtResult jwt = verifyJwt(token, settings, now);
    if (!jwt.ok) {
        check.status = 403;
        check.reason = jwt.reason + (jwt.reason.find("signature") != std::string::npos
                                         ? " (sign with one of routes.json's webPubSub.accessKeys)"
                                         : "");
        return check;
    }
    rapidjson::Document claims;
    claims.Parse(jwt.claimsJson.data(), jwt.claimsJson.size());
    const rapidjson::Value *aud = findMember(claims, "aud");
    bool matches = false;
    for (const std::string &a : stringOrStrings(aud)) matches = matches || audienceMatches(a);
    if (!matches) {
        check.status = 403;
        std::string got = aud && aud->IsString() ? std::string(aud->GetString()).substr(0, 120) : std::string("none");
        check.reason = "token audience '" + got + "' is not " + expectedText;
        return check;
    }
    check.status = 200;
    const rapidjson::Value *sub = findMember(claims, "sub");
    if (sub && sub->IsString()) check.userId.assign(sub->GetString(), sub->GetStringLength());
    check.roles = stringOrStrings(findMember(claims, "role"));
    check.groups = stringOrStrings(findMember(claims, "webpubsub.group"));
    check.claimsJson = std::move(jwt.claimsJson);
    check.expiresAt = jwt.expiresAt;
    return check;
}

}  // namespace

std::string_view wpsBearerToken(std::string_view header) {
    while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
    if (header.size() < 7 || toLowerAscii(header.substr(0, 7)) != "bearer ") return {};
    header.remove_prefix(7);
    while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
    while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) header.remove_suffix(1);
    return header;
}

WpsTokenCheck verifyWpsClientToken(std::string_view token, const std::vector<std::string> &accessKeys,
                                   std::string_view hub, std::string_view host, int64_t nowSeconds) {
    std::string expectedPath = "/client/hubs/" + toLowerAscii(hub);
    auto matches = [&](const std::string &aud) {
        std::optional<BackendUrl> u = parseAudience(aud);
        if (!u) return false;
        // Hub names compare case-insensitively, as Azure compares them; paths percent-decoded, so that "%3A" and
        // ":" compare equal (the SDK and the HTTP stack may differ in escaping).
        return sameHost(*u, host) && toLowerAscii(percentDecodeLenient(u->path)) == expectedPath;
    };
    return verify(token, accessKeys, nowSeconds, matches,
                  "this hub's client URL (http://" + std::string(host).substr(0, 80) + expectedPath +
                      "): make the token for hub '" + std::string(hub).substr(0, 60) + "' with the endpoint this gateway is reached at");
}

WpsTokenCheck verifyWpsServerToken(std::string_view token, const std::vector<std::string> &accessKeys,
                                   std::string_view host, std::string_view target, int64_t nowSeconds) {
    std::string path = percentDecodeLenient(target.substr(0, target.find('?')));  // as the audience's, below
    auto matches = [&](const std::string &aud) {
        std::optional<BackendUrl> u = parseAudience(aud);
        return u && sameHost(*u, host) && percentDecodeLenient(u->path) == path;
    };
    return verify(token, accessKeys, nowSeconds, matches,
                  "this request's URL (" + path.substr(0, 120) + " at " + std::string(host).substr(0, 80) +
                      "): sign each request for its own URL, as the server SDK does");
}

std::string signWpsToken(std::string_view key, const WpsTokenClaims &claims) {
    std::string payload = "{";
    auto appendStrings = [&](const char *name, const std::vector<std::string> &values) {
        if (values.empty()) return;
        payload += ",\"";
        payload += name;
        payload += "\":[";
        for (size_t i = 0; i < values.size(); ++i) {
            if (i) payload += ',';
            log::appendJsonString(payload, values[i]);
        }
        payload += ']';
    };
    payload += "\"iat\":" + std::to_string(claims.issuedAt);
    payload += ",\"exp\":" + std::to_string(claims.issuedAt + claims.lifetimeSeconds);
    payload += ",\"aud\":";
    log::appendJsonString(payload, claims.audience);
    if (!claims.userId.empty()) {
        payload += ",\"sub\":";
        log::appendJsonString(payload, claims.userId);
    }
    appendStrings("role", claims.roles);
    appendStrings("webpubsub.group", claims.groups);
    payload += '}';
    std::string signingInput = jwtBase64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." + jwtBase64UrlEncode(payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int macLen = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char *>(signingInput.data()),
         signingInput.size(), mac, &macLen);
    return signingInput + "." + jwtBase64UrlEncode(std::string_view(reinterpret_cast<const char *>(mac), macLen));
}

}  // namespace wsgw
