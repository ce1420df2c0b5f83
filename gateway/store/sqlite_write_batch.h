// The writes the SQLite store's thread commits in one transaction: inserts and removes in the order they
// were queued, and lastActiveAt touches. A connection that opened and closed within one batch costs the
// table nothing (openedAndClosed), and a batch kept across failed commits drops such pairs
// (dropCancelledPairs) so that churn during a long failure does not pile up in memory.
#pragma once

#include "connection_store.h"
#include "touch_queue.h"

#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <variant>
#include <vector>

namespace wsgw {

struct SqliteInsertOp {
    ConnectionRow row;
    std::function<void(bool)> committed;  // insertDurable's; such an insert never cancels against its remove
};
struct SqliteRemoveOp {
    std::string id;
    bool journalled = false;  // removeClosed's: its ID is in the removal journal already
};
using SqliteOp = std::variant<SqliteInsertOp, SqliteRemoveOp>;

struct SqliteWriteBatch {
    std::vector<SqliteOp> ops;
    TouchQueue touches;  // coalesced (one per connection, sorted) before each commit attempt
    bool empty() const { return ops.empty() && touches.empty(); }
    size_t size() const { return ops.size() + touches.size(); }
};

// Connections that opened and closed within one batch: their INSERT and DELETE cancel out (an ID is
// never reused), so neither runs, nor their touches. Short-lived connections then cost the table nothing.
// A durable insert is written even so: its caller waits for exactly that commit. Views into `ops`.
std::unordered_set<std::string_view> openedAndClosed(const std::vector<SqliteOp> &ops);

// While commits fail the batch keeps everything that arrives meanwhile. A connection that opened and
// closed in it (its plain INSERT and its DELETE) would be skipped by the commit anyway: drop the pair now,
// so connect/close churn during a long failure (a full disk) does not pile rows up in memory.
void dropCancelledPairs(SqliteWriteBatch &batch);

}  // namespace wsgw
