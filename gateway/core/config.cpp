#include "config.h"
#include "config_file.h"

#include "json_text.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <filesystem>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <unordered_set>
#include <vector>

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

std::string pointerText(const rapidjson::Pointer &p) {
    rapidjson::StringBuffer buf;
    p.Stringify(buf);
    return std::string(buf.GetString(), buf.GetSize());
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
        if (path.rfind("/handlers/", 0) == 0 && std::count(path.begin(), path.end(), '/') == 2)
            return "handler name '" + name + "' may only use letters, digits, '_', '.' and '-'";
        if (name == "inline" && path.rfind("/routes/", 0) == 0)
            return "\"inline\" is a setting of a handler, not of a route: put it on the in-process plugin under "
                   "\"handlers\" (an \"http\" route's backend is always called from a worker thread)";
        return "unknown property '" + name + "': remove it or check its spelling";
    }
    if (keyword == "minimum" || keyword == "maximum") {
        std::string bound = rule && rule->HasMember(keyword.c_str()) ? compactJson((*rule)[keyword.c_str()]) : "?";
        return std::string("must be ") + (keyword == "minimum" ? ">= " : "<= ") + bound + " (got " +
               (instance ? compactJson(*instance) : std::string("?")) + ")";
    }
    std::string text = instance && instance->IsString() ? std::string(instance->GetString()) : std::string();
    if (keyword == "pattern" && path.rfind("/subprotocols/", 0) == 0)
        return "'" + text + "' is not a subprotocol token (letters, digits and !#$%&'*+-.^_`|~, no spaces or commas)";
    if (keyword == "pattern" && path == "/stage")
        return "'" + text + "' is not a stage name: 1 to 128 letters, digits, '_' and '-' (it is a path segment of the callback URL)";
    if (keyword == "pattern") return "'" + text + "' may only use letters, digits, '_', '.' and '-' (it names a plugin file)";
    if (keyword == "uniqueItems") return "repeats a value listed before it";
    if (keyword == "enum") {
        std::string allowed = rule && rule->HasMember("enum") ? compactJson((*rule)["enum"]) : "?";
        return "must be one of " + allowed + " (got " + (instance ? compactJson(*instance) : std::string("?")) + ")";
    }
    if (keyword == "minLength") return "must not be empty";
    if (keyword == "minProperties") return "needs at least one route (for example \"$default\")";
    return "fails the schema rule '" + keyword + "'";
}

// RapidJSON keeps every member of an object, a repeated key included, and a lookup finds only one of
// them: a second "$default" or "limits" would be silently ignored, on start and on reload. So a repeated
// key anywhere in the file (a handler's "config" too) is refused. Returns false when there is none, else
// sets the JSON Pointer of the object that repeats one, and the key. Iterative: the depth is the file's.
bool findRepeatedKey(const rapidjson::Value &root, std::string &objectPointer, std::string &repeatedKey) {
    struct Level {
        const rapidjson::Value *container;
        rapidjson::SizeType nextChild;
        std::string token;  // this container's name in its parent
    };
    std::vector<Level> levels;
    auto pointerOfTop = [&levels] {
        rapidjson::Pointer p;
        for (size_t i = 1; i < levels.size(); ++i) p = p.Append(levels[i].token);
        return pointerText(p);
    };
    // Enters a value; true when it is an object that repeats a key.
    auto enter = [&](const rapidjson::Value &v, std::string token) {
        if (!v.IsObject() && !v.IsArray()) return false;
        levels.push_back({&v, 0, std::move(token)});
        if (!v.IsObject()) return false;
        std::unordered_set<std::string_view> seen;
        for (const auto &m : v.GetObject()) {
            std::string_view name(m.name.GetString(), m.name.GetStringLength());
            if (!seen.insert(name).second) {
                objectPointer = pointerOfTop();
                repeatedKey = std::string(name);
                return true;
            }
        }
        return false;
    };
    if (enter(root, "")) return true;
    while (!levels.empty()) {
        const rapidjson::Value &container = *levels.back().container;
        rapidjson::SizeType child = levels.back().nextChild++;
        if (child == (container.IsObject() ? container.MemberCount() : container.Size())) {
            levels.pop_back();
            continue;
        }
        if (container.IsObject()) {
            const auto &m = *(container.MemberBegin() + child);
            if (enter(m.value, std::string(m.name.GetString(), m.name.GetStringLength()))) return true;
        } else if (enter(container[child], std::to_string(child))) {
            return true;
        }
    }
    return false;
}

}  // namespace

RateSpec rateOf(const rapidjson::Value &v) {
    RateSpec r;
    r.rate = v["rate"].GetDouble();
    r.burst = v.HasMember("burst") ? v["burst"].GetDouble() : std::max(1.0, r.rate);
    return r;
}

std::string resolvePath(const std::string &baseDir, const std::string &p) {
    if (p.empty() || p[0] == '/') return p;
    return baseDir + "/" + p;
}

std::vector<std::string> stringsOf(const rapidjson::Value &v) {
    std::vector<std::string> out;
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
    else if (v.IsArray())
        for (const auto &e : v.GetArray())
            if (e.IsString()) out.emplace_back(e.GetString(), e.GetStringLength());
    return out;
}

// The checks the schema cannot express: what each authorizer type needs, and the shape of "keys".
std::string parseAuthorizer(const rapidjson::Value &v, const std::string &path, const std::string &baseDir, AuthorizerSpec &a) {
    a.jsonPath = path;
    a.type = v["type"].GetString();
    if (v.HasMember("sources")) a.sources = stringsOf(v["sources"]);
    auto has = [&](const char *name) { return v.HasMember(name); };
    if (a.type == "apiKey") {
        for (const char *jwtOnly : {"algorithms", "secret", "publicKeyFile", "jwksFile", "issuer", "audience", "clockSkewSeconds"})
            if (has(jwtOnly)) return std::string("'") + jwtOnly + "' belongs to a jwt authorizer, not apiKey";
        if (a.sources.empty()) a.sources = {"header:x-api-key", "query:apikey"};
        if (has("keys")) {
            size_t i = 0;
            for (const auto &k : v["keys"].GetArray()) {
                std::string where = "/keys/" + std::to_string(i++);
                if (k.IsString() && k.GetStringLength()) {
                    a.keys.emplace_back("", std::string(k.GetString(), k.GetStringLength()));
                } else if (k.IsObject() && k.HasMember("key") && k["key"].IsString() && k["key"].GetStringLength() &&
                           (!k.HasMember("id") || (k["id"].IsString() && k["id"].GetStringLength())) && k.MemberCount() <= 2 &&
                           (k.MemberCount() == 1 || k.HasMember("id"))) {
                    a.keys.emplace_back(k.HasMember("id") ? k["id"].GetString() : "", k["key"].GetString());
                } else {
                    return where.substr(1) + ": a key is a non-empty string or {\"id\": \"...\", \"key\": \"...\"}";
                }
            }
        }
        if (has("keyFile")) a.keyFile = resolvePath(baseDir, v["keyFile"].GetString());
        if (a.keys.empty() && a.keyFile.empty()) return "an apiKey authorizer needs \"keys\" or a \"keyFile\"";
    } else {
        if (has("keys") || has("keyFile")) return "'keys' and 'keyFile' belong to an apiKey authorizer, not jwt";
        if (a.sources.empty()) a.sources = {"header:Authorization", "query:access_token"};
        if (!has("algorithms")) return "a jwt authorizer must list its \"algorithms\" (for example [\"RS256\"])";
        a.algorithms = stringsOf(v["algorithms"]);
        if (has("secret")) a.secret = v["secret"].GetString();
        if (has("publicKeyFile")) a.publicKeyFile = resolvePath(baseDir, v["publicKeyFile"].GetString());
        if (has("jwksFile")) a.jwksFile = resolvePath(baseDir, v["jwksFile"].GetString());
        if (has("issuer")) a.issuer = v["issuer"].GetString();
        if (has("audience")) a.audience = stringsOf(v["audience"]);
        if (has("clockSkewSeconds")) a.clockSkewSeconds = v["clockSkewSeconds"].GetInt();
        bool wantsSecret = std::find(a.algorithms.begin(), a.algorithms.end(), "HS256") != a.algorithms.end();
        bool wantsPublic = a.algorithms.size() > (wantsSecret ? 1u : 0u);
        if (wantsSecret && a.secret.empty()) return "HS256 needs a \"secret\"";
        if (wantsPublic && a.publicKeyFile.empty() && a.jwksFile.empty())
            return "RS256 and ES256 need a \"publicKeyFile\" or a \"jwksFile\"";
    }
    return {};
}

// Environment variables Lambda sets itself and refuses in a function's configuration.
constexpr const char *kReservedLambdaEnvironment[] = {
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"};

// The checks of a "lambda" object the schema cannot express. Returns the JSON path below "lambda" of
// what is wrong ("" for the object itself) with `reason` set; `reason` stays empty when it is fine.
std::string parseLambda(const rapidjson::Value &v, const std::string &baseDir, LambdaSpec &l, std::string &reason) {
    bool hasRuntime = v.HasMember("runtime"), hasCommand = v.HasMember("command"), hasHandler = v.HasMember("handler");
    if (hasRuntime == hasCommand) {
        reason = hasRuntime ? "give either \"runtime\" (with \"handler\") or \"command\", not both"
                            : "say what to run: \"runtime\": \"nodejs\" or \"python\" with \"handler\": \"file.export\", "
                              "or \"command\": [argv of a Lambda Runtime API client]";
        return "";
    }
    if (hasRuntime) {
        l.runtime = v["runtime"].GetString();
        if (!hasHandler) {
            reason = "required property 'handler' is missing: a \"runtime\" function names its handler as \"file.export\" "
                     "(for example \"app.handler\" for the export handler of app.js)";
            return "";
        }
        l.handler = v["handler"].GetString();
        auto dot = l.handler.rfind('.');
        if (dot == std::string::npos || dot == 0 || dot + 1 == l.handler.size() || l.handler.back() == '/') {
            reason = "'" + l.handler + "' is not file.export: write the file (without its extension, relative to "
                     "\"directory\") and the exported function's name, for example \"app.handler\"";
            return "/handler";
        }
    } else {
        if (hasHandler) {
            reason = "\"handler\" goes with \"runtime\"; a \"command\" gets its handler in its own arguments";
            return "/handler";
        }
        for (const auto &a : v["command"].GetArray()) l.command.emplace_back(a.GetString(), a.GetStringLength());
    }
    std::string dir = v["directory"].GetString();
    // Absolute: the function's process runs in this directory and is given it as LAMBDA_TASK_ROOT, so a
    // path relative to the gateway's working directory (from a relative --routes) would not resolve there.
    l.directory = std::filesystem::absolute(resolvePath(baseDir, dir)).lexically_normal().string();
    while (l.directory.size() > 1 && l.directory.back() == '/') l.directory.pop_back();
    if (v.HasMember("concurrency")) l.concurrency = v["concurrency"].GetUint();
    if (v.HasMember("memoryMb")) l.memoryMb = v["memoryMb"].GetUint();
    if (v.HasMember("environment")) {
        for (auto &e : v["environment"].GetObject()) {
            std::string name(e.name.GetString(), e.name.GetStringLength());
            bool nameOk = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                          std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
            std::string at = pointerText(rapidjson::Pointer().Append(std::string("environment")).Append(name));
            if (!nameOk) {
                reason = "'" + name + "' is not an environment variable name: use letters, digits and '_', not starting with a digit";
                return at;
            }
            for (const char *reserved : kReservedLambdaEnvironment) {
                if (name == reserved) {
                    reason = "'" + name + "' is set by the gateway, as Lambda sets it (a reserved key on AWS too): remove it";
                    return at;
                }
            }
            std::string value(e.value.GetString(), e.value.GetStringLength());
            if (value.find('\0') != std::string::npos) {
                reason = "the value of '" + name + "' holds a NUL character, which no environment variable can";
                return at;
            }
            l.environment.emplace_back(std::move(name), std::move(value));
        }
    }
    return "";
}

namespace {

// Where a routes.json is wrong (a JSON pointer, "" for the whole file) and what to do about it.
struct ConfigProblem {
    std::string path;
    std::string reason;
};
using MaybeProblem = std::optional<ConfigProblem>;

std::string lineAndColumn(std::string_view text, size_t offset) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < std::min(offset, text.size()); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// Parses `text` into `doc` and checks it against the schema (and what the schema cannot say: nesting,
// repeated keys).
MaybeProblem parseAndValidate(std::string_view text, rapidjson::Document &doc) {
    if (!jsonDepthWithin(text))
        return ConfigProblem{"", "arrays and objects nest deeper than " + std::to_string(kMaxJsonNesting) +
                                     " levels: no API definition needs that; is this the right file?"};
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError())
        return ConfigProblem{"", "invalid JSON at " + lineAndColumn(text, doc.GetErrorOffset()) + ": " +
                                     rapidjson::GetParseError_En(doc.GetParseError())};
    std::string objectPointer, repeatedKey;
    if (findRepeatedKey(doc, objectPointer, repeatedKey))
        return ConfigProblem{objectPointer, "the key '" + repeatedKey + "' appears more than once in " +
                                                (objectPointer.empty() ? "the top-level object" : "this object") +
                                                " (only one of them would be used): keep one, merging what the others hold into it"};
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
        return ConfigProblem{path, reason};
    }
    return std::nullopt;
}

void readLimits(const rapidjson::Value &l, Limits &limits) {
    if (l.HasMember("maxMessageBytes")) limits.maxMessageBytes = l["maxMessageBytes"].GetUint();
    if (l.HasMember("maxFrameBytes")) limits.maxFrameBytes = l["maxFrameBytes"].GetUint();
    if (l.HasMember("handshakeTimeoutSeconds")) limits.handshakeTimeoutSeconds = l["handshakeTimeoutSeconds"].GetInt();
    if (l.HasMember("idleTimeoutSeconds")) limits.idleTimeoutSeconds = l["idleTimeoutSeconds"].GetInt();
    if (l.HasMember("maxConnectionSeconds")) limits.maxConnectionSeconds = l["maxConnectionSeconds"].GetInt();
    if (l.HasMember("maxConnectionsPerIp")) limits.maxConnectionsPerIp = l["maxConnectionsPerIp"].GetUint();
    if (l.HasMember("maxSendQueueBytes")) limits.maxSendQueueBytes = l["maxSendQueueBytes"].GetUint();
    if (l.HasMember("maxPendingMessages")) limits.maxPendingMessages = l["maxPendingMessages"].GetUint();
    if (l.HasMember("maxPendingBytes")) limits.maxPendingBytes = l["maxPendingBytes"].GetUint();
    if (l.HasMember("socketSendBufferBytes")) limits.socketSendBufferBytes = l["socketSendBufferBytes"].GetUint();
    if (l.HasMember("allowedOrigins"))
        for (const auto &o : l["allowedOrigins"].GetArray()) limits.allowedOrigins.emplace_back(o.GetString(), o.GetStringLength());
}

// The keys of the top level but routes and handlers.
MaybeProblem readApiSettings(const rapidjson::Document &doc, ApiConfig &cfg) {
    // Required unless the whole API is a proxy, whose client messages go to the backend, never to a route
    // (draft 4 cannot say so: checked here).
    if (doc.HasMember("routeSelectionExpression")) cfg.routeSelectionExpression = doc["routeSelectionExpression"].GetString();
    else if (!doc.HasMember("proxy"))
        return ConfigProblem{"", "required property 'routeSelectionExpression' is missing (only an API with a \"proxy\" may leave it out)"};
    if (doc.HasMember("subprotocols"))
        for (const auto &p : doc["subprotocols"].GetArray()) cfg.subprotocols.emplace_back(p.GetString(), p.GetStringLength());
    if (doc.HasMember("compression")) cfg.compression = doc["compression"].GetBool();
    if (doc.HasMember("stage")) cfg.stage = doc["stage"].GetString();
    if (doc.HasMember("limits")) readLimits(doc["limits"], cfg.limits);
    if (doc.HasMember("throttle")) cfg.throttle = rateOf(doc["throttle"]);
    if (doc.HasMember("proxy")) {
        const auto &p = doc["proxy"];
        cfg.proxy.url = p["url"].GetString();
        if (p.HasMember("forwardHeaders")) cfg.proxy.forwardHeaders = stringsOf(p["forwardHeaders"]);
        if (p.HasMember("forwardQuery")) cfg.proxy.forwardQuery = p["forwardQuery"].GetBool();
    }
    if (doc.HasMember("webPubSub")) {
        std::string at;
        if (auto err = parseWebPubSub(doc["webPubSub"], cfg.webPubSub, at); !err.empty()) return ConfigProblem{"/webPubSub" + at, err};
    }
    return std::nullopt;
}

// One entry of "handlers": a plugin (in-process or isolated) or a "lambda" handler.
MaybeProblem readHandler(const std::string &name, const rapidjson::Value &v, const std::string &stage, const std::string &baseDir,
                         HandlerSpec &h) {
    h.name = name;
    std::string path = pointerText(rapidjson::Pointer().Append(std::string("handlers")).Append(h.name));
    bool nameOk = !h.name.empty() && std::all_of(h.name.begin(), h.name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
    if (!nameOk) return ConfigProblem{path, "handler name '" + h.name + "' may only use letters, digits, '_', '.' and '-'"};
    h.plugin = v.HasMember("plugin") ? v["plugin"].GetString() : h.name;
    h.configJson = v.HasMember("config") ? compactJson(v["config"]) : "{}";
    h.isolated = v.HasMember("isolation") && std::string_view(v["isolation"].GetString()) == "process";
    if (v.HasMember("workers")) h.workers = v["workers"].GetUint();
    if (v.HasMember("maxWorkerMemoryMb")) h.maxWorkerMemoryMb = v["maxWorkerMemoryMb"].GetUint64();
    h.runsInline = v.HasMember("inline") && v["inline"].GetBool();
    // Inline, handle() runs on the network thread, inside the gateway: there is no process to isolate it in,
    // no Lambda process to wait for and no deadline to answer at without blocking every connection there.
    if (h.runsInline && h.isolated)
        return ConfigProblem{path + "/inline", "an inline handler runs on the network thread inside the gateway's own process; "
                                               "an isolated one (\"isolation\": \"process\") runs in worker processes: remove "
                                               "\"inline\" or the isolation"};
    if (h.runsInline && v.HasMember("lambda"))
        return ConfigProblem{path + "/inline", "only an in-process plugin can run inline: a \"lambda\" handler's invocation "
                                               "waits for a function process, which must not happen on the network thread; "
                                               "remove \"inline\""};
    if (!v.HasMember("lambda")) return std::nullopt;
    for (const char *pluginOnly : {"plugin", "config", "isolation", "workers", "maxWorkerMemoryMb"})
        if (v.HasMember(pluginOnly))
            return ConfigProblem{path + "/" + pluginOnly, std::string("'") + pluginOnly +
                                                              "' belongs to a plugin handler; a \"lambda\" handler runs "
                                                              "function processes: remove it (or remove \"lambda\")"};
    std::string reason;
    std::string at = parseLambda(v["lambda"], baseDir, h.lambda, reason);
    if (!reason.empty()) return ConfigProblem{path + "/lambda" + at, reason};
    h.isLambda = true;
    h.plugin.clear();
    h.lambda.stage = stage;
    return std::nullopt;
}

MaybeProblem readHandlers(const rapidjson::Document &doc, const std::string &baseDir, ApiConfig &cfg) {
    if (!doc.HasMember("handlers")) return std::nullopt;
    for (const auto &m : doc["handlers"].GetObject()) {
        HandlerSpec h;
        if (auto problem = readHandler(m.name.GetString(), m.value, cfg.stage, baseDir, h)) return problem;
        cfg.handlers[h.name] = std::move(h);
    }
    return std::nullopt;
}

// One entry of "routes" (its handler, when not among "handlers", becomes a plugin of the same name).
MaybeProblem readRoute(const std::string &key, const rapidjson::Value &v, const std::string &baseDir, ApiConfig &cfg) {
    rapidjson::Pointer p(rapidjson::Pointer().Append(std::string("routes")).Append(key));
    std::string path = pointerText(p);
    if (key.empty()) return ConfigProblem{path, "a route key must not be empty"};
    if (key[0] == '$' && key != "$connect" && key != "$disconnect" && key != "$default")
        return ConfigProblem{path, "'" + key + "' is not a route: keys starting with '$' are reserved for $connect, "
                                                 "$disconnect and $default; rename the custom route without the '$'"};
    RouteSpec r;
    r.key = key;
    r.jsonPath = path;
    if (v.HasMember("handler")) r.handler = v["handler"].GetString();
    if (v.HasMember("http")) r.http = v["http"].GetString();
    if (!r.http.empty() && !r.handler.empty())
        return ConfigProblem{path, "a route has one integration: give either \"handler\" or \"http\", not both"};
    if (v.HasMember("routeResponse")) r.routeResponse = v["routeResponse"].GetBool();
    if (v.HasMember("timeoutMs")) r.timeoutMs = v["timeoutMs"].GetUint();
    if (v.HasMember("throttle")) r.throttle = rateOf(v["throttle"]);
    if (v.HasMember("connectionThrottle")) r.connectionThrottle = rateOf(v["connectionThrottle"]);
    if (v.HasMember("authorizer")) {
        if (key != "$connect") return ConfigProblem{path + "/authorizer", "an authorizer runs when a connection opens: put it on \"$connect\""};
        if (auto err = parseAuthorizer(v["authorizer"], path + "/authorizer", baseDir, r.authorizer); !err.empty())
            return ConfigProblem{path + "/authorizer", err};
    }
    if (r.handler.empty()) {
        if (r.http.empty() && (key != "$connect" || r.authorizer.type.empty()))
            return ConfigProblem{path, "required property 'handler' is missing (or \"http\"; only a $connect with an authorizer may have neither)"};
        cfg.routes[key] = std::move(r);
        return std::nullopt;
    }
    if (!cfg.handlers.count(r.handler)) {
        HandlerSpec implicit;  // a plugin of the same name with an empty config
        implicit.name = implicit.plugin = r.handler;
        implicit.configJson = "{}";
        cfg.handlers[r.handler] = std::move(implicit);
    }
    cfg.routes[key] = std::move(r);
    return std::nullopt;
}

MaybeProblem readRoutes(const rapidjson::Document &doc, const std::string &baseDir, ApiConfig &cfg) {
    // Required, with at least one route, unless the whole API is a proxy (docs/routes-json.md, "Proxy").
    // Checked here because JSON Schema draft 4 cannot make one property depend on another.
    bool hasRoutes = doc.HasMember("routes") && doc["routes"].MemberCount() > 0;
    if (!hasRoutes && cfg.proxy.url.empty() && !cfg.webPubSub.enabled()) {
        if (!doc.HasMember("routes"))
            return ConfigProblem{"", "required property 'routes' is missing (only an API with a \"proxy\" or \"webPubSub\" may have no routes)"};
        return ConfigProblem{"/routes", "needs at least one route (for example \"$default\"); only an API with a \"proxy\" or \"webPubSub\" may have none"};
    }
    if (!doc.HasMember("routes")) return std::nullopt;
    for (const auto &m : doc["routes"].GetObject())
        if (auto problem = readRoute(std::string(m.name.GetString(), m.name.GetStringLength()), m.value, baseDir, cfg)) return problem;
    return std::nullopt;
}

}  // namespace

std::variant<ApiConfig, ConfigError> parseApiConfig(std::string_view text, const std::string &sourceName) {
    auto failed = [&](ConfigProblem &&p) { return ConfigError{sourceName, std::move(p.path), std::move(p.reason)}; };
    rapidjson::Document doc;
    if (auto problem = parseAndValidate(text, doc)) return failed(std::move(*problem));
    ApiConfig cfg;
    cfg.sourcePath = sourceName;
    auto slash = sourceName.rfind('/');
    std::string baseDir = slash == std::string::npos ? "." : sourceName.substr(0, slash == 0 ? 1 : slash);
    if (auto problem = readApiSettings(doc, cfg)) return failed(std::move(*problem));
    if (auto problem = readHandlers(doc, baseDir, cfg)) return failed(std::move(*problem));
    if (auto problem = readRoutes(doc, baseDir, cfg)) return failed(std::move(*problem));
    return cfg;
}

std::variant<ApiConfig, ConfigError> loadApiConfig(const std::string &path) {
    // A directory opens as an empty stream, which read as "The document is empty" (a routes.json replaced
    // by a directory, or --routes given the directory that holds it).
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        return ConfigError{path, "", "is a directory, not the route table: give the path of its routes.json file with --routes"};
    std::string error;
    std::optional<std::string> text = readConfigFile(path, "the route table", &error);
    if (!text) return ConfigError{path, "", error + " (give the path of routes.json with --routes)"};
    return parseApiConfig(*text, path);
}

}  // namespace wsgw
