// The route selection expression (docs/routes-json.md, "Route selection"): compiled once per route table,
// evaluated on the network thread for every message. This file owns the expression: its grammar
// ($request.body.PATH, or text with ${request.body.PATH} parts and \$), compile errors, how the parts join into
// a key, and which keys a body may never select. Reading the body is json_body_scanner.h's: one pass that
// checks the whole body as JSON and copies only the values at the referenced paths.
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
