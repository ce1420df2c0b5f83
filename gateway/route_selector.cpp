#include "route_selector.h"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace wsgw {

namespace {

constexpr std::string_view kBodyPrefix = "request.body.";
constexpr size_t kMaxDepth = 64;

bool splitPath(std::string_view text, std::vector<std::string> &out) {
    out.clear();
    size_t start = 0;
    for (;;) {
        size_t dot = text.find('.', start);
        std::string_view seg = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (seg.empty()) return false;
        out.emplace_back(seg);
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

// What the body holds at one referenced path.
struct Capture {
    enum class Kind { Missing, Scalar, NotScalar } kind = Kind::Missing;
    std::string text;
};

struct Frame {
    bool isObject = false;
    std::string key;
};

// Follows the path of keys while RapidJSON streams the body, capturing values at referenced paths.
class CaptureHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, CaptureHandler> {
public:
    CaptureHandler(const std::vector<RouteSelector::Part> &parts, std::vector<Capture> &captures)
        : parts_(parts), captures_(captures) {}

    bool rootIsObject = false;

    bool Null() { return scalarOrNot(nullptr, 0, false); }
    bool Bool(bool b) { return b ? scalarOrNot("true", 4, true) : scalarOrNot("false", 5, true); }
    bool RawNumber(const char *s, rapidjson::SizeType len, bool) { return scalarOrNot(s, len, true); }
    bool String(const char *s, rapidjson::SizeType len, bool) { return scalarOrNot(s, len, true); }
    bool StartObject() {
        if (stack_.empty()) rootIsObject = true;
        else mark(nullptr, 0, false);
        if (stack_.size() >= kMaxDepth) return false;
        stack_.push_back(Frame{true, {}});
        return true;
    }
    bool Key(const char *s, rapidjson::SizeType len, bool) {
        stack_.back().key.assign(s, len);
        return true;
    }
    bool EndObject(rapidjson::SizeType) {
        stack_.pop_back();
        return true;
    }
    bool StartArray() {
        if (!stack_.empty()) mark(nullptr, 0, false);
        if (stack_.size() >= kMaxDepth) return false;
        stack_.push_back(Frame{false, {}});
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

    // A later duplicate key overwrites an earlier capture: the last one wins, as in JSON.parse.
    void mark(const char *s, size_t len, bool scalar) {
        size_t c = 0;
        for (const auto &part : parts_) {
            if (!part.isReference) continue;
            Capture &cap = captures_[c++];
            if (part.path.size() != stack_.size()) continue;
            bool match = true;
            for (size_t i = 0; i < stack_.size() && match; ++i) match = stack_[i].isObject && stack_[i].key == part.path[i];
            if (!match) continue;
            if (scalar) {
                cap.kind = Capture::Kind::Scalar;
                cap.text.assign(s, len);
            } else {
                cap.kind = Capture::Kind::NotScalar;
                cap.text.clear();
            }
        }
    }

    const std::vector<RouteSelector::Part> &parts_;
    std::vector<Capture> &captures_;
    std::vector<Frame> stack_;
};

}  // namespace

std::optional<RouteSelector> RouteSelector::compile(std::string_view expr, std::string *error) {
    auto fail = [&](const std::string &why) -> std::optional<RouteSelector> {
        if (error) *error = why;
        return std::nullopt;
    };
    RouteSelector sel;
    sel.expression_ = std::string(expr);
    if (expr.empty()) return fail("the expression is empty");

    // The whole expression is one reference: $request.body.PATH
    if (expr.size() > 1 && expr[0] == '$' && expr[1] != '{' && expr.substr(1, kBodyPrefix.size()) == kBodyPrefix &&
        expr.find_first_of("${}\\", 1) == std::string_view::npos) {
        Part p;
        p.isReference = true;
        if (!splitPath(expr.substr(1 + kBodyPrefix.size()), p.path))
            return fail("empty path segment in '" + std::string(expr) + "' at offset " + std::to_string(1 + kBodyPrefix.size()));
        sel.parts_.push_back(std::move(p));
        sel.singleReference_ = true;
        sel.referenceCount_ = 1;
        return sel;
    }

    std::string literal;
    auto flushLiteral = [&] {
        if (literal.empty()) return;
        Part p;
        p.literal = std::move(literal);
        literal.clear();
        sel.parts_.push_back(std::move(p));
    };
    for (size_t i = 0; i < expr.size();) {
        char c = expr[i];
        if (c == '\\' && i + 1 < expr.size() && expr[i + 1] == '$') {
            literal += '$';
            i += 2;
            continue;
        }
        if (c != '$') {
            literal += c;
            ++i;
            continue;
        }
        if (i + 1 >= expr.size() || expr[i + 1] != '{')
            return fail("'$' at offset " + std::to_string(i) +
                        " starts no reference: use $request.body.PATH for the whole expression, ${request.body.PATH} inside text, or \\$ for a literal dollar");
        size_t close = expr.find('}', i + 2);
        if (close == std::string_view::npos) return fail("unterminated '${' at offset " + std::to_string(i));
        std::string_view inner = expr.substr(i + 2, close - i - 2);
        if (inner.substr(0, kBodyPrefix.size()) != kBodyPrefix)
            return fail("'${" + std::string(inner) + "}' at offset " + std::to_string(i) +
                        " is not a ${request.body.PATH} reference (only the message body can select a route)");
        Part p;
        p.isReference = true;
        if (!splitPath(inner.substr(kBodyPrefix.size()), p.path))
            return fail("empty path segment in the reference at offset " + std::to_string(i));
        flushLiteral();
        sel.parts_.push_back(std::move(p));
        ++sel.referenceCount_;
        i = close + 1;
    }
    flushLiteral();
    return sel;
}

bool RouteSelector::select(std::string_view body, bool isBinary, std::string &key) const {
    key.clear();
    if (referenceCount_ == 0) {
        for (const auto &p : parts_) key += p.literal;
    } else {
        if (isBinary) return false;
        thread_local std::vector<Capture> captures;
        captures.assign(referenceCount_, Capture{});
        CaptureHandler handler(parts_, captures);
        rapidjson::MemoryStream stream(body.data(), body.size());
        rapidjson::Reader reader;
        constexpr unsigned kFlags = rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseIterativeFlag;
        if (reader.Parse<kFlags>(stream, handler).IsError() || !handler.rootIsObject) return false;
        if (singleReference_) {
            if (captures[0].kind != Capture::Kind::Scalar) return false;
            key = captures[0].text;
        } else {
            size_t c = 0;
            for (const auto &p : parts_) {
                if (!p.isReference) key += p.literal;
                else if (captures[c++].kind == Capture::Kind::Scalar) key += captures[c - 1].text;
            }
        }
    }
    // A body can never select $connect, $disconnect, $default or any other reserved key by name.
    return !key.empty() && key[0] != '$';
}

}  // namespace wsgw
