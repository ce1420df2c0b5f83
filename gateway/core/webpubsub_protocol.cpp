// Azure Web PubSub's JSON client protocol: parsing client frames, writing server frames (see the header).
#include "webpubsub_protocol.h"

#include "json_text.h"

#include "base64.h"
#include "log.h"
#include "text.h"
#include "utf8.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>


namespace wsgw {

namespace {

using Value = rapidjson::Value;

std::string_view viewOf(const Value &v) { return {v.GetString(), v.GetStringLength()}; }

const char *typeNameOf(const Value &v) {
    switch (v.GetType()) {
    case rapidjson::kNullType: return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType: return "a boolean";
    case rapidjson::kObjectType: return "an object";
    case rapidjson::kArrayType: return "an array";
    case rapidjson::kStringType: return "a string";
    case rapidjson::kNumberType: return "a number";
    }
    return "another type";
}

// Reads "dataType" and "data" of `m` into `out`; returns "" or what is wrong.
std::string readData(const Value &m, WpsData &out) {
    if (!m.HasMember("dataType")) return "\"dataType\" is missing: give \"json\", \"text\" or \"binary\" with \"data\"";
    const Value &t = m["dataType"];
    if (!t.IsString()) return std::string("\"dataType\" must be a string (\"json\", \"text\" or \"binary\"), got ") + typeNameOf(t);
    std::string_view type = viewOf(t);
    if (!m.HasMember("data")) return "\"data\" is missing: a message of dataType \"" + std::string(type) + "\" carries its payload in \"data\"";
    const Value &d = m["data"];
    if (type == "json") {
        out.type = WpsDataType::Json;
        out.bytes = compactJson(d);
        return "";
    }
    if (type == "text") {
        if (!d.IsString()) return std::string("\"data\" must be a string when dataType is \"text\", got ") + typeNameOf(d);
        out.type = WpsDataType::Text;
        out.bytes.assign(d.GetString(), d.GetStringLength());
        return "";
    }
    if (type == "binary") {
        if (!d.IsString() || !decodeBase64(viewOf(d), out.bytes, /*url=*/false, /*standard=*/true, /*allowPadding=*/true, /*canonical=*/false))
            return "\"data\" must be base64 text when dataType is \"binary\"";
        out.type = WpsDataType::Binary;
        return "";
    }
    if (type == "protobuf")
        return "dataType \"protobuf\" belongs to the protobuf subprotocols, which this gateway does not serve: use \"json\", \"text\" or \"binary\"";
    return "unknown dataType '" + std::string(type).substr(0, 40) + "': use \"json\", \"text\" or \"binary\"";
}

std::string readNonEmptyString(const Value &m, const char *name, std::string &out) {
    if (!m.HasMember(name)) return std::string("\"") + name + "\" is missing";
    const Value &v = m[name];
    if (!v.IsString()) return std::string("\"") + name + "\" must be a string, got " + typeNameOf(v);
    if (v.GetStringLength() == 0) return std::string("\"") + name + "\" must not be empty";
    out.assign(v.GetString(), v.GetStringLength());
    return "";
}

void appendData(std::string &out, const WpsData &data) {
    out += "\"dataType\":\"";
    out += wpsDataTypeName(data.type);
    out += "\",\"data\":";
    switch (data.type) {
    case WpsDataType::Json: out += data.bytes; break;
    case WpsDataType::Text: log::appendJsonString(out, data.bytes); break;
    case WpsDataType::Binary:
        out += '"';
        out += encodeBase64(reinterpret_cast<const unsigned char *>(data.bytes.data()), data.bytes.size(), kBase64Standard, true);
        out += '"';
        break;
    }
}

// JSON text that can be put into a message as it is. RapidJSON alone is not enough: it stops at a NUL byte
// after the value ("{}\0junk" parses) and does not check UTF-8 (a client would close on it with 1007).
bool isJsonValue(std::string_view text) {
    if (text.find('\0') != std::string_view::npos || !isValidUtf8(text.data(), text.size())) return false;
    if (!jsonDepthWithin(text)) return false;
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    return !d.HasParseError();
}

}  // namespace

WpsSubprotocol wpsSubprotocolOf(std::string_view name) {
    if (name == kWpsJsonSubprotocol) return WpsSubprotocol::Json;
    if (name == kWpsReliableJsonSubprotocol) return WpsSubprotocol::ReliableJson;
    return WpsSubprotocol::None;
}

WpsSubprotocol wpsChooseSubprotocol(std::string_view offered) {
    while (!offered.empty()) {
        size_t comma = offered.find(',');
        std::string_view item = offered.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (auto p = wpsSubprotocolOf(item); p != WpsSubprotocol::None) return p;
        if (comma == std::string_view::npos) break;
        offered.remove_prefix(comma + 1);
    }
    return WpsSubprotocol::None;
}

std::string_view wpsSubprotocolName(WpsSubprotocol p) {
    switch (p) {
    case WpsSubprotocol::Json: return kWpsJsonSubprotocol;
    case WpsSubprotocol::ReliableJson: return kWpsReliableJsonSubprotocol;
    case WpsSubprotocol::None: break;
    }
    return "";
}

std::string_view wpsDataTypeName(WpsDataType t) {
    switch (t) {
    case WpsDataType::Json: return "json";
    case WpsDataType::Text: return "text";
    case WpsDataType::Binary: return "binary";
    }
    return "text";
}

WpsProtocolError wpsBinaryFrameError() {
    return {std::nullopt, "binary frames are not part of the json.webpubsub.azure.v1 subprotocols: send a JSON text "
                          "frame (binary data goes in \"data\" as base64 with \"dataType\":\"binary\")"};
}

std::variant<WpsClientMessage, WpsProtocolError> parseWpsClientMessage(std::string_view frame) {
    if (!jsonDepthWithin(frame))
        return WpsProtocolError{std::nullopt, "the frame nests arrays and objects deeper than " + std::to_string(kMaxJsonNesting) +
                                                  " levels: send flatter JSON"};
    rapidjson::Document doc;
    doc.Parse(frame.data(), frame.size());
    if (doc.HasParseError())
        return WpsProtocolError{std::nullopt, "the frame is not JSON: every frame on this subprotocol is a JSON object "
                                              "such as {\"type\":\"joinGroup\",\"group\":\"g\",\"ackId\":1}"};
    if (!doc.IsObject())
        return WpsProtocolError{std::nullopt, std::string("the frame is ") + typeNameOf(doc) +
                                                  ", not a JSON object with a \"type\""};
    WpsClientMessage msg;
    WpsProtocolError err;
    if (doc.HasMember("ackId")) {
        const Value &a = doc["ackId"];
        if (!a.IsUint64()) {
            err.message = std::string("\"ackId\" must be a whole number from 0 to 2^64-1, got ") + typeNameOf(a);
            return err;
        }
        msg.ackId = a.GetUint64();
        err.ackId = msg.ackId;
    }
    if (!doc.HasMember("type") || !doc["type"].IsString()) {
        err.message = "\"type\" is missing or not a string: use joinGroup, leaveGroup, sendToGroup, event, sequenceAck or ping";
        return err;
    }
    std::string_view type = viewOf(doc["type"]);
    std::string problem;
    if (type == "joinGroup" || type == "leaveGroup") {
        msg.kind = type == "joinGroup" ? WpsClientMessage::Kind::JoinGroup : WpsClientMessage::Kind::LeaveGroup;
        problem = readNonEmptyString(doc, "group", msg.group);
    } else if (type == "sendToGroup") {
        msg.kind = WpsClientMessage::Kind::SendToGroup;
        problem = readNonEmptyString(doc, "group", msg.group);
        if (problem.empty() && doc.HasMember("noEcho")) {
            if (!doc["noEcho"].IsBool()) problem = std::string("\"noEcho\" must be true or false, got ") + typeNameOf(doc["noEcho"]);
            else msg.noEcho = doc["noEcho"].GetBool();
        }
        if (problem.empty()) problem = readData(doc, msg.data);
    } else if (type == "event") {
        msg.kind = WpsClientMessage::Kind::Event;
        problem = readNonEmptyString(doc, "event", msg.event);
        if (problem.empty()) problem = readData(doc, msg.data);
    } else if (type == "invoke") {
        msg.kind = WpsClientMessage::Kind::Invoke;
        problem = readNonEmptyString(doc, "invocationId", msg.invocationId);
        if (problem.empty() && doc.HasMember("target") &&
            !(doc["target"].IsString() && viewOf(doc["target"]) == "event"))
            problem = "\"target\" must be \"event\" (the only invocation target)";
        if (problem.empty()) problem = readNonEmptyString(doc, "event", msg.event);
        if (problem.empty() && (doc.HasMember("dataType") || doc.HasMember("data"))) problem = readData(doc, msg.data);
    } else if (type == "sequenceAck") {
        msg.kind = WpsClientMessage::Kind::SequenceAck;
        if (!doc.HasMember("sequenceId") || !doc["sequenceId"].IsUint64())
            problem = "\"sequenceId\" must be the whole number of the last message received";
        else
            msg.sequenceId = doc["sequenceId"].GetUint64();
    } else if (type == "ping") {
        msg.kind = WpsClientMessage::Kind::Ping;
    } else {
        err.message = "unknown message type '" + std::string(type).substr(0, 40) +
                      "': use joinGroup, leaveGroup, sendToGroup, event, invoke, sequenceAck or ping";
        return err;
    }
    if (!problem.empty()) {
        err.message = std::string(type) + ": " + problem;
        return err;
    }
    return msg;
}

std::string wpsAckSuccess(uint64_t ackId) {
    return "{\"type\":\"ack\",\"ackId\":" + std::to_string(ackId) + ",\"success\":true}";
}

std::string wpsAckError(uint64_t ackId, std::string_view errorName, std::string_view message) {
    std::string out = "{\"type\":\"ack\",\"ackId\":" + std::to_string(ackId) + ",\"success\":false,\"error\":{\"name\":";
    log::appendJsonString(out, errorName);
    out += ",\"message\":";
    log::appendJsonString(out, message);
    out += "}}";
    return out;
}

std::string wpsGroupMessage(std::string_view group, std::string_view fromUserId, const WpsData &data) {
    std::string out = "{\"type\":\"message\",\"from\":\"group\"";
    if (!fromUserId.empty()) {
        out += ",\"fromUserId\":";
        log::appendJsonString(out, fromUserId);
    }
    out += ",\"group\":";
    log::appendJsonString(out, group);
    out += ',';
    appendData(out, data);
    out += '}';
    return out;
}

std::string wpsServerMessage(const WpsData &data) {
    std::string out = "{\"type\":\"message\",\"from\":\"server\",";
    appendData(out, data);
    out += '}';
    return out;
}

std::string wpsConnectedMessage(std::string_view connectionId, std::string_view userId, std::string_view reconnectionToken) {
    std::string out = "{\"type\":\"system\",\"event\":\"connected\"";
    if (!userId.empty()) {
        out += ",\"userId\":";
        log::appendJsonString(out, userId);
    }
    out += ",\"connectionId\":";
    log::appendJsonString(out, connectionId);
    if (!reconnectionToken.empty()) {
        out += ",\"reconnectionToken\":";
        log::appendJsonString(out, reconnectionToken);
    }
    out += '}';
    return out;
}

std::string wpsDisconnectedMessage(std::string_view reason) {
    std::string out = "{\"type\":\"system\",\"event\":\"disconnected\",\"message\":";
    log::appendJsonString(out, reason);
    out += '}';
    return out;
}

std::string wpsPongMessage() { return "{\"type\":\"pong\"}"; }

std::string wpsInvokeResponse(std::string_view invocationId, const WpsData *data) {
    std::string out = "{\"type\":\"invokeResponse\",\"invocationId\":";
    log::appendJsonString(out, invocationId);
    out += ",\"success\":true";
    if (data) {
        out += ',';
        appendData(out, *data);
    }
    out += '}';
    return out;
}

std::string wpsInvokeError(std::string_view invocationId, std::string_view errorName, std::string_view message) {
    std::string out = "{\"type\":\"invokeResponse\",\"invocationId\":";
    log::appendJsonString(out, invocationId);
    out += ",\"success\":false,\"error\":{\"name\":";
    log::appendJsonString(out, errorName);
    out += ",\"message\":";
    log::appendJsonString(out, message);
    out += "}}";
    return out;
}

std::string withSequenceId(std::string_view message, uint64_t sequenceId) {
    std::string out;
    out.reserve(message.size() + 32);
    out += "{\"sequenceId\":";
    out += std::to_string(sequenceId);
    if (message.size() > 2) out += ',';  // "{}" has no member to separate from
    out.append(message.substr(1));
    return out;
}

std::optional<WpsData> wpsDataFromContentType(std::string_view contentType, std::string_view body) {
    // The media type without parameters (";charset=utf-8"), compared case-insensitively.
    std::string media = toLowerAscii(trimOws(contentType.substr(0, contentType.find(';'))));
    if (media == "application/json") {
        if (!isJsonValue(body)) return std::nullopt;
        return WpsData{WpsDataType::Json, std::string(body)};
    }
    if (media == "text/plain") {
        if (!isValidUtf8(body.data(), body.size())) return std::nullopt;
        return WpsData{WpsDataType::Text, std::string(body)};
    }
    return WpsData{WpsDataType::Binary, std::string(body)};
}

WpsData wpsDataFromFrame(std::string_view bytes, bool forceBinary) {
    if (!forceBinary && isValidUtf8(bytes.data(), bytes.size())) return {WpsDataType::Text, std::string(bytes)};
    return {WpsDataType::Binary, std::string(bytes)};
}

}  // namespace wsgw
