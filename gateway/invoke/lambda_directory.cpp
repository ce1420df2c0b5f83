// Owns: a lambda function directory's fingerprint and watched directories (lambda_directory.h).
#include "lambda_directory.h"

#include "digest.h"

#include <algorithm>
#include <dirent.h>
#include <string_view>
#include <sys/stat.h>

namespace wsgw {

namespace {

constexpr size_t kMaxFingerprintEntries = 100000;
constexpr size_t kMaxWatchedDirectories = 1000;

// Depth-first walk of `dir`: calls onEntry(relative path, stat) for every entry, descends into directories
// `descend` accepts; stops after `limit` entries. Symbolic links are not followed (no cycles).
template <typename OnEntry, typename Descend>
void walkFunctionDirectory(const std::string &root, const std::string &relative, size_t &budget, OnEntry &&onEntry,
                           Descend &&descend) {
    std::string full = relative.empty() ? root : root + "/" + relative;
    DIR *d = opendir(full.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent *e = readdir(d)) {
        std::string_view name = e->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());  // the same tree gives the same digest
    for (const std::string &name : names) {
        if (budget == 0) return;
        --budget;
        std::string rel = relative.empty() ? name : relative + "/" + name;
        struct stat st{};
        if (lstat((root + "/" + rel).c_str(), &st) != 0) continue;
        onEntry(rel, st);
        if (S_ISDIR(st.st_mode) && descend(name)) walkFunctionDirectory(root, rel, budget, onEntry, descend);
    }
}

}  // namespace

std::string lambdaDirectoryFingerprint(const std::string &directory) {
    std::string listing;
    size_t budget = kMaxFingerprintEntries;
    walkFunctionDirectory(directory, "", budget, [&](const std::string &rel, const struct stat &st) {
        listing += rel;
        listing += '\0';
        listing += std::to_string(st.st_mode) + ':' + std::to_string(st.st_size) + ':' + std::to_string(st.st_mtim.tv_sec) + '.' +
                   std::to_string(st.st_mtim.tv_nsec) + ':' + std::to_string(st.st_ino) + '\n';
    }, [](const std::string &) { return true; });
    return sha256Hex(listing);
}

std::vector<std::string> lambdaWatchedDirectories(const std::string &directory) {
    std::vector<std::string> dirs{directory};
    size_t budget = kMaxFingerprintEntries;
    walkFunctionDirectory(directory, "", budget, [&](const std::string &rel, const struct stat &st) {
        if (S_ISDIR(st.st_mode) && dirs.size() < kMaxWatchedDirectories && rel.find("node_modules") == std::string::npos &&
            rel[0] != '.' && rel.find("/.") == std::string::npos)
            dirs.push_back(directory + "/" + rel);
    }, [](const std::string &name) { return name != "node_modules" && name[0] != '.'; });
    return dirs;
}

}  // namespace wsgw
