// The journal of removals not yet committed: appending to its segments, sealing and emptying them as
// commits cover them, reading them at the next start, and making them durable at a stop that gives up.
#include "removal_journal.h"

#include "log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace wsgw {

namespace {

long long steadyMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool writeAll(int fd, std::string_view text) {
    for (size_t off = 0; off < text.size();) {
        ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

// Reads one segment's IDs into `ids`; a missing segment has none.
bool readSegment(const std::string &path, std::unordered_set<std::string> &ids, std::string *error) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return true;
        if (error) *error = path + ": cannot read: " + std::strerror(errno);
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
        // A line cut short by a crash in the middle of an append is no ID of ours: harmless to look up.
        std::string id = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        if (!id.empty()) ids.insert(std::move(id));
        at = nl == std::string::npos ? text.size() : nl + 1;
    }
    return true;
}

}  // namespace

RemovalJournal::RemovalJournal(const std::string &dbPath)
    : paths_{dbPath + ".disconnected", dbPath + ".disconnected-1"} {}

RemovalJournal::~RemovalJournal() {
    for (int fd : fds_)
        if (fd >= 0) ::close(fd);
}

bool RemovalJournal::read(std::unordered_set<std::string> &ids, std::string *error) const {
    for (const auto &p : paths_)
        if (!readSegment(p, ids, error)) return false;
    return true;
}

void RemovalJournal::adopt() {
    if (adopted_) return;
    adopted_ = true;
    // Whatever the last run left is sealed at the next take, once the removals read from it are queued.
    for (int i = 0; i < 2; ++i) {
        struct stat st {};
        if (::stat(paths_[i].c_str(), &st) == 0 && st.st_size > 0) bytes_[i] = std::max(bytes_[i], static_cast<size_t>(st.st_size));
    }
    // Appends go to the empty one if there is one, so the last run's IDs are emptied at the first commit.
    if (bytes_[current_] > 0 && bytes_[1 - current_] == 0) current_ = 1 - current_;
}

bool RemovalJournal::appendText(int segment, std::string_view text) {
    if (fds_[segment] < 0) fds_[segment] = ::open(paths_[segment].c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fds_[segment] < 0) return false;
    bytes_[segment] += text.size();
    return writeAll(fds_[segment], text);
}

void RemovalJournal::append(std::string_view id) {
    char line[256];
    if (id.size() >= sizeof line) return;  // no connection ID is that long
    std::memcpy(line, id.data(), id.size());
    line[id.size()] = '\n';
    if (appendText(current_, std::string_view(line, id.size() + 1))) return;
    long long now = steadyMs();
    if (lastFailureLogMs_ != 0 && now - lastFailureLogMs_ < 10000) return;
    lastFailureLogMs_ = now;
    log::error("connection table: cannot journal a closed connection; after a kill -9 before its row is deleted, the next "
               "start would run its $disconnect again",
               {log::Field("journal", paths_[current_]), log::Field("error", std::strerror(errno))});
}

unsigned RemovalJournal::seal() {
    if (!adopted_) return 0;
    int other = 1 - current_;
    if (bytes_[other] > 0) sealed_[other] = true;  // left by the last run, or sealed at an earlier take
    else if (bytes_[current_] >= kSegmentBytes) {
        sealed_[current_] = true;
        current_ = other;
    }
    return (sealed_[0] ? 1u : 0u) | (sealed_[1] ? 2u : 0u);
}

void RemovalJournal::emptySealed(unsigned segments) {
    for (int i = 0; i < 2; ++i) {
        if (!(segments & (1u << i))) continue;
        // Appends reopen it: O_APPEND writes at the end, wherever that is.
        if (fds_[i] < 0 || ::ftruncate(fds_[i], 0) != 0) ::truncate(paths_[i].c_str(), 0);
    }
}

void RemovalJournal::markEmpty(unsigned segments) {
    for (int i = 0; i < 2; ++i)
        if (segments & (1u << i)) {
            bytes_[i] = 0;
            sealed_[i] = false;
        }
}

void RemovalJournal::removeFiles() {
    if (!adopted_) return;  // the last run's IDs are not read yet (a stop during start-up)
    for (int i = 0; i < 2; ++i) {
        if (fds_[i] >= 0) ::close(fds_[i]);
        fds_[i] = -1;
        ::unlink(paths_[i].c_str());
        bytes_[i] = 0;
        sealed_[i] = false;
    }
}

void RemovalJournal::makeDurable(const std::vector<std::string> &ids, size_t removals) {
    std::string text;
    for (const auto &id : ids) text += id + '\n';
    bool ok = text.empty() || appendText(current_, text);
    for (int i = 0; ok && i < 2; ++i)
        if (fds_[i] >= 0) ok = ::fsync(fds_[i]) == 0;
    int savedErrno = errno;
    if (ok) {  // a new file's name must be durable too
        std::string dir = std::filesystem::path(paths_[0]).parent_path().string();
        int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }
    if (removals == 0) return;
    if (ok)
        log::warn("connection table: the closed connections whose rows could not be deleted are journalled; the next start "
                  "deletes their rows without running their $disconnect again",
                  {log::Field("journal", paths_[0]), log::Field("connections", static_cast<uint64_t>(removals))});
    else
        log::error("connection table: cannot write the journal of closed connections; the next start runs their $disconnect again",
                   {log::Field("journal", paths_[0]), log::Field("error", std::strerror(savedErrno)),
                    log::Field("connections", static_cast<uint64_t>(removals))});
}

}  // namespace wsgw
