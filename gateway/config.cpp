#include "config.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace wsgw {

extern const char kRoutesSchemaJson[];
extern const std::size_t kRoutesSchemaJsonSize;

std::string ConfigError::message() const {
    std::string m = file + ": ";
    if (!jsonPath.empty()) m += jsonPath + ": ";
    return m + reason;
}

namespace {

// The schema as JSON (to read the rule that failed) and compiled (to validate).
const rapidjson::Document &routesSchemaJson() {
    static const rapidjson::Document doc = [] {
        rapidjson::Document d;
        d.Parse(kRoutesSchemaJson, kRoutesSchemaJsonSize);
        return d;
    }();
    return doc;
}

const rapidjson::SchemaDocument &routesSchema() {
    static const rapidjson::SchemaDocument schema(routesSchemaJson());
    return schema;
}

std::string typeName(const rapidjson::Value &v) {
    switch (v.GetType()) {
    case rapidjson::kNullType: return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType: return "boolean";
    case rapidjson::kObjectType: return "object";
    case rapidjson::kArrayType: return "array";
    case rapidjson::kStringType: return "string";
    case rapidjson::kNumberType: return v.IsInt64() || v.IsUint64() ? "integer" : "number";
    }
    return "value";
}

std::string compact(const rapidjson::Value &v) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

std::string pointerText(const rapidjson::Pointer &p) {
    rapidjson::StringBuffer buf;
    p.Stringify(buf);
    return std::string(buf.GetString(), buf.GetSize());
}

const char *laterFeature(const std::string &name) {
    static const char *names[] = {"authorizer", "throttle", "connectionThrottle", "proxy", "http"};
    for (const char *n : names)
        if (name == n) return n;
    return nullptr;
}

// A readable reason from the failing keyword, read against the schema rule that failed (RapidJSON 1.1
// reports only the keyword and the two pointers).
std::string schemaReason(const rapidjson::SchemaValidator &v, const rapidjson::Document &doc, std::string &path) {
    std::string keyword = v.GetInvalidSchemaKeyword();
    const rapidjson::Value *instance = v.GetInvalidDocumentPointer().Get(doc);
    const rapidjson::Value *rule = v.GetInvalidSchemaPointer().Get(routesSchemaJson());
    if (keyword == "type") {
        std::string expected = rule && rule->HasMember("type") && (*rule)["type"].IsString() ? (*rule)["type"].GetString() : "another type";
        return "expected " + expected + ", got " + (instance ? typeName(*instance) : std::string("another type"));
    }
    if (keyword == "required") {
        std::string missing;
        if (rule && rule->HasMember("required") && instance && instance->IsObject())
            for (auto &m : (*rule)["required"].GetArray())
                if (!instance->HasMember(m.GetString())) missing += (missing.empty() ? "'" : ", '") + std::string(m.GetString()) + "'";
        return "required property " + missing + " is missing";
    }
    if (keyword == "additionalProperties") {
        // RapidJSON 1.1 points at the disallowed property itself.
        const rapidjson::Pointer &at = v.GetInvalidDocumentPointer();
        std::string name = at.GetTokenCount() ? std::string(at.GetTokens()[at.GetTokenCount() - 1].name,
                                                            at.GetTokens()[at.GetTokenCount() - 1].length)
                                              : std::string();
        if (laterFeature(name)) return "unknown property '" + name + "' (not supported by this version of wsgw)";
        if (path.rfind("/handlers/", 0) == 0 && std::count(path.begin(), path.end(), '/') == 2)
            return "handler name '" + name + "' may only use letters, digits, '_', '.' and '-'";
        return "unknown property '" + name + "': remove it or check its spelling";
    }
    if (keyword == "minimum" || keyword == "maximum") {
        std::string bound = rule && rule->HasMember(keyword.c_str()) ? compact((*rule)[keyword.c_str()]) : "?";
        return std::string("must be ") + (keyword == "minimum" ? ">= " : "<= ") + bound + " (got " +
               (instance ? compact(*instance) : std::string("?")) + ")";
    }
    std::string text = instance && instance->IsString() ? std::string(instance->GetString()) : std::string();
    if (keyword == "pattern" && path.rfind("/subprotocols/", 0) == 0)
        return "'" + text + "' is not a subprotocol token (letters, digits and !#$%&'*+-.^_`|~, no spaces or commas)";
    if (keyword == "pattern") return "'" + text + "' may only use letters, digits, '_', '.' and '-' (it names a plugin file)";
    if (keyword == "uniqueItems") return "repeats a value listed before it";
    if (keyword == "enum") {
        std::string allowed = rule && rule->HasMember("enum") ? compact((*rule)["enum"]) : "?";
        return "must be one of " + allowed + " (got " + (instance ? compact(*instance) : std::string("?")) + ")";
    }
    if (keyword == "minLength") return "must not be empty";
    if (keyword == "minProperties") return "needs at least one route (for example \"$default\")";
    return "fails the schema rule '" + keyword + "'";
}

}  // namespace

std::variant<ApiConfig, ConfigError> parseApiConfig(std::string_view text, const std::string &sourceName) {
    auto error = [&](std::string path, std::string reason) { return ConfigError{sourceName, std::move(path), std::move(reason)}; };
    rapidjson::Document doc;
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError()) {
        size_t offset = std::min(doc.GetErrorOffset(), text.size());
        size_t line = 1, column = 1;
        for (size_t i = 0; i < offset; ++i) {
            if (text[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        return error("", "invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(column) + ": " +
                             rapidjson::GetParseError_En(doc.GetParseError()));
    }
    // A handler's "config" may be any JSON and is the plugin's to check. RapidJSON 1.1's validator crashes
    // on nested objects below a pattern property, so the schema sees each config as null.
    rapidjson::Document checked;
    checked.CopyFrom(doc, checked.GetAllocator());
    if (checked.IsObject() && checked.HasMember("handlers") && checked["handlers"].IsObject()) {
        for (auto &h : checked["handlers"].GetObject())
            if (h.value.IsObject() && h.value.HasMember("config")) h.value["config"].SetNull();
    }
    rapidjson::SchemaValidator validator(routesSchema());
    if (!checked.Accept(validator)) {
        std::string path = pointerText(validator.GetInvalidDocumentPointer());
        std::string reason = schemaReason(validator, checked, path);
        return error(path, reason);
    }

    ApiConfig cfg;
    cfg.sourcePath = sourceName;
    cfg.routeSelectionExpression = doc["routeSelectionExpression"].GetString();
    if (doc.HasMember("subprotocols"))
        for (const auto &p : doc["subprotocols"].GetArray()) cfg.subprotocols.emplace_back(p.GetString(), p.GetStringLength());
    if (doc.HasMember("limits")) {
        const auto &l = doc["limits"];
        if (l.HasMember("maxMessageBytes")) cfg.limits.maxMessageBytes = l["maxMessageBytes"].GetUint();
        if (l.HasMember("handshakeTimeoutSeconds")) cfg.limits.handshakeTimeoutSeconds = l["handshakeTimeoutSeconds"].GetInt();
    }
    if (doc.HasMember("handlers")) {
        for (auto &m : doc["handlers"].GetObject()) {
            HandlerSpec h;
            h.name = m.name.GetString();
            bool nameOk = !h.name.empty() && std::all_of(h.name.begin(), h.name.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
            });
            if (!nameOk) {
                rapidjson::Pointer p(rapidjson::Pointer().Append(std::string("handlers")).Append(h.name));
                return error(pointerText(p), "handler name '" + h.name + "' may only use letters, digits, '_', '.' and '-'");
            }
            h.plugin = m.value.HasMember("plugin") ? m.value["plugin"].GetString() : h.name;
            h.configJson = m.value.HasMember("config") ? compact(m.value["config"]) : "{}";
            h.isolated = m.value.HasMember("isolation") && std::string_view(m.value["isolation"].GetString()) == "process";
            if (m.value.HasMember("workers")) h.workers = m.value["workers"].GetUint();
            if (m.value.HasMember("maxWorkerMemoryMb")) h.maxWorkerMemoryMb = m.value["maxWorkerMemoryMb"].GetUint64();
            cfg.handlers[h.name] = std::move(h);
        }
    }
    for (auto &m : doc["routes"].GetObject()) {
        std::string key(m.name.GetString(), m.name.GetStringLength());
        rapidjson::Pointer p(rapidjson::Pointer().Append(std::string("routes")).Append(key));
        std::string path = pointerText(p);
        if (key.empty()) return error(path, "a route key must not be empty");
        if (key[0] == '$' && key != "$connect" && key != "$disconnect" && key != "$default")
            return error(path, "'" + key + "' is not a route: keys starting with '$' are reserved for $connect, "
                                             "$disconnect and $default; rename the custom route without the '$'");
        RouteSpec r;
        r.key = key;
        r.jsonPath = path;
        r.handler = m.value["handler"].GetString();
        if (m.value.HasMember("routeResponse")) r.routeResponse = m.value["routeResponse"].GetBool();
        if (m.value.HasMember("timeoutMs")) r.timeoutMs = m.value["timeoutMs"].GetUint();
        if (!cfg.handlers.count(r.handler)) cfg.handlers[r.handler] = HandlerSpec{r.handler, r.handler, "{}"};
        cfg.routes[key] = std::move(r);
    }
    return cfg;
}

std::variant<ApiConfig, ConfigError> loadApiConfig(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return ConfigError{path, "", std::string("cannot read the route table: ") + std::strerror(errno) +
                                         " (give its path with --routes)"};
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return parseApiConfig(ss.str(), path);
}

}  // namespace wsgw
