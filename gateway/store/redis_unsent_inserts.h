// The Redis store's record of the rows whose insert has not yet been confirmed by Redis: queued for the
// writer, being sent in a batch, or sent in a batch that failed and is retried. A $disconnect's removal is
// sent by the worker that ran it, on its own connection (redis_store.h), so it could overtake its row's
// insert, which the writer sends: this record says when it must not. An insert still queued is cancelled
// instead (the row never reaches Redis; no one else can have run its $disconnect). Not thread-safe: the
// store uses it under the lock of its queue.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace wsgw {

class UnsentInserts {
public:
    enum class State { Queued, Sending, Retrying };

    void queued(const std::string &id) { states_[id] = State::Queued; }
    // The writer takes the insert into a batch: false when it was cancelled meanwhile (drop it).
    bool take(const std::string &id) {
        auto it = states_.find(id);
        if (it == states_.end()) return false;
        it->second = State::Sending;
        sending_.push_back(id);
        return true;
    }
    // The batch's round trip ended: its rows are in Redis, or (a failure) maybe, and are sent again.
    void batchEnded(bool ok) {
        for (const auto &id : sending_) {
            if (ok) states_.erase(id);
            else states_[id] = State::Retrying;
        }
        sending_.clear();
    }
    // None: the insert was confirmed (or never queued here).
    std::optional<State> state(const std::string &id) const {
        auto it = states_.find(id);
        if (it == states_.end()) return std::nullopt;
        return it->second;
    }
    // Only a queued insert, never sent, can be cancelled: one sent may have landed.
    bool cancel(const std::string &id) {
        auto it = states_.find(id);
        if (it == states_.end() || it->second != State::Queued) return false;
        states_.erase(it);
        return true;
    }

private:
    std::unordered_map<std::string, State> states_;
    std::vector<std::string> sending_;
};

}  // namespace wsgw
