// One "Name:   N kB" line of /proc/<pid>/status in bytes (0 when absent): how the gateway and an isolated
// worker read a worker's memory against maxWorkerMemoryMb.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/types.h>

namespace wsgw {

// pid 0: this process.
inline size_t procStatusBytes(pid_t pid, const char *name) {
    char path[64];
    if (pid == 0) std::snprintf(path, sizeof path, "/proc/self/status");
    else std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
    std::FILE *f = std::fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t len = std::strlen(name), kb = 0;
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, name, len) == 0 && line[len] == ':') {
            kb = std::strtoull(line + len + 1, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return kb << 10;
}

}  // namespace wsgw
