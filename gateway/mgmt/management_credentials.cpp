// Owns: the management credentials file, the loopback test, and checking a request's Authorization (see
// management_credentials.h).
#include "management_credentials.h"

#include "json_text.h"

#include "config_file.h"
#include "event.h"
#include "sigv4.h"

#include <openssl/crypto.h>
#include <rapidjson/document.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <optional>
#include <strings.h>

namespace wsgw {

namespace {

bool constantTimeEquals(const std::string &a, const std::string &b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

bool isLoopbackHost(const std::string &host) {
    if (host == "localhost" || host == "::1") return true;
    in_addr a{};
    if (inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
    return false;
}

std::string loadManagementCredentials(const std::string &path, ManagementCredentials &out) {
    std::string error;
    std::optional<std::string> file = readConfigFile(path, "the management credentials", &error);
    if (!file) return path + ": " + error;
    std::string text = std::move(*file);
    const std::string shape =
        " (expected {\"tokens\": [\"...\"], \"sigv4\": [{\"accessKeyId\": \"...\", \"secretAccessKey\": \"...\"}]})";
    if (!jsonDepthWithin(text)) return path + ": nests deeper than " + std::to_string(kMaxJsonNesting) + " levels" + shape;
    rapidjson::Document doc;
    doc.Parse(text.c_str(), text.size());
    if (doc.HasParseError() || !doc.IsObject()) return path + ": not a JSON object" + shape;
    for (auto &m : doc.GetObject()) {
        std::string key = m.name.GetString();
        if (key == "tokens") {
            if (!m.value.IsArray()) return path + ": /tokens: expected an array of strings" + shape;
            for (auto &t : m.value.GetArray()) {
                if (!t.IsString() || t.GetStringLength() < 16)
                    return path + ": /tokens: every token must be a string of at least 16 characters";
                out.tokens.emplace_back(t.GetString(), t.GetStringLength());
            }
        } else if (key == "sigv4") {
            if (!m.value.IsArray()) return path + ": /sigv4: expected an array" + shape;
            size_t i = 0;
            for (auto &c : m.value.GetArray()) {
                std::string where = path + ": /sigv4/" + std::to_string(i++);
                if (!c.IsObject() || !c.HasMember("accessKeyId") || !c.HasMember("secretAccessKey") ||
                    !c["accessKeyId"].IsString() || !c["secretAccessKey"].IsString() || c["accessKeyId"].GetStringLength() == 0 ||
                    c["secretAccessKey"].GetStringLength() == 0)
                    return where + ": needs non-empty string fields accessKeyId and secretAccessKey";
                out.sigv4.push_back({c["accessKeyId"].GetString(), c["secretAccessKey"].GetString()});
            }
        } else {
            return path + ": unknown property '" + key + "'" + shape;
        }
    }
    if (out.empty()) return path + ": no credentials in the file" + shape;
    return {};
}

bool authorizeManagementRequest(const ManagementCredentials &credentials, const HttpRequest &req, std::string &reason,
                                bool bodyKnown) {
    if (credentials.empty()) return true;
    const std::string *auth = req.header("Authorization");
    if (!auth || auth->empty()) {
        reason = "Missing Authentication Token: send Authorization: Bearer <token> or sign the request with AWS SigV4";
        return false;
    }
    // "Bearer" alone (or with only blanks after it) is the right scheme without its token: say that,
    // not that the scheme is unsupported.
    if (auth->size() >= 6 && strncasecmp(auth->c_str(), "Bearer", 6) == 0 && auth->find_first_not_of(" \t", 6) == std::string::npos) {
        reason = "Authorization: Bearer has no token: send Authorization: Bearer <token>, with a token of the "
                 "--management-credentials file";
        return false;
    }
    static constexpr std::string_view kBearer = "Bearer ";
    if (auth->size() > kBearer.size() && strncasecmp(auth->c_str(), kBearer.data(), kBearer.size()) == 0) {
        std::string token = auth->substr(kBearer.size());
        for (const auto &t : credentials.tokens)
            if (constantTimeEquals(t, token)) return true;
        reason = "the bearer token is not valid";
        return false;
    }
    if (auth->rfind("AWS4-HMAC-SHA256", 0) == 0) {
        if (!bodyKnown) return true;
        SigV4Result r = verifySigV4(req.method, req.path, req.rawQuery, req.headers, req.body, credentials.sigv4,
                                    nowEpochMs() / 1000);
        if (r.ok) return true;
        reason = r.reason;
        return false;
    }
    reason = "unsupported Authorization scheme: use Bearer or AWS4-HMAC-SHA256";
    return false;
}

}  // namespace wsgw
