// routes.json "webPubSub" (docs/webpubsub.md): the hubs Azure Web PubSub clients may connect to, the access
// keys their tokens and the REST API's tokens are signed with, and the reliable subprotocol's recovery
// window. Owns the value checks the JSON Schema cannot express with a readable message (hub name syntax,
// key length, duplicates); the schema has already checked the types when parseWebPubSub runs.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

struct WebPubSubSpec {
    std::vector<std::string> hubs;        // empty: the API serves no Azure Web PubSub clients
    std::vector<std::string> accessKeys;  // HS256 keys (UTF-8 bytes as written), any of them verifies
    int recoveryWindowSeconds = 30;       // 0: a dropped reliable connection ends at once
    bool enabled() const { return !hubs.empty(); }
    bool hasHub(std::string_view hub) const;
};

// Keys shorter than this are refused: Azure's keys are 44 base64 characters; 32 keeps HS256 meaningful.
inline constexpr size_t kWebPubSubMinKeyLength = 32;

// A hub name as Azure allows it: a letter, then letters, digits or '_', at most 128 characters.
bool isValidHubName(std::string_view hub);

// Reads the "webPubSub" object (already schema-valid). Returns "" or the reason; `at` then holds the JSON
// pointer below "/webPubSub" that is wrong (for example "/hubs/1").
std::string parseWebPubSub(const rapidjson::Value &v, WebPubSubSpec &out, std::string &at);

}  // namespace wsgw
