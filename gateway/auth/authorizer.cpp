#include "authorizer.h"
#include "config_file.h"

#include "digest.h"

#include <cstdio>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>
#include <strings.h>

namespace wsgw {

namespace {


std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

// "header x-api-key or query apikey": where the client should have put it.
std::string describeSources(const std::vector<std::string> &sources) {
    std::string out;
    for (size_t i = 0; i < sources.size(); ++i) {
        std::string s = sources[i];
        auto colon = s.find(':');
        if (colon != std::string::npos) s[colon] = ' ';
        out += (i == 0 ? "" : i + 1 == sources.size() ? " or " : ", ") + s;
    }
    return out;
}

std::string principalContext(const std::string &principalId) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("principalId");
    w.String(principalId);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

int64_t connectionExpiry(int64_t exp, int64_t clockSkewSeconds) {
    int64_t skew = std::max<int64_t>(clockSkewSeconds, 0);
    int64_t end;
    if (__builtin_add_overflow(exp, skew, &end)) end = exp < 0 ? INT64_MIN : INT64_MAX;
    return std::clamp<int64_t>(end, 1, kMaxExpirySeconds);
}

std::string apiKeyPrincipal(const std::string &key) { return "key-" + sha256Hex(key).substr(0, 8); }

std::variant<std::vector<std::pair<std::string, std::string>>, std::string> parseKeyFile(std::string_view text, const std::string &path) {
    std::vector<std::pair<std::string, std::string>> keys;
    size_t lineNo = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string line = trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        ++lineNo;
        if (line.empty() || line[0] == '#') continue;
        auto colon = line.find(':');
        std::string id = colon == std::string::npos ? std::string() : trim(std::string_view(line).substr(0, colon));
        std::string key = colon == std::string::npos ? line : trim(std::string_view(line).substr(colon + 1));
        if (key.empty() || (colon != std::string::npos && id.empty()))
            return path + ":" + std::to_string(lineNo) + ": expected 'key' or 'id:key'";
        // A key no client could ever send (a header value or a query parameter never holds these bytes): the
        // file is not a key file (a binary copied over it was taken for keys, and every connection revoked).
        for (unsigned char c : line)
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%02x", c);
                return path + ":" + std::to_string(lineNo) + ": holds the control byte " + hex +
                       ", which no header or query can carry: is this the right file? (one key a line, 'key' or 'id:key')";
            }
        keys.emplace_back(id, key);
    }
    return keys;
}

std::variant<std::unique_ptr<Authorizer>, std::string> Authorizer::build(const AuthorizerSpec &spec, const std::string &routesFile) {
    std::unique_ptr<Authorizer> a(new Authorizer(spec));
    std::string where = routesFile + ": " + spec.jsonPath + ": ";
    if (spec.type == "apiKey") {
        std::vector<std::pair<std::string, std::string>> keys = spec.keys;
        if (!spec.keyFile.empty()) {
            std::string error;
            std::optional<std::string> text = readConfigFile(spec.keyFile, "the key file", &error);
            if (!text) return where + "keyFile " + spec.keyFile + ": " + error;
            auto parsed = parseKeyFile(*text, spec.keyFile);
            if (auto *err = std::get_if<std::string>(&parsed)) return where + *err;
            for (auto &k : std::get<0>(parsed)) keys.push_back(std::move(k));
        }
        if (keys.empty()) return where + "no API keys are configured (the key file is empty)";
        for (const auto &[id, key] : keys) {
            std::string principal = id.empty() ? apiKeyPrincipal(key) : id;
            a->principalByKeyHash_[sha256Hex(key)] = principal;
            a->principals_[principal] = true;
        }
        return a;
    }
    JwtSettings &j = a->jwt_;
    j.algorithms = spec.algorithms;
    j.issuer = spec.issuer;
    j.audience = spec.audience;
    j.clockSkewSeconds = spec.clockSkewSeconds;
    if (!spec.secret.empty()) {
        JwtKey key;
        if (std::string err = loadJwtSecret(spec.secret, key); !err.empty()) return where + "secret: " + err;
        j.keys.push_back(std::move(key));
    }
    if (!spec.publicKeyFile.empty()) {
        JwtKey key;
        if (std::string err = loadPemPublicKey(spec.publicKeyFile, key); !err.empty()) return where + "publicKeyFile: " + err;
        j.keys.push_back(std::move(key));
    }
    if (!spec.jwksFile.empty()) {
        if (std::string err = loadJwks(spec.jwksFile, j.keys); !err.empty()) return where + "jwksFile: " + err;
    }
    return a;
}

std::string Authorizer::credential(const ConnectionInfo &c, std::string &from) const {
    for (const std::string &source : spec_.sources) {
        auto colon = source.find(':');
        std::string kind = source.substr(0, colon), name = source.substr(colon + 1);
        if (kind == "header") {
            for (const auto &[h, value] : c.headers) {
                if (strcasecmp(h.c_str(), name.c_str()) != 0 || value.empty()) continue;
                from = source;
                std::string v = value;
                if (spec_.type == "jwt" && v.size() > 7 && strncasecmp(v.c_str(), "Bearer ", 7) == 0) v = trim(v.substr(7));
                return v;
            }
        } else {
            for (const auto &[q, value] : parseQueryString(c.rawQuery)) {
                if (q != name || value.empty()) continue;
                from = source;
                return value;
            }
        }
    }
    return {};
}

AuthorizerOutcome Authorizer::authorize(const ConnectionInfo &c, int64_t nowSeconds) const {
    AuthorizerOutcome out;
    std::string from;
    std::string cred = credential(c, from);
    if (spec_.type == "apiKey") {
        if (cred.empty()) {
            out.reason = "Unauthorized: no API key: send it in " + describeSources(spec_.sources);
            return out;
        }
        auto it = principalByKeyHash_.find(sha256Hex(cred));
        if (it == principalByKeyHash_.end()) {
            out.status = 403;
            out.reason = "Forbidden: the API key in " + from + " is not valid";
            return out;
        }
        out.ok = true;
        out.status = 200;
        out.principalId = it->second;
        out.apiKeyId = it->second;
        out.contextJson = principalContext(it->second);
        return out;
    }
    if (cred.empty()) {
        out.reason = "Unauthorized: no token: send it in " + describeSources(spec_.sources) + " (Authorization: Bearer <jwt>)";
        return out;
    }
    JwtResult r = verifyJwt(cred, jwt_, nowSeconds);
    if (!r.ok) {
        out.status = r.status == 401 ? 401 : 403;
        out.reason = std::string(out.status == 401 ? "Unauthorized: " : "Forbidden: ") + r.reason;
        return out;
    }
    out.ok = true;
    out.status = 200;
    out.principalId = r.subject;
    out.expiresAt = r.expiresAt ? connectionExpiry(r.expiresAt, jwt_.clockSkewSeconds) : 0;
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("principalId");
    w.String(r.subject);
    w.Key("jwt");
    w.StartObject();
    w.Key("claims");
    w.RawValue(r.claimsJson.data(), r.claimsJson.size(), rapidjson::kObjectType);
    w.Key("scopes");
    w.StartArray();
    for (const auto &s : r.scopes) w.String(s);
    w.EndArray();
    w.EndObject();
    w.EndObject();
    out.contextJson.assign(buf.GetString(), buf.GetSize());
    return out;
}

bool Authorizer::stillAccepts(const std::string &type, const std::string &principalId) const {
    if (type != spec_.type) return false;
    if (spec_.type == "apiKey") return principals_.count(principalId) > 0;
    return true;  // a token stays valid until its exp, which closes the connection by itself
}

}  // namespace wsgw
