// Owns: hot reload's view of a lambda function's directory (docs/lambda.md): a fingerprint of its files,
// part of the handler's identity (when it changes, the reload starts new processes and the old ones finish
// what they run), and the directories to watch for changes.
#pragma once

#include <string>
#include <vector>

namespace wsgw {

// A digest of the names, sizes and modification times of the files under a function's directory
// (node_modules and dot-directories too, at most 100,000 entries).
std::string lambdaDirectoryFingerprint(const std::string &directory);
// The directories to watch (the directory and its subdirectories, without node_modules and dot-directories,
// whose churn would reload on every npm install; at most 1,000).
std::vector<std::string> lambdaWatchedDirectories(const std::string &directory);

}  // namespace wsgw
