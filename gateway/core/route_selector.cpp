#include "route_selector.h"

#include "json_body_scanner.h"

namespace wsgw {

namespace {

constexpr std::string_view kBodyPrefix = "request.body.";

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

bool RouteSelector::select(std::string_view body, bool isBinary, std::string &key, bool *bodyIsUtf8) const {
    key.clear();
    if (bodyIsUtf8) *bodyIsUtf8 = false;
    if (referenceCount_ == 0) {
        for (const auto &p : parts_) key += p.literal;
    } else {
        if (isBinary) return false;
        thread_local std::vector<JsonCapture> captures;
        if (captures.size() < referenceCount_) captures.resize(referenceCount_);
        for (size_t i = 0; i < referenceCount_; ++i) {
            captures[i].kind = JsonCapture::Kind::Missing;
            captures[i].text.clear();
        }
        // Every pass validates the same body the same way; more than 64 references take more passes.
        const std::vector<std::string> *paths[kJsonScanMaxPaths];
        size_t done = 0, count = 0;
        for (size_t i = 0; i < parts_.size(); ++i) {
            if (parts_[i].isReference) paths[count++] = &parts_[i].path;
            if (count == kJsonScanMaxPaths || (count > 0 && i + 1 == parts_.size())) {
                if (!scanJsonBody(body, paths, count, captures.data() + done)) return false;
                if (bodyIsUtf8) *bodyIsUtf8 = true;  // a complete scan read every byte of the body
                done += count;
                count = 0;
            }
        }
        if (singleReference_) {
            if (captures[0].kind != JsonCapture::Kind::Scalar) return false;
            key = captures[0].text;
        } else {
            size_t c = 0;
            for (const auto &p : parts_) {
                if (!p.isReference) key += p.literal;
                else if (captures[c++].kind == JsonCapture::Kind::Scalar) key += captures[c - 1].text;
            }
        }
    }
    // A body can never select $connect, $disconnect, $default or any other reserved key by name.
    return !key.empty() && key[0] != '$';
}

}  // namespace wsgw
