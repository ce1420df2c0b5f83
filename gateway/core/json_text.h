// Small RapidJSON helpers every layer needs: a value as compact JSON text, and a member looked up by
// name without the end-iterator dance. Kept here so no file writes its own copy.
#pragma once

#include <rapidjson/document.h>

#include <string>

namespace wsgw {

// `v` as compact JSON (no whitespace), the form event fields, logs and error messages carry.
std::string compactJson(const rapidjson::Value &v);

// The member `name` of object `obj`, or nullptr when it has none. `obj` must be an object.
const rapidjson::Value *findMember(const rapidjson::Value &obj, const char *name);

}  // namespace wsgw
