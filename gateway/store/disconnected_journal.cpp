// The journal of removals given up at shutdown: writing it durably, reading it at the next start.
#include "disconnected_journal.h"

#include "log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace wsgw {

void DisconnectedJournal::write(const std::vector<std::string> &ids) const {
    if (ids.empty()) return;
    std::string text;
    for (const auto &id : ids) text += id + '\n';
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    for (size_t off = 0; ok && off < text.size();) {
        ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) off += static_cast<size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    int savedErrno = errno;
    if (fd >= 0) ::close(fd);
    if (ok) {  // the new file's name must be durable too
        std::string dir = std::filesystem::path(path_).parent_path().string();
        int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }
    errno = savedErrno;
    if (ok)
        log::warn("connection table: the closed connections whose rows could not be deleted are journalled; the next start "
                  "deletes their rows without running their $disconnect again",
                  {log::Field("journal", path_), log::Field("connections", static_cast<uint64_t>(ids.size()))});
    else
        log::error("connection table: cannot write the journal of closed connections; the next start runs their $disconnect again",
                   {log::Field("journal", path_), log::Field("error", std::strerror(errno)),
                    log::Field("connections", static_cast<uint64_t>(ids.size()))});
}

bool DisconnectedJournal::read(std::unordered_set<std::string> &ids, std::string *error) const {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return true;
        if (error) *error = path_ + ": cannot read: " + std::strerror(errno);
        return false;
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    for (size_t at = 0; at < text.size();) {
        size_t nl = text.find('\n', at);
        std::string id = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        if (!id.empty()) ids.insert(std::move(id));
        at = nl == std::string::npos ? text.size() : nl + 1;
    }
    return true;
}

void DisconnectedJournal::remove() const { ::unlink(path_.c_str()); }

}  // namespace wsgw
