#include "config_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace wsgw {

namespace {

const char *kindOf(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

}  // namespace

std::optional<std::string> readConfigFile(const std::string &path, const char *what, std::string *error, size_t maxBytes) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait until some process opens it for writing.
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        *error = std::string("cannot read ") + what + ": " + std::strerror(errno);
        return std::nullopt;
    }
    struct stat st{};
    if (fstat(fd, &st) != 0) {
        *error = std::string("cannot read ") + what + ": " + std::strerror(errno);
        close(fd);
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        *error = std::string("is ") + kindOf(st.st_mode) + ", not a regular file (" + what + " is read from a regular file)";
        close(fd);
        return std::nullopt;
    }
    auto tooLarge = [&] {
        *error = std::string("is larger than ") + std::to_string(maxBytes / (1024 * 1024)) + " MiB, the most read for " + what +
                 ": is it the right file?";
    };
    if (static_cast<unsigned long long>(st.st_size) > maxBytes) {
        tooLarge();
        close(fd);
        return std::nullopt;
    }
    // Read to the end rather than trusting st_size: the file may be growing while it is read.
    std::string bytes;
    bytes.resize(static_cast<size_t>(st.st_size) + 1);
    size_t used = 0;
    for (;;) {
        if (used == bytes.size()) {
            if (used > maxBytes) break;
            bytes.resize(std::min(bytes.size() * 2 + 4096, maxBytes + 1));
        }
        ssize_t n = read(fd, bytes.data() + used, bytes.size() - used);
        if (n > 0) {
            used += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *error = std::string("cannot read ") + what + ": " + std::strerror(errno);
            close(fd);
            return std::nullopt;
        }
        break;  // end of file
    }
    close(fd);
    if (used > maxBytes) {
        tooLarge();
        return std::nullopt;
    }
    bytes.resize(used);
    return bytes;
}

}  // namespace wsgw
