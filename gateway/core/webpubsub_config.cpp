// routes.json "webPubSub": value checks with messages that say what to write instead (docs/webpubsub.md).
#include "webpubsub_config.h"

#include <algorithm>

namespace wsgw {

bool WebPubSubSpec::hasHub(std::string_view hub) const {
    return std::find(hubs.begin(), hubs.end(), hub) != hubs.end();
}

bool isValidHubName(std::string_view hub) {
    if (hub.empty() || hub.size() > 128) return false;
    auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
    if (!letter(hub[0])) return false;
    return std::all_of(hub.begin(), hub.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9') || c == '_'; });
}

std::string parseWebPubSub(const rapidjson::Value &v, WebPubSubSpec &out, std::string &at) {
    WebPubSubSpec spec;
    const auto &hubs = v["hubs"].GetArray();
    if (hubs.Empty()) {
        at = "/hubs";
        return "lists no hub: name at least one (for example [\"chat\"]); clients connect to /client/hubs/<hub>";
    }
    for (rapidjson::SizeType i = 0; i < hubs.Size(); ++i) {
        std::string hub(hubs[i].GetString(), hubs[i].GetStringLength());
        at = "/hubs/" + std::to_string(i);
        if (!isValidHubName(hub))
            return "'" + hub + "' is not a hub name: start with a letter, then use letters, digits or '_' (at most 128)";
        if (spec.hasHub(hub)) return "hub '" + hub + "' is listed twice: remove one";
        spec.hubs.push_back(std::move(hub));
    }
    const auto &keys = v["accessKeys"].GetArray();
    if (keys.Empty()) {
        at = "/accessKeys";
        return "lists no key: give at least one access key of 32 or more characters (tokens are signed with it)";
    }
    for (rapidjson::SizeType i = 0; i < keys.Size(); ++i) {
        std::string key(keys[i].GetString(), keys[i].GetStringLength());
        at = "/accessKeys/" + std::to_string(i);
        if (key.size() < kWebPubSubMinKeyLength)
            return "an access key must have at least 32 characters (this one has " + std::to_string(key.size()) +
                   "); generate one, for example with `openssl rand -base64 33`";
        if (std::find(spec.accessKeys.begin(), spec.accessKeys.end(), key) != spec.accessKeys.end())
            return "this access key is listed twice: remove one";
        spec.accessKeys.push_back(std::move(key));
    }
    if (v.HasMember("recoveryWindowSeconds")) spec.recoveryWindowSeconds = v["recoveryWindowSeconds"].GetInt();
    at.clear();
    out = std::move(spec);
    return "";
}

}  // namespace wsgw
