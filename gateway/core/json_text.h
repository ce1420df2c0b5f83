// Small RapidJSON helpers every layer needs: a value as compact JSON text, a member looked up by name
// without the end-iterator dance, and the nesting bound checked before any JSON from outside is parsed.
// Kept here so no file writes its own copy.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>

namespace wsgw {

// How deep JSON from outside (routes.json, credentials, a function's result, a Web PubSub client's frame)
// may nest. RapidJSON parses, copies and writes values recursively: a file or frame of 100,000 '['s (a
// few hundred KB, or 1 KB compressed) overflowed the stack of the thread that parsed it and killed the
// gateway. 512 levels are far beyond what any API definition or message needs.
constexpr int kMaxJsonNesting = 512;

// Whether JSON text nests at most `maxDepth` arrays and objects deep (brackets outside strings: exact for
// valid JSON, and for invalid JSON no deeper than the parser would get before its error).
bool jsonDepthWithin(std::string_view text, int maxDepth = kMaxJsonNesting);

// `v` as compact JSON (no whitespace), the form event fields, logs and error messages carry.
std::string compactJson(const rapidjson::Value &v);

// The member `name` of object `obj`, or nullptr when it has none. `obj` must be an object.
const rapidjson::Value *findMember(const rapidjson::Value &obj, const char *name);

}  // namespace wsgw
