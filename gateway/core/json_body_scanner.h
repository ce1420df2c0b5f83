// The JSON scanner behind route selection (route_selector.h): one pass over a message body that checks all of
// it as JSON (RFC 8259 grammar, read as RapidJSON reads it, strings validated as UTF-8) whose root is an
// object, and captures the values at up to 64 referenced paths. It owns the vector scan of string runs
// (SSE2, AVX2 when the CPU has it), escape and \u decoding, the number grammar and the last-member-wins rule
// for duplicate keys. Only keys on a referenced path are compared and only values at one are decoded and
// copied; no document is built and nothing but an escaped key is allocated.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace wsgw {

// Containers open at once, the root included; a deeper body is refused (route selection: $default).
constexpr size_t kJsonScanMaxDepth = 64;
// Referenced paths one pass follows (the bits of a mask).
constexpr size_t kJsonScanMaxPaths = 64;

// What the body holds at one referenced path.
struct JsonCapture {
    enum class Kind { Missing, Scalar, NotScalar } kind = Kind::Missing;
    std::string text;  // a string decoded, a number or true/false as written (Scalar only)
};

// Scans `body`, following paths[0..count) (1 <= count <= kJsonScanMaxPaths, each path one or more keys from
// the root object) and writing what lies at paths[i] to captures[i], which the caller resets to Missing.
// Returns false when the body is not one JSON object or nests deeper than kJsonScanMaxDepth; the captures
// are then meaningless. A true return also means the whole body is valid UTF-8. Thread-safe.
bool scanJsonBody(std::string_view body, const std::vector<std::string> *const *paths, size_t count,
                  JsonCapture *captures);

}  // namespace wsgw
