// auth: a $connect handler that accepts a connection when the query parameter `apikey` or the header
// `x-api-key` is one of config.apiKeys. No key: 401; a wrong key: 403 (the upgrade is refused with it).
#include <wsgw/handler.h>

#include <rapidjson/document.h>

#include <cstring>
#include <string>
#include <unordered_set>

namespace {

struct Auth {
    const wsgw_host_api *api = nullptr;
    std::unordered_set<std::string> keys;
};

void *init(const wsgw_host_api *api, const char *config) {
    auto *auth = new Auth;
    auth->api = api;
    rapidjson::Document doc;
    doc.Parse(config ? config : "{}");
    if (doc.IsObject()) {
        auto it = doc.FindMember("apiKeys");
        if (it != doc.MemberEnd() && it->value.IsArray()) {
            for (const auto &k : it->value.GetArray())
                if (k.IsString()) auth->keys.emplace(k.GetString(), k.GetStringLength());
        }
    }
    if (auth->keys.empty()) api->log(api->host, WSGW_LOG_WARN, "auth: config.apiKeys is empty: every connection is refused");
    return auth;
}

void shutdown(void *state) { delete static_cast<Auth *>(state); }

// The key the client sent, from ?apikey= or the x-api-key header (header names are case-insensitive).
bool findKey(const rapidjson::Document &event, std::string &key) {
    auto q = event.FindMember("queryStringParameters");
    if (q != event.MemberEnd() && q->value.IsObject()) {
        auto k = q->value.FindMember("apikey");
        if (k != q->value.MemberEnd() && k->value.IsString()) {
            key.assign(k->value.GetString(), k->value.GetStringLength());
            return true;
        }
    }
    auto h = event.FindMember("headers");
    if (h != event.MemberEnd() && h->value.IsObject()) {
        for (const auto &m : h->value.GetObject()) {
            if (strcasecmp(m.name.GetString(), "x-api-key") == 0 && m.value.IsString()) {
                key.assign(m.value.GetString(), m.value.GetStringLength());
                return true;
            }
        }
    }
    return false;
}

int handle(void *state, const wsgw_event *ev, wsgw_response *resp) {
    if (ev->type != WSGW_CONNECT) return 0;
    auto *auth = static_cast<Auth *>(state);
    size_t len = 0;
    const char *json = auth->api->event_json(auth->api->host, ev, &len);
    if (!json) return 1;
    rapidjson::Document event;
    event.Parse(json, len);
    if (event.HasParseError() || !event.IsObject()) return 1;
    std::string key;
    if (!findKey(event, key)) {
        static const char kMissing[] = "{\"message\": \"Unauthorized: send the API key as ?apikey= or the x-api-key header\"}";
        resp->status_code = 401;
        resp->body = kMissing;
        resp->body_len = sizeof kMissing - 1;
    } else if (!auth->keys.count(key)) {
        static const char kWrong[] = "{\"message\": \"Forbidden: the API key is not valid\"}";
        resp->status_code = 403;
        resp->body = kWrong;
        resp->body_len = sizeof kWrong - 1;
    }
    return 0;
}

const wsgw_handler kAuth = {sizeof(wsgw_handler), WSGW_ABI_VERSION, "auth", init, handle, shutdown};

}  // namespace

extern "C" WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) { return &kAuth; }
