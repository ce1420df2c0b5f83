// The journal of removals not yet committed (`<db>.disconnected` and `<db>.disconnected-1`): the IDs of
// connections whose $disconnect has run (or is owed none: an upgrade refused after its row was written),
// appended before their row's deletion is queued. A kill -9 between a $disconnect and the commit of its
// row's deletion (the store commits in batches, a few milliseconds apart, and not at all while another
// process holds the table) then leaves the ID here, and the next start deletes the row without running
// $disconnect again. Appends are plain write()s into the page cache (they survive the process, not the
// machine); the store fsyncs the journal only when it gives its writes up at a stop.
//
// Two segments so that the journal stays small: appends go to the current one; once it holds
// kSegmentBytes, the next time the store thread takes its queue it is sealed (from then on appends go to
// the other, which is empty by then) and emptied once that batch has committed, since every ID in it had
// its removal queued before the take. Sealing per batch would keep the files smaller, but emptying a file
// costs a system call or two (creating and deleting one, about 35 us), a batch every few milliseconds
// under connect/close churn; an ID left in the journal after its row is gone costs the next start one
// DELETE of nothing. Not thread-safe by itself: the store calls append() and seal() under the lock of its
// queue, so an ID and its removal are queued together, and the rest from its own thread.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace wsgw {

class RemovalJournal {
public:
    explicit RemovalJournal(const std::string &dbPath);
    ~RemovalJournal();
    RemovalJournal(const RemovalJournal &) = delete;
    RemovalJournal &operator=(const RemovalJournal &) = delete;

    // For log lines: the first segment's path (the second is the same with "-1").
    const std::string &path() const { return paths_[0]; }

    // At start: the IDs journalled by the last run (both segments); false with *error when a segment exists
    // but cannot be read. No segment is deleted before this has succeeded once (adopt()): their rows'
    // deletions must be queued first.
    bool read(std::unordered_set<std::string> &ids, std::string *error) const;
    // After read() succeeded and the removals of its IDs are queued: from now on sealed segments are deleted.
    void adopt();

    // Appends one ID to the current segment (a failure is logged, at most once every 10 s: that connection's
    // $disconnect would run again after a kill -9).
    void append(std::string_view id);

    static constexpr size_t kSegmentBytes = 64 * 1024;  // about 2,700 IDs

    // When the store thread takes its queue: the segments that the batch's commit will make redundant
    // (a bit per segment; 0 before adopt()).
    unsigned seal();
    // After that commit: empties them (file system calls; no append touches a sealed segment) ...
    void emptySealed(unsigned segments);
    // ... and then, under the queue's lock, marks them empty.
    void markEmpty(unsigned segments);
    // At a stop whose last commit succeeded: deletes both segments' files (nothing in them is needed once
    // adopted; before that they hold the last run's IDs, and stay).
    void removeFiles();

    // At a stop that gives its writes up: appends these IDs (the removals queued without a journal entry),
    // then makes both segments durable (file and directory entry); says in the log what it did.
    void makeDurable(const std::vector<std::string> &ids, size_t removals);

private:
    bool appendText(int segment, std::string_view text);

    std::array<std::string, 2> paths_;
    std::array<int, 2> fds_{-1, -1};
    std::array<size_t, 2> bytes_{0, 0};  // in each segment (adopted ones: at least 1 while they hold the last run's)
    std::array<bool, 2> sealed_{false, false};
    int current_ = 0;
    bool adopted_ = false;
    long long lastFailureLogMs_ = 0;
};

}  // namespace wsgw
