// Fuzz target: message bodies through compiled selection expressions, and the input itself compiled as
// an expression. Nothing may crash, leak or hit undefined behaviour; results must be self-consistent.
//
// Differential: every result is compared with a reference evaluator built on RapidJSON's SAX reader (the
// implementation RouteSelector::select had before its hand-written scanner). They must agree on every
// body except where the reference was wrong about what JSON is: it stops reading at a NUL byte after the
// root value (so `{"a":1}\0junk` passed) and it refuses numbers whose exponent or digits exceed a double
// (`1e400` is valid JSON). A body with a NUL byte must go to $default; a body the reference refused with
// kParseErrorNumberTooBig is not compared. Both validate the UTF-8 of strings (the reference with
// kParseValidateEncodingFlag); a body the scanner accepts must be valid UTF-8 as a whole.
#include "route_selector.h"
#include "utf8.h"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using wsgw::RouteSelector;

struct RefCapture {
    enum class Kind { Missing, Scalar, NotScalar } kind = Kind::Missing;
    std::string text;
};

struct RefFrame {
    bool isObject = false;
    std::string key;
};

class RefHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RefHandler> {
public:
    RefHandler(const std::vector<RouteSelector::Part> &parts, std::vector<RefCapture> &captures)
        : parts_(parts), captures_(captures) {}
    bool rootIsObject = false;
    bool Null() { return scalarOrNot(nullptr, 0, false); }
    bool Bool(bool b) { return b ? scalarOrNot("true", 4, true) : scalarOrNot("false", 5, true); }
    bool RawNumber(const char *s, rapidjson::SizeType len, bool) { return scalarOrNot(s, len, true); }
    bool String(const char *s, rapidjson::SizeType len, bool) { return scalarOrNot(s, len, true); }
    bool StartObject() {
        if (stack_.empty()) rootIsObject = true;
        else mark(nullptr, 0, false);
        if (stack_.size() >= 64) return false;
        stack_.push_back(RefFrame{true, {}});
        return true;
    }
    bool Key(const char *s, rapidjson::SizeType len, bool) {
        stack_.back().key.assign(s, len);
        // A member replaces an earlier one of the same key whole (JSON.parse): captures below it are gone.
        size_t c = 0;
        for (const auto &part : parts_) {
            if (!part.isReference) continue;
            RefCapture &cap = captures_[c++];
            if (part.path.size() <= stack_.size()) continue;
            bool match = true;
            for (size_t i = 0; i < stack_.size() && match; ++i) match = stack_[i].isObject && stack_[i].key == part.path[i];
            if (match) cap = RefCapture{};
        }
        return true;
    }
    bool EndObject(rapidjson::SizeType) {
        stack_.pop_back();
        return true;
    }
    bool StartArray() {
        if (!stack_.empty()) mark(nullptr, 0, false);
        if (stack_.size() >= 64) return false;
        stack_.push_back(RefFrame{false, {}});
        return true;
    }
    bool EndArray(rapidjson::SizeType) {
        stack_.pop_back();
        return true;
    }

private:
    bool scalarOrNot(const char *s, size_t len, bool scalar) {
        if (!stack_.empty()) mark(s, len, scalar);
        return true;
    }
    void mark(const char *s, size_t len, bool scalar) {
        size_t c = 0;
        for (const auto &part : parts_) {
            if (!part.isReference) continue;
            RefCapture &cap = captures_[c++];
            if (part.path.size() != stack_.size()) continue;
            bool match = true;
            for (size_t i = 0; i < stack_.size() && match; ++i) match = stack_[i].isObject && stack_[i].key == part.path[i];
            if (!match) continue;
            cap.kind = scalar ? RefCapture::Kind::Scalar : RefCapture::Kind::NotScalar;
            cap.text = scalar ? std::string(s, len) : std::string();
        }
    }
    const std::vector<RouteSelector::Part> &parts_;
    std::vector<RefCapture> &captures_;
    std::vector<RefFrame> stack_;
};

bool referenceSelect(const RouteSelector &sel, std::string_view body, bool isBinary, std::string &key,
                     rapidjson::ParseErrorCode &error) {
    error = rapidjson::kParseErrorNone;
    key.clear();
    const auto &parts = sel.parts();
    size_t refs = 0;
    for (const auto &p : parts) refs += p.isReference;
    if (refs == 0) {
        for (const auto &p : parts) key += p.literal;
    } else {
        if (isBinary) return false;
        std::vector<RefCapture> captures(refs);
        RefHandler handler(parts, captures);
        rapidjson::MemoryStream stream(body.data(), body.size());
        rapidjson::Reader reader;
        constexpr unsigned kFlags =
            rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
        if (reader.Parse<kFlags>(stream, handler).IsError()) {
            error = reader.GetParseErrorCode();
            return false;
        }
        if (!handler.rootIsObject) return false;
        bool single = sel.expression()[0] == '$' && sel.expression().size() > 1 && sel.expression()[1] != '{';
        if (single) {
            if (captures[0].kind != RefCapture::Kind::Scalar) return false;
            key = captures[0].text;
        } else {
            size_t c = 0;
            for (const auto &p : parts) {
                if (!p.isReference) key += p.literal;
                else if (captures[c++].kind == RefCapture::Kind::Scalar) key += captures[c - 1].text;
            }
        }
    }
    return !key.empty() && key[0] != '$';
}

void check(const RouteSelector &sel, std::string_view body, bool binary) {
    std::string key, refKey;
    rapidjson::ParseErrorCode refError;
    bool bodyIsUtf8 = false;
    bool ok = sel.select(body, binary, key, &bodyIsUtf8);
    if (ok && (key.empty() || key[0] == '$')) std::abort();
    // The caller skips its own UTF-8 check when the scanner says the body is UTF-8: it must be right.
    if (bodyIsUtf8 && !wsgw::isValidUtf8(body.data(), body.size())) std::abort();
    bool refOk = referenceSelect(sel, body, binary, refKey, refError);
    bool usesBody = false;
    for (const auto &p : sel.parts()) usesBody = usesBody || p.isReference;
    usesBody = usesBody && !binary;
    if (usesBody && ok && std::memchr(body.data(), 0, body.size())) std::abort();  // a NUL byte is never JSON
    if (ok == refOk && (!ok || key == refKey)) return;
    if (usesBody && refError == rapidjson::kParseErrorNumberTooBig) return;
    if (usesBody && !ok && std::memchr(body.data(), 0, body.size())) return;
    std::abort();
}

std::vector<RouteSelector> selectors() {
    std::vector<std::string> exprs = {"$request.body.action",
                                      "$request.body.meta.type",
                                      "${request.body.service}/${request.body.action}",
                                      "static",
                                      "\\$x-${request.body.a}",
                                      "${request.body.a}-${request.body.a.b}-${request.body.a}",
                                      "$request.body.a.b.c",
                                      "$request.body.\xc3\xa9"};
    // More references than one pass over the body follows (64): the rest take a second pass.
    std::string many;
    const char *names[] = {"a", "b", "a.b", "action", "x.y.z"};
    for (int i = 0; i < 70; ++i) many += std::string("${request.body.") + names[i % 5] + "}:";
    exprs.push_back(many);
    std::vector<RouteSelector> out;
    for (const auto &e : exprs) {
        std::string err;
        auto sel = RouteSelector::compile(e, &err);
        if (!sel) std::abort();
        out.push_back(std::move(*sel));
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const std::vector<RouteSelector> kSelectors = selectors();
    std::string_view body(reinterpret_cast<const char *>(data), size);
    for (const auto &sel : kSelectors)
        for (bool binary : {false, true}) check(sel, body, binary);
    std::string error;
    if (auto sel = RouteSelector::compile(body, &error)) {
        check(*sel, R"({"action":"x","a":1,"b":{"c":"d","a":[1],"e":{"f":null}},"a\u0062":true,"\u00e9":"e"})", false);
    } else if (error.empty()) {
        std::abort();
    }
    return 0;
}
