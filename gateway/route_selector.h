// The route selection expression (SPEC section 2): compiled once per route table, evaluated on the
// network thread for every message. Evaluation streams the body through a SAX parser and keeps only the
// values the expression names, so no document is built and nothing but the key is allocated.
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
    bool select(std::string_view body, bool isBinary, std::string &key) const;
    const std::string &expression() const { return expression_; }

    struct Part {
        bool isReference = false;
        std::string literal;             // literal text (isReference false)
        std::vector<std::string> path;   // dotted path into the body (isReference true)
    };

private:
    std::string expression_;
    std::vector<Part> parts_;
    bool singleReference_ = false;  // `$request.body.PATH`: a missing or non-scalar value means $default
    size_t referenceCount_ = 0;
};

}  // namespace wsgw
