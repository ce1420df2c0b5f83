// Fuzz target: Azure Web PubSub's client protocol and REST router (docs/webpubsub.md). The whole input is
// parsed as a client frame; what parses is written back into a group message, a server message and a
// numbered one, each of which must be JSON that carries the same data. The input is also split at its first
// newline into a request line ("METHOD TARGET") and a body for the REST router, whose error bodies must be
// JSON, and its lines are read as token roles. Nothing may crash, leak or hit undefined behaviour.
#include "webpubsub_permissions.h"
#include "webpubsub_protocol.h"
#include "webpubsub_rest.h"
#include "utf8.h"

#include <rapidjson/document.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

void requireJson(const std::string &text) {
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    if (d.HasParseError() || !d.IsObject()) std::abort();
}

void checkData(const wsgw::WpsData &data) {
    std::string group = wsgw::wpsGroupMessage("g", "user", data);
    requireJson(group);
    requireJson(wsgw::wpsServerMessage(data));
    requireJson(wsgw::withSequenceId(group, 42));
    rapidjson::Document d;
    d.Parse(group.data(), group.size());
    if (data.type == wsgw::WpsDataType::Text && wsgw::isValidUtf8(data.bytes.data(), data.bytes.size())) {
        // Valid UTF-8 text (the gateway checks every text frame first) comes back byte for byte.
        if (!d["data"].IsString() || std::string(d["data"].GetString(), d["data"].GetStringLength()) != data.bytes) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    std::string_view input(reinterpret_cast<const char *>(bytes), size);
    auto parsed = wsgw::parseWpsClientMessage(input);
    if (auto *msg = std::get_if<wsgw::WpsClientMessage>(&parsed)) {
        if (msg->kind == wsgw::WpsClientMessage::Kind::SendToGroup || msg->kind == wsgw::WpsClientMessage::Kind::Event) {
            if (msg->kind == wsgw::WpsClientMessage::Kind::SendToGroup && msg->group.empty()) std::abort();
            checkData(msg->data);
        }
    } else {
        const auto &err = std::get<wsgw::WpsProtocolError>(parsed);
        if (err.message.empty()) std::abort();
        requireJson(wsgw::wpsAckError(err.ackId.value_or(0), wsgw::kWpsErrorBadRequest, err.message));
    }

    size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    std::string_view body = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
    size_t sp = line.find(' ');
    std::string_view method = line.substr(0, sp);
    std::string_view target = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    for (std::string_view type : {"application/json", "text/plain", "application/octet-stream", ""}) {
        auto routed = wsgw::routeWpsRest({method, target, type, body});
        if (auto *err = std::get_if<wsgw::WpsRestError>(&routed)) {
            if (err->status < 400 || err->status > 499 || err->message.empty()) std::abort();
            requireJson(wsgw::wpsRestErrorBody(*err));
        } else {
            const auto &op = std::get<wsgw::WpsRestOperation>(routed);
            if (op.successStatus != 200 && op.successStatus != 202 && op.successStatus != 204) std::abort();
            if (op.data) checkData(*op.data);
        }
    }

    std::vector<std::string> roles;
    for (size_t at = 0; at <= input.size();) {
        size_t end = input.find('\n', at);
        roles.emplace_back(input.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
        if (end == std::string_view::npos) break;
        at = end + 1;
    }
    wsgw::WpsPermissions permissions;
    permissions.addRoles(roles);
    for (const std::string &r : permissions.roles())
        if (r.rfind("webpubsub.", 0) != 0) std::abort();
    return 0;
}
