// The route selection expression (SPEC section 2): compiled once per route table, evaluated on the
// network thread for every message. Evaluation is one pass of a hand-written JSON scanner over the body:
// the whole body is checked to be JSON (RFC 8259 grammar) and an object, but only the keys on a referenced
// path are compared and only the values at a referenced path are decoded and copied; every other string
// is skipped with 16-byte vector compares. No document is built and nothing but the key is allocated.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

class RouteSelector {
public:
    // On error returns nullopt and sets *error to a one-line reason naming the offset.
    static std::optional<RouteSelector> compile(std::string_view expression, std::string *error);
    // True and `key` set when the message selects a key; false sends it to $default. Thread-safe.
    // A binary frame never selects by its body. A body that is scanned is checked in full, as JSON and as
    // UTF-8 (malformed UTF-8 in a string makes it not JSON); *bodyIsUtf8, when given, is set true when the
    // scan accepted the body, so the caller need not check the text message's UTF-8 again.
    bool select(std::string_view body, bool isBinary, std::string &key, bool *bodyIsUtf8 = nullptr) const;
    const std::string &expression() const { return expression_; }

    struct Part {
        bool isReference = false;
        std::string literal;             // literal text (isReference false)
        std::vector<std::string> path;   // dotted path into the body (isReference true)
    };
    // The compiled expression, in order (for tests and the fuzz target's reference implementation).
    const std::vector<Part> &parts() const { return parts_; }

private:
    std::string expression_;
    std::vector<Part> parts_;
    bool singleReference_ = false;  // `$request.body.PATH`: a missing or non-scalar value means $default
    size_t referenceCount_ = 0;
};

}  // namespace wsgw
