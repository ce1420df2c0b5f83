#include "serverless_import.h"

#include "config.h"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>

namespace wsgw {

namespace {

constexpr long kApiGatewayMaxTimeoutMs = 29000;  // API Gateway's integration timeout: a longer function is cut there
constexpr int kMaxVariableDepth = 10;

struct ImportError {
    std::string message;
};

class Importer {
public:
    Importer(const std::string &file, const std::map<std::string, std::string> &env) : file_(file), env_(env) {}

    ServerlessImport run(const std::string &text) {
        YAML::Node functions = parseRoot(text);
        std::string expression = readProvider();
        rapidjson::Document out(rapidjson::kObjectType);
        auto &a = out.GetAllocator();
        out.AddMember("routeSelectionExpression", rapidjson::Value(expression.c_str(), a), a);
        out.AddMember("stage", rapidjson::Value(stage_.c_str(), a), a);
        rapidjson::Value handlers(rapidjson::kObjectType), routes(rapidjson::kObjectType);
        for (auto it = functions.begin(); it != functions.end(); ++it)
            importFunction(it->first.as<std::string>(), it->second, handlers, routes, a);
        if (routes.MemberCount() == 0)
            throw ImportError{file_ + ": no function has a websocket event, so there is no route to import"};
        out.AddMember("handlers", handlers, a);
        out.AddMember("routes", routes, a);

        rapidjson::StringBuffer buf;
        rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buf);
        writer.SetIndent(' ', 2);
        out.Accept(writer);
        result_.routesJson.assign(buf.GetString(), buf.GetSize());
        result_.routesJson += '\n';
        // What the gateway will say of it, said now: a reserved environment name, a memorySize out of bounds.
        auto checked = parseApiConfig(result_.routesJson, "routes.json");
        if (auto *err = std::get_if<ConfigError>(&checked))
            throw ImportError{file_ + ": the routes.json made from it would be refused: " + err->message()};
        return std::move(result_);
    }

private:
    using Allocator = rapidjson::Document::AllocatorType;

    // The YAML document, its provider (kept in provider_) and its functions mapping.
    YAML::Node parseRoot(const std::string &text) {
        try {
            root_ = YAML::Load(text);
        } catch (const YAML::ParserException &e) {
            throw ImportError{file_ + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                              ": not valid YAML: " + e.msg};
        }
        if (!root_.IsMap()) throw ImportError{file_ + ": expected a mapping with 'provider' and 'functions' (is this a serverless.yml?)"};
        provider_ = root_["provider"];
        if (provider_ && !provider_.IsMap()) fail(provider_, "'provider' must be a mapping");
        YAML::Node functions = root_["functions"];
        if (!functions) throw ImportError{file_ + ": no 'functions': nothing to import (a WebSocket API's functions have `events: - websocket: ...`)"};
        if (!functions.IsMap()) fail(functions, "'functions' must be a mapping of function names to functions");
        return functions;
    }

    // The stage (into stage_) and the route selection expression, the Framework's defaults unless given.
    std::string readProvider() {
        stage_ = "dev";
        if (provider_ && provider_["stage"]) {
            stage_ = text_(provider_["stage"], "provider.stage");
            if (stage_.empty() || stage_.size() > 128 ||
                !std::all_of(stage_.begin(), stage_.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }))
                fail(provider_["stage"], "provider.stage '" + stage_ + "' is not a stage name: 1 to 128 letters, digits, '_' and '-'");
        }
        std::string expression = "$request.body.action";
        if (provider_ && provider_["websocketsApiRouteSelectionExpression"])
            expression = text_(provider_["websocketsApiRouteSelectionExpression"], "provider.websocketsApiRouteSelectionExpression");
        return expression;
    }

    // One function: a lambda handler, and a route for each of its websocket events. A function without
    // websocket events is left out with a warning.
    void importFunction(const std::string &name, const YAML::Node &fn, rapidjson::Value &handlers, rapidjson::Value &routes, Allocator &a) {
        std::string at = "functions." + name;
        if (!fn.IsMap()) fail(fn, at + " must be a mapping (handler, events, ...)");
        std::vector<YAML::Node> websocketEvents;
        if (YAML::Node events = fn["events"]) {
            if (!events.IsSequence()) fail(events, at + ".events must be a list");
            for (const YAML::Node &ev : events)
                if (ev.IsMap() && ev["websocket"]) websocketEvents.push_back(ev["websocket"]);
        }
        if (websocketEvents.empty()) {
            result_.warnings.push_back(where(fn) + ": function '" + name + "' has no websocket event: left out");
            return;
        }
        rapidjson::Value handler(rapidjson::kObjectType);
        handler.AddMember("lambda", lambdaOf(fn, at, a), a);
        handlers.AddMember(rapidjson::Value(name.c_str(), a), handler, a);
        long timeoutMs = timeoutMsOf(fn, at);
        for (const YAML::Node &ws : websocketEvents) addRoute(name, at, ws, timeoutMs, routes, a);
    }

    // The routes.json "lambda" object of a function: runtime, handler, concurrency, memory, environment.
    rapidjson::Value lambdaOf(const YAML::Node &fn, const std::string &at, Allocator &a) {
        if (fn["image"] && !fn["handler"])
            fail(fn["image"], at + " is a container image: wsgw runs a function from its code; give `handler` (file.export)");
        if (!fn["handler"]) fail(fn, at + " has no 'handler' (file.export, for example handler.connect)");
        rapidjson::Value lambda(rapidjson::kObjectType);
        lambda.AddMember("runtime", rapidjson::Value(runtimeOf(fn, provider_, at).c_str(), a), a);
        lambda.AddMember("handler", rapidjson::Value(text_(fn["handler"], at + ".handler").c_str(), a), a);
        lambda.AddMember("directory", ".", a);
        if (YAML::Node rc = fn["reservedConcurrency"]) {
            long n = integer(rc, at + ".reservedConcurrency");
            if (n >= 1) lambda.AddMember("concurrency", static_cast<unsigned>(std::min(64L, n)), a);
        }
        YAML::Node memory = functionOrProvider(fn, provider_, "memorySize");
        if (memory.IsDefined()) lambda.AddMember("memoryMb", static_cast<uint64_t>(integer(memory, at + ".memorySize")), a);
        std::vector<std::pair<std::string, std::string>> environment;
        if (provider_) addEnvironment(provider_["environment"], "provider.environment", environment);
        addEnvironment(fn["environment"], at + ".environment", environment);
        if (!environment.empty()) {
            rapidjson::Value env(rapidjson::kObjectType);
            for (const auto &[k, v] : environment) env.AddMember(rapidjson::Value(k.c_str(), a), rapidjson::Value(v.c_str(), a), a);
            lambda.AddMember("environment", env, a);
        }
        return lambda;
    }

    // The function's (or provider's) timeout in ms, capped at API Gateway's 29 s with a warning; 0 if none.
    long timeoutMsOf(const YAML::Node &fn, const std::string &at) {
        YAML::Node timeout = functionOrProvider(fn, provider_, "timeout");
        if (!timeout.IsDefined()) return 0;
        long timeoutMs = integer(timeout, at + ".timeout") * 1000;
        if (timeoutMs > kApiGatewayMaxTimeoutMs) {
            result_.warnings.push_back(where(timeout) + ": " + at + ".timeout " + std::to_string(timeoutMs / 1000) +
                                       " s is over API Gateway's 29 s integration timeout: its routes wait 29 s");
            timeoutMs = kApiGatewayMaxTimeoutMs;
        }
        return timeoutMs;
    }

    // One websocket event of function `name`: its route, refused when declared twice or not a route key.
    void addRoute(const std::string &name, const std::string &at, const YAML::Node &ws, long timeoutMs, rapidjson::Value &routes,
                  Allocator &a) {
        std::string routeKey;
        bool twoWay = false;
        if (ws.IsScalar()) {
            routeKey = text_(ws, at + ".events.websocket");
        } else if (ws.IsMap()) {
            if (!ws["route"]) fail(ws, at + ": a websocket event needs 'route' (for example route: $connect)");
            routeKey = text_(ws["route"], at + ".events.websocket.route");
            if (YAML::Node rr = ws["routeResponseSelectionExpression"]) {
                std::string e = text_(rr, "routeResponseSelectionExpression");
                if (e != "$default")
                    fail(rr, "routeResponseSelectionExpression '" + e + "': API Gateway accepts only $default (the route is two-way)");
                twoWay = true;
            }
            if (ws["authorizer"])
                fail(ws["authorizer"], at + ": a Lambda authorizer is not run by wsgw; check the caller in the $connect function, "
                                            "or use routes.json's apiKey or jwt authorizer (docs/routes-json.md), and remove "
                                            "'authorizer' here to import");
        } else {
            fail(ws, at + ": a websocket event is a route key or a mapping with 'route'");
        }
        if (routeKey.empty()) fail(ws, at + ": the websocket route key is empty");
        if (routeKey[0] == '$' && routeKey != "$connect" && routeKey != "$disconnect" && routeKey != "$default")
            fail(ws, "route '" + routeKey + "': keys starting with '$' are $connect, $disconnect and $default only");
        if (auto seen = routeWhere_.find(routeKey); seen != routeWhere_.end())
            fail(ws, "route '" + routeKey + "' is declared twice (also at " + seen->second + "): one function per route");
        routeWhere_[routeKey] = where(ws);
        rapidjson::Value route(rapidjson::kObjectType);
        route.AddMember("handler", rapidjson::Value(name.c_str(), a), a);
        if (twoWay) route.AddMember("routeResponse", true, a);
        if (timeoutMs > 0) route.AddMember("timeoutMs", static_cast<uint64_t>(std::max(50L, timeoutMs)), a);
        routes.AddMember(rapidjson::Value(routeKey.c_str(), a), route, a);
    }

    // The function's setting, else the provider's; undefined when neither has it (a default-made
    // YAML::Node is a defined null, so "none" is a zombie node from a lookup that found nothing).
    static YAML::Node functionOrProvider(const YAML::Node &fn, const YAML::Node &provider, const char *key) {
        if (fn[key]) return fn[key];
        if (provider.IsDefined() && provider.IsMap() && provider[key]) return provider[key];
        return fn[key];
    }

    [[noreturn]] void fail(const YAML::Node &node, const std::string &what) const { throw ImportError{where(node) + ": " + what}; }

    std::string where(const YAML::Node &node) const {
        YAML::Mark m = node.Mark();
        if (m.line < 0) return file_;
        return file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    }

    long integer(const YAML::Node &node, const std::string &what) {
        std::string t = text_(node, what);
        try {
            size_t used = 0;
            long n = std::stol(t, &used);
            if (used == t.size()) return n;
        } catch (const std::exception &) {
        }
        fail(node, what + " '" + t + "' is not a whole number");
    }

    // A scalar's text with its variables resolved.
    std::string text_(const YAML::Node &node, const std::string &what, int depth = 0) {
        if (!node.IsScalar()) fail(node, what + " must be a single value (text or a number)");
        return resolve(node.Scalar(), node, what, depth);
    }

    std::string resolve(const std::string &value, const YAML::Node &node, const std::string &what, int depth) {
        if (depth > kMaxVariableDepth) fail(node, what + ": variables nest more than 10 deep (a cycle?)");
        std::string out;
        size_t pos = 0;
        while (pos < value.size()) {
            size_t start = value.find("${", pos);
            if (start == std::string::npos) {
                out.append(value, pos, std::string::npos);
                break;
            }
            out.append(value, pos, start - pos);
            size_t end = start + 2;
            int open = 1;
            for (; end < value.size() && open > 0; ++end) {
                if (value.compare(end, 2, "${") == 0) ++open;
                else if (value[end] == '}') --open;
            }
            if (open > 0) fail(node, what + ": '" + value + "' has a '${' without its '}'");
            std::string expr = value.substr(start + 2, end - start - 3);
            out += variable(expr, node, what, depth);
            pos = end;
        }
        return out;
    }

    static std::string trim(std::string s) {
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
        if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front()) s = s.substr(1, s.size() - 2);
        return s;
    }

    // ${source:name, default}
    std::string variable(const std::string &expr, const YAML::Node &node, const std::string &what, int depth) {
        std::string name = expr, fallback;
        bool hasFallback = false;
        if (size_t comma = expr.find(','); comma != std::string::npos) {
            name = expr.substr(0, comma);
            fallback = resolve(trim(expr.substr(comma + 1)), node, what, depth + 1);
            hasFallback = true;
        }
        name = trim(name);
        auto missing = [&](const std::string &why) -> std::string {
            if (hasFallback) return fallback;
            fail(node, what + ": ${" + expr + "}: " + why + " (give a default: ${" + name + ", 'value'})");
        };
        // No command line when importing: ${opt:stage, x} is x; without a default, the stage in force.
        if (name == "opt:stage") return hasFallback ? fallback : stage_;
        if (name == "sls:stage" || name == "self:provider.stage") return stage_;
        if (name.rfind("env:", 0) == 0) {
            auto it = env_.find(name.substr(4));
            return it != env_.end() ? it->second : missing("the environment variable " + name.substr(4) + " is not set");
        }
        if (name.rfind("self:", 0) == 0) {
            // Looked up through const nodes: yaml-cpp's non-const operator[] and operator= change the tree.
            YAML::Node at;
            at.reset(root_);
            std::string path = name.substr(5);
            size_t from = 0;
            while (from <= path.size()) {
                size_t dot = path.find('.', from);
                std::string key = path.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
                const YAML::Node &current = at;
                if (!current.IsMap() || !current[key]) return missing(path + " is not in the file");
                YAML::Node next = current[key];
                at.reset(next);
                if (dot == std::string::npos) break;
                from = dot + 1;
            }
            if (!at.IsScalar()) fail(node, what + ": ${" + expr + "} is not a single value");
            return resolve(at.Scalar(), at, what, depth + 1);
        }
        if (name.rfind("opt:", 0) == 0) return missing("command-line options are not known when importing");
        fail(node, what + ": ${" + expr + "}: only ${self:...}, ${env:NAME}, ${opt:stage} and ${sls:stage} are resolved; "
                          "write the value into serverless.yml or routes.json");
    }

    std::string runtimeOf(const YAML::Node &fn, const YAML::Node &provider, const std::string &at) {
        YAML::Node node = functionOrProvider(fn, provider, "runtime");
        if (!node.IsDefined()) return "nodejs";  // the Framework's default runtime
        std::string r = text_(node, at + ".runtime");
        if (r.rfind("nodejs", 0) == 0) return "nodejs";
        if (r.rfind("python", 0) == 0) return "python";
        fail(node, "runtime '" + r + "' of " + at + ": wsgw runs nodejs and python functions itself; for another language give the "
                                                     "handler a \"command\" (a Lambda Runtime API client) in routes.json (docs/lambda.md)");
    }

    void addEnvironment(const YAML::Node &env, const std::string &what, std::vector<std::pair<std::string, std::string>> &out) {
        if (!env) return;
        if (!env.IsMap()) fail(env, what + " must be a mapping of names to values");
        for (auto it = env.begin(); it != env.end(); ++it) {
            std::string name = it->first.as<std::string>();
            std::string value = text_(it->second, what + "." + name);
            auto same = std::find_if(out.begin(), out.end(), [&](const auto &p) { return p.first == name; });
            if (same != out.end()) same->second = value;  // the function's wins over the provider's
            else out.emplace_back(name, value);
        }
    }

    const std::string &file_;
    const std::map<std::string, std::string> &env_;
    YAML::Node root_, provider_;
    std::string stage_;
    ServerlessImport result_;
    std::map<std::string, std::string> routeWhere_;  // route key -> where it was declared, for duplicates
};

}  // namespace

std::variant<ServerlessImport, std::string> importServerlessYaml(const std::string &yamlText, const std::string &fileName,
                                                                 const std::map<std::string, std::string> &environment) {
    try {
        return Importer(fileName, environment).run(yamlText);
    } catch (const ImportError &e) {
        return e.message;
    } catch (const YAML::Exception &e) {
        return fileName + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) + ": " + e.msg;
    }
}

}  // namespace wsgw
