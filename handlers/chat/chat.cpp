// chat: the AWS "simple WebSocket chat" sample. Remembers every connection it sees on $connect, forgets it
// on $disconnect; {"action":"sendmessage","data":X} posts X (a string as is, anything else as its JSON
// text) to every remembered connection, the sender included.
// With a gateway that has groups (WSGW_HOST_API_HAS_GROUPS), "remembering" is membership of one group
// (config "room", default "chat"), and a message is one send_to_group: that is what makes the chat work
// across the nodes of a cluster, where each node's instance sees only its own connections. Without
// groups it keeps the set itself. One instance serves every route naming it, so state is shared by all
// connections: handle() runs in parallel for different connections.
#include <wsgw/handler.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

struct Chat {
    const wsgw_host_api *api = nullptr;
    bool groups = false;
    std::string room = "chat";
    std::mutex mutex;
    std::unordered_set<std::string> connections;  // without groups only
};

void *init(const wsgw_host_api *api, const char *configJson) {
    auto *chat = new Chat;
    chat->api = api;
    chat->groups = WSGW_HOST_API_HAS_GROUPS(api);
    rapidjson::Document config;
    config.Parse(configJson ? configJson : "{}");
    if (!config.HasParseError() && config.IsObject() && config.HasMember("room") && config["room"].IsString())
        chat->room = config["room"].GetString();
    return chat;
}

void shutdown(void *state) { delete static_cast<Chat *>(state); }

// What to send for {"data": X}: X itself when it is a string, else its JSON text; nothing without "data".
bool messageData(const wsgw_event *ev, std::string &out) {
    rapidjson::Document doc;
    doc.Parse(ev->body, ev->body_len);
    if (doc.HasParseError() || !doc.IsObject()) return false;
    auto it = doc.FindMember("data");
    if (it == doc.MemberEnd()) return false;
    if (it->value.IsString()) {
        out.assign(it->value.GetString(), it->value.GetStringLength());
    } else {
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
        it->value.Accept(writer);
        out.assign(buf.GetString(), buf.GetSize());
    }
    return true;
}

int handle(void *state, const wsgw_event *ev, wsgw_response *resp) {
    auto *chat = static_cast<Chat *>(state);
    switch (ev->type) {
    case WSGW_CONNECT: {
        // A connection that cannot join the room is refused rather than left deaf (502 on the upgrade).
        if (chat->groups) return chat->api->add_to_group(chat->api->host, chat->room.c_str(), ev->connection_id) == WSGW_OK ? 0 : 1;
        std::lock_guard lock(chat->mutex);
        chat->connections.insert(ev->connection_id);
        return 0;
    }
    case WSGW_DISCONNECT: {
        if (chat->groups) return 0;  // a closed connection leaves its groups by itself
        std::lock_guard lock(chat->mutex);
        chat->connections.erase(ev->connection_id);
        return 0;
    }
    case WSGW_MESSAGE:
        break;
    }
    std::string data;
    if (!messageData(ev, data)) {
        static const char kUsage[] = "chat: send {\"action\":\"sendmessage\",\"data\":\"...\"}";
        resp->body = kUsage;
        resp->body_len = sizeof kUsage - 1;
        return 0;
    }
    if (chat->groups) {
        int rc = chat->api->send_to_group(chat->api->host, chat->room.c_str(), data.data(), data.size(), 0);
        return rc == WSGW_OK ? 0 : 1;
    }
    std::vector<std::string> targets;
    {
        std::lock_guard lock(chat->mutex);
        targets.assign(chat->connections.begin(), chat->connections.end());
    }
    // Post outside the lock: a slow post must not hold up connects and disconnects.
    std::vector<std::string> gone;
    for (const auto &id : targets) {
        int rc = chat->api->post_to_connection(chat->api->host, id.c_str(), data.data(), data.size(), 0);
        if (rc == WSGW_GONE) gone.push_back(id);
    }
    if (!gone.empty()) {
        std::lock_guard lock(chat->mutex);
        for (const auto &id : gone) chat->connections.erase(id);
    }
    return 0;
}

const wsgw_handler kChat = {sizeof(wsgw_handler), WSGW_ABI_VERSION, "chat", init, handle, shutdown};

}  // namespace

extern "C" WSGW_EXPORT const wsgw_handler *wsgw_handler_v1(void) { return &kChat; }
