// The journal of removals given up at shutdown (`<db>.disconnected`): IDs of connections whose $disconnect
// ran and whose row is still in the table, one ID a line, fsynced before the gateway exits. The next start
// reads it (their rows are deleted without running $disconnect again) and removes it once that is committed.
#pragma once

#include <string>
#include <unordered_set>
#include <vector>

namespace wsgw {

class DisconnectedJournal {
public:
    explicit DisconnectedJournal(const std::string &dbPath) : path_(dbPath + ".disconnected") {}
    const std::string &path() const { return path_; }
    // Appends the IDs and makes them durable (file and directory entry); says in the log what it did.
    void write(const std::vector<std::string> &ids) const;
    // The IDs journalled at the last stop; false with *error when the journal exists but cannot be read.
    bool read(std::unordered_set<std::string> &ids, std::string *error) const;
    // Once their rows are deleted.
    void remove() const;

private:
    std::string path_;
};

}  // namespace wsgw
