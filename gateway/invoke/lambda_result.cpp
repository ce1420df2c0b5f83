#include "lambda_result.h"

#include <algorithm>

#include "base64.h"
#include "json_text.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <cstdlib>

namespace wsgw {

namespace {

LambdaResult failed(std::string problem) {
    LambdaResult r;
    r.ok = false;
    r.problem = std::move(problem);
    return r;
}

std::string cut(std::string_view s, size_t max = 300) {
    return std::string(s.substr(0, max)) + (s.size() > max ? "..." : "");
}

}  // namespace

LambdaResult mapLambdaResult(std::string_view payload) {
    if (!jsonDepthWithin(payload))
        return failed("the function's result nests arrays and objects deeper than " + std::to_string(kMaxJsonNesting) + " levels");
    rapidjson::Document doc;
    doc.Parse(payload.data(), payload.size());
    if (doc.HasParseError()) return failed("the function's result is not JSON: " + cut(payload));
    LambdaResult r;
    if (doc.IsNull()) return r;  // undefined / None: nothing is sent
    if (doc.IsString()) {
        r.hasBody = true;
        r.body.assign(doc.GetString(), doc.GetStringLength());
        return r;
    }
    // AWS reads a result as a proxy response when it has either of these; anything else is the body.
    if (!doc.IsObject() || (!doc.HasMember("statusCode") && !doc.HasMember("body"))) {
        r.hasBody = true;
        r.body = compactJson(doc);
        return r;
    }
    if (doc.HasMember("statusCode")) {
        const auto &s = doc["statusCode"];
        if (s.IsInt()) {
            r.status = s.GetInt();
        } else if (s.IsString() && s.GetStringLength() == 3 && std::all_of(s.GetString(), s.GetString() + 3, [](char c) {
                       return std::isdigit(static_cast<unsigned char>(c)) != 0;
                   })) {
            r.status = std::atoi(s.GetString());  // AWS accepts "403" as well as 403
        } else {
            return failed("the function's statusCode is not an integer: " + cut(compactJson(s)));
        }
        if (r.status < 100 || r.status > 599) return failed("the function's statusCode " + std::to_string(r.status) + " is not an HTTP status");
    }
    bool base64 = doc.HasMember("isBase64Encoded") && doc["isBase64Encoded"].IsTrue();
    if (doc.HasMember("body") && !doc["body"].IsNull()) {
        const auto &b = doc["body"];
        r.hasBody = true;
        if (!b.IsString()) {
            r.body = compactJson(b);  // AWS wants a string; an object is sent as its JSON text rather than lost
        } else if (base64) {
            if (!decodeBase64(std::string_view(b.GetString(), b.GetStringLength()), r.body, false, true, true, false))
                return failed("the function's body is marked isBase64Encoded but is not base64");
            r.binary = true;
        } else {
            r.body.assign(b.GetString(), b.GetStringLength());
        }
    }
    return r;
}

LambdaError parseLambdaError(std::string_view payload, std::string_view typeHeader) {
    LambdaError e;
    rapidjson::Document doc;
    if (jsonDepthWithin(payload)) doc.Parse(payload.data(), payload.size());
    if (!doc.HasParseError() && doc.IsObject()) {
        if (doc.HasMember("errorType") && doc["errorType"].IsString()) e.type = doc["errorType"].GetString();
        if (doc.HasMember("errorMessage") && doc["errorMessage"].IsString()) e.message = cut(doc["errorMessage"].GetString(), 2000);
    } else {
        e.message = cut(payload, 2000);
    }
    if (e.type.empty()) e.type = typeHeader.empty() ? "Unhandled" : std::string(typeHeader);
    return e;
}

}  // namespace wsgw
