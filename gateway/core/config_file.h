// Owns: reading an operator's file (routes.json, an API key file, the management credentials) whole into
// memory, safely. The path may name anything: a FIFO (whose open would wait for a writer for ever), a
// device such as /dev/zero (endless), a directory, or a file far larger than any real configuration. Only
// a regular file within the size limit is read; anything else is refused with a message naming the file,
// what it is, and what to do.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace wsgw {

// The largest configuration file read: a routes.json with every route, schema and inline API key of a big
// API is well under a megabyte.
inline constexpr size_t kMaxConfigFileBytes = 16 * 1024 * 1024;

// The file's bytes, or nullopt with *error set to the reason, e.g. "is a FIFO, not a regular file".
// `what` names the file's role in that message ("the route table").
std::optional<std::string> readConfigFile(const std::string &path, const char *what, std::string *error,
                                          size_t maxBytes = kMaxConfigFileBytes);

}  // namespace wsgw
