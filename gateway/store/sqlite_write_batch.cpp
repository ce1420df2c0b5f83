// Cancelling a connection's INSERT against its DELETE within one batch of the SQLite store's writes.
#include "sqlite_write_batch.h"

namespace wsgw {

std::unordered_set<std::string_view> openedAndClosed(const std::vector<SqliteOp> &ops) {
    std::unordered_set<std::string_view> inserted, both;
    for (const SqliteOp &op : ops) {
        if (const auto *ins = std::get_if<SqliteInsertOp>(&op)) {
            if (!ins->committed) inserted.insert(ins->row.connectionId);
        } else if (inserted.count(std::get<SqliteRemoveOp>(op).id)) {
            both.insert(std::get<SqliteRemoveOp>(op).id);
        }
    }
    return both;
}

void dropCancelledPairs(SqliteWriteBatch &batch) {
    const std::unordered_set<std::string_view> pairs = openedAndClosed(batch.ops);  // views into batch.ops
    if (pairs.empty()) return;
    size_t touchesLeft = 0;
    for (size_t i = 0; i < batch.touches.size(); ++i) touchesLeft += pairs.count(batch.touches.id(i)) ? 0 : 1;
    // Nothing else in it: left whole, the next retry's commit() finds nothing to write and succeeds, which
    // ends the failing state. An emptied batch would not be retried, and the store would stay "failing"
    // (refusing every new upgrade) until some other write came.
    if (batch.ops.size() == 2 * pairs.size() && touchesLeft == 0) return;
    batch.touches.coalesceKeeping([&](std::string_view id) { return pairs.count(id) == 0; });
    // Copies: erasing moves the ops the views point into.
    std::unordered_set<std::string> cancelled;
    for (std::string_view id : pairs) cancelled.emplace(id);
    std::erase_if(batch.ops, [&](const SqliteOp &op) {
        if (const auto *ins = std::get_if<SqliteInsertOp>(&op)) return !ins->committed && cancelled.count(ins->row.connectionId) > 0;
        return cancelled.count(std::get<SqliteRemoveOp>(op).id) > 0;
    });
}

}  // namespace wsgw
